"""The flow plugins on the cine stages' items: accumulation per set, coil-resolved image series."""

from __future__ import annotations

import math

import ismrmrd
import numpy as np
import pytest
import torch

from plugins.mr.cine_items import CineImageSeries, CineSliceRaw
from plugins.mr.flow_accumulate import FlowAccumulate, FlowAccumulateConfig
from plugins.mr.flow_common import meta_value
from plugins.mr.flow_velocity import FlowVelocity, FlowVelocityConfig
from plugins.runtime.plugin import ChainContext
from tests.plugins.mr.flow_fixtures import flow_header


def _acq(set_index: int, ky: int, t_ticks: int, last: bool = False) -> ismrmrd.Acquisition:
    acq = ismrmrd.Acquisition.from_array(np.full((2, 8), set_index + 1, dtype=np.complex64))
    acq.idx.set, acq.idx.kspace_encode_step_1, acq.idx.slice = set_index, ky, 0
    acq.acquisition_time_stamp = t_ticks
    acq.physiology_time_stamp[0] = t_ticks % 400
    if last:
        acq.set_flag(ismrmrd.ACQ_LAST_IN_SLICE)
    return acq


def test_accumulation_keeps_the_two_encodings_apart() -> None:
    context = ChainContext("flow", header=flow_header(matrix=8))
    acqs = [_acq(s, ky, 10 * ky + s) for ky in range(8) for s in (0, 1)]
    out = list(FlowAccumulate(FlowAccumulateConfig(), context).run(acqs))
    raws = [o for o in out if isinstance(o, CineSliceRaw)]
    assert len(raws) == 2
    by_set = {int(r.reference.idx.set): r for r in raws}
    assert set(by_set) == {0, 1}
    for s, raw in by_set.items():
        assert raw.lines.shape == (8, 2, 8)
        assert bool((raw.lines == s + 1).all())  # no readout of the other encoding
    with pytest.raises(ValueError, match="idx.set=3"):
        list(FlowAccumulate(FlowAccumulateConfig(), context).run([_acq(3, 0, 0)]))


def _series(images: torch.Tensor, set_index: int) -> CineImageSeries:
    ref = ismrmrd.AcquisitionHeader()
    ref.idx.set, ref.idx.slice = set_index, 0
    ref.read_dir[:] = (1.0, 0.0, 0.0)
    ref.phase_dir[:] = (0.0, 1.0, 0.0)
    ref.slice_dir[:] = (0.0, 0.0, 1.0)
    n = images.shape[0]
    trig = (torch.arange(n, dtype=torch.float64) + 0.5) * (900.0 / n)
    return CineImageSeries(0, images, False, None, trig, "grappa", ref)


def test_coil_image_series_give_velocity_images_with_rr() -> None:
    g = torch.Generator().manual_seed(0)
    n_phases, n_coils, ny, nx = 5, 4, 8, 8
    v = torch.linspace(-100.0, 100.0, nx, dtype=torch.float64).expand(n_phases, ny, nx)
    coils = torch.randn(n_coils, ny, nx, generator=g, dtype=torch.complex128) + 2.0
    obj = torch.exp(1j * torch.linspace(0, 2, ny, dtype=torch.float64))[:, None]
    ref = (coils[None] * obj).expand(n_phases, -1, -1, -1)
    enc = ref * torch.exp(1j * math.pi * v / 150.0)[:, None]
    context = ChainContext("flow", header=flow_header(n_phases=n_phases, matrix=8, fov_mm=64.0))
    stage = FlowVelocity(FlowVelocityConfig(), context)
    out = list(stage.run([_series(enc.to(torch.complex64), 1), _series(ref.to(torch.complex64), 0)]))
    vel = [im for im in out if meta_value(im, "PC_role") == "velocity"]
    assert len(vel) == n_phases and len(out) == 2 * n_phases
    assert np.allclose(np.asarray(vel[2].data)[0, 0], v[2].numpy(), atol=1e-3)
    assert float(meta_value(vel[0], "rr_ms") or 0) == pytest.approx(900.0)
    assert vel[3].physiology_time_stamp[0] == round(3.5 * 180.0 / 2.5)
    assert tuple(vel[0].field_of_view) == pytest.approx((64.0, 64.0, 8.0))
    assert tuple(vel[0].slice_dir) == pytest.approx((0.0, 0.0, 1.0))


def test_unpaired_series_is_an_error() -> None:
    context = ChainContext("flow", header=flow_header(n_phases=2, matrix=4))
    lonely = _series(torch.ones(2, 1, 4, 4, dtype=torch.complex64), 0)
    with pytest.raises(ValueError, match="without their partner"):
        list(FlowVelocity(FlowVelocityConfig(), context).run([lonely]))
