"""Latency of the phase-contrast stages for one clinical-size flow series (2 encodings × 25 phases).

Size: 16 coils, 156 × 192 recon matrix, 25 cardiac phases per encoding, coil-resolved complex64 images
as the cine unfolding emits them.  Measured: the velocity maps (noise-weighted phase difference over
coils), the background fit and subtraction, unwrapping (the chain's method), and the four flow plugins end to end
(velocity → background → unwrap → report with PNG).  CPU always; CUDA where a GPU is present.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python -m pytest benchmarks/test_bench_flow.py --benchmark-only``.
Each benchmark stores, in ``extra_info``, its ratio to a reference measured in the same run: a copy of
the coil images of both encodings (the phase-difference stage reads them once, so it is memory bound).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from benchmarks.conftest import record_ratio, synchronize
from recon.phasecontrast.series import BackgroundSettings, correct_background
from recon.phasecontrast.unwrap import unwrap_velocity
from recon.phasecontrast.velocity import VelocityEncoding, phase_difference_and_magnitude, velocity_from_phase

N_PHASES, N_COILS, NY, NX = 25, 16, 156, 192
VENC = 150.0


def _clinical_pair(device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, NY), torch.linspace(-1, 1, NX), indexing="ij")
    body = ((yy / 0.9) ** 2 + (xx / 0.9) ** 2 < 1).to(torch.float32)
    r2 = ((yy + 0.2) ** 2 + (xx - 0.1) ** 2) / 0.08**2
    t = (torch.arange(N_PHASES) + 0.5) / N_PHASES
    pulse = torch.where(t < 0.35, torch.sin(math.pi * t / 0.35), torch.zeros_like(t))
    v = 120.0 * pulse[:, None, None] * (1 - r2).clamp_min(0)[None] + 2.0 * xx[None]
    angles = torch.arange(N_COILS) * (2 * math.pi / N_COILS)
    coils = torch.stack([torch.exp(-((yy - math.sin(a)) ** 2 + (xx - math.cos(a)) ** 2)) for a in angles])
    ref = (coils[None] * body).to(torch.complex64).expand(N_PHASES, -1, -1, -1)
    enc = ref * torch.exp(1j * math.pi * v / VENC)[:, None].to(torch.complex64)

    def noisy(x: torch.Tensor) -> torch.Tensor:
        n = torch.randn(x.shape, generator=g) + 1j * torch.randn(x.shape, generator=g)
        return (x + 0.01 * n).to(torch.complex64)

    return noisy(ref).to(device), noisy(enc).to(device)


def test_bench_velocity_maps(benchmark, device: torch.device) -> None:  # type: ignore[no-untyped-def]
    ref, enc = _clinical_pair(device)
    enc_info = VelocityEncoding(VENC)

    def run() -> None:
        dphi, _ = phase_difference_and_magnitude(ref, enc, coil_dim=1)
        velocity_from_phase(dphi, enc_info)
        synchronize(device)

    benchmark(run)
    _record_copy_ratio(benchmark, ref, enc, device)


def test_bench_background_and_unwrap(benchmark, device: torch.device) -> None:  # type: ignore[no-untyped-def]
    ref, enc = _clinical_pair(device)
    dphi, mag = phase_difference_and_magnitude(ref, enc, coil_dim=1)
    vel = velocity_from_phase(dphi, VelocityEncoding(VENC))
    from plugins.mr.flow_unwrap import FlowUnwrapConfig

    settings = BackgroundSettings()
    method = FlowUnwrapConfig().method

    def run() -> None:
        corrected = correct_background(vel, mag, settings)
        unwrap_velocity(corrected.velocity_cm_per_s, VENC, corrected.signal_mask, method)
        synchronize(device)

    benchmark(run)
    _record_copy_ratio(benchmark, ref, enc, device)


@pytest.mark.parametrize("method", ["temporal", "spatial"])
def test_bench_unwrap_method(benchmark, method: str) -> None:  # type: ignore[no-untyped-def]
    """Aliasing correction alone, per slice (CPU; both methods in one run, side by side): the chain unwraps
    spatially since 2026-12-05 (see ``plugins/chains/flow.toml``)."""
    ref, enc = _clinical_pair("cpu")
    dphi, mag = phase_difference_and_magnitude(ref, enc, coil_dim=1)
    corrected = correct_background(
        velocity_from_phase(dphi, VelocityEncoding(VENC)), mag, BackgroundSettings()
    )
    unwrap_velocity(corrected.velocity_cm_per_s, VENC, corrected.signal_mask, method)  # numba compiles here
    benchmark(unwrap_velocity, corrected.velocity_cm_per_s, VENC, corrected.signal_mask, method)


def _record_copy_ratio(benchmark: Any, ref: torch.Tensor, enc: torch.Tensor, device: torch.device) -> None:
    """Ratio to the 2-D FFTs of both encodings' coil images (the reconstruction's own floor): compute-bound,
    so steadier on a shared machine than a memory copy, which measured ratios from 2.7 to 17."""

    def reference() -> None:
        torch.fft.fft2(ref)
        torch.fft.fft2(enc)
        synchronize(device)

    record_ratio(benchmark, reference, "2-D FFT of both encodings' coil images")


def _series(images: torch.Tensor, set_index: int) -> Any:
    import ismrmrd

    from plugins.mr.cine_items import CineImageSeries

    ref = ismrmrd.AcquisitionHeader()
    ref.idx.set = set_index
    ref.read_dir[:], ref.phase_dir[:], ref.slice_dir[:] = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)
    trig = (torch.arange(N_PHASES, dtype=torch.float64) + 0.5) * (1000.0 / N_PHASES)
    return CineImageSeries(0, images, False, None, trig, "grappa", ref)


def test_bench_flow_plugins_one_series(benchmark, device: torch.device) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("pydantic")
    pytest.importorskip("ismrmrd")
    import ismrmrd

    from plugins.mr.flow_background import FlowBackground, FlowBackgroundConfig
    from plugins.mr.flow_report import FlowReportConfig, FlowReportPlugin
    from plugins.mr.flow_unwrap import FlowUnwrap, FlowUnwrapConfig
    from plugins.mr.flow_velocity import FlowVelocity, FlowVelocityConfig
    from plugins.runtime.plugin import ChainContext
    from tests.plugins.mr.flow_fixtures import flow_header

    ref, enc = _clinical_pair("cpu")
    items = [_series(ref, 0), _series(enc, 1)]
    context = ChainContext(
        "flow", device=torch.device(device), header=flow_header(n_phases=N_PHASES, matrix=NX, fov_mm=380.0)
    )

    def run() -> list[object]:
        stream: object = items
        for stage in (
            FlowVelocity(FlowVelocityConfig(), context),
            FlowBackground(FlowBackgroundConfig(), context),
            FlowUnwrap(FlowUnwrapConfig(), context),
            FlowReportPlugin(FlowReportConfig(), context),
        ):
            stream = stage.run(stream)  # type: ignore[arg-type]
        return list(stream)  # type: ignore[call-overload]

    outputs = benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    _record_copy_ratio(benchmark, ref, enc, torch.device("cpu"))
    assert sum(isinstance(o, ismrmrd.Image) for o in outputs) == 2 * N_PHASES
    assert np.isfinite(len(outputs))
