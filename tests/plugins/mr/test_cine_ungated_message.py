"""Issue 25: binning without R-waves says what it does — a warning naming the averaged cardiac phases when
the header announces a gated (cine) acquisition, no warning for ungated data."""

from __future__ import annotations

import logging

import pytest
import torch

from plugins.mr.cine_bin import CineBin
from plugins.mr.cine_items import CineSliceBinned, CineSliceRaw
from plugins.runtime.plugin import ChainContext
from tests.plugins.mr.cine_stream import StreamSpec, header


def _raw(n_ky: int = 8, n_repetitions: int = 1) -> CineSliceRaw:
    n = n_ky * n_repetitions
    return CineSliceRaw(
        slice_index=0,
        lines=torch.ones((n, 2, 16), dtype=torch.complex64),
        ky_index=torch.arange(n) % n_ky,
        is_calibration=torch.zeros(n, dtype=torch.bool),
        is_imaging=torch.ones(n, dtype=torch.bool),
        readout_times_s=torch.arange(n, dtype=torch.float64) * 0.005,
        repetition=torch.arange(n) // n_ky,
        r_wave_times_s=torch.zeros(0, dtype=torch.float64),
        n_ky=n_ky,
        reference=None,
    )


def test_gated_header_without_r_waves_warns_about_averaged_phases(caplog: pytest.LogCaptureFixture) -> None:
    plugin = CineBin(
        CineBin.Config(), ChainContext(chain_name="cartesian", header=header(StreamSpec(n_phases=25)))
    )
    with caplog.at_level(logging.INFO):
        (binned,) = list(plugin.process(_raw()))
    assert isinstance(binned, CineSliceBinned) and binned.kspace.shape[0] == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "25 cardiac phases" in warnings[0] and "1 frame(s)" in warnings[0] and "cine chain" in warnings[0]
    assert "fewer than two R-waves" not in warnings[0]


def test_ungated_data_bin_per_repetition_without_warning(caplog: pytest.LogCaptureFixture) -> None:
    plugin = CineBin(
        CineBin.Config(), ChainContext(chain_name="cartesian", header=header(StreamSpec(n_phases=1)))
    )
    with caplog.at_level(logging.INFO):
        (binned,) = list(plugin.process(_raw(n_repetitions=3)))
    assert binned.kspace.shape[0] == 3
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("ungated, 3 frame(s)" in r.getMessage() for r in caplog.records)
