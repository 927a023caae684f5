"""Latency of the phase-contrast stages for one clinical-size flow series (2 encodings × 25 phases).

Size: 16 coils, 156 × 192 recon matrix, 25 cardiac phases per encoding, coil-resolved complex64 images
as the cine unfolding emits them.  Measured: the velocity maps (noise-weighted phase difference over
coils), the background fit and subtraction, temporal unwrapping, and the four flow plugins end to end
(velocity → background → unwrap → report with PNG).  CPU always; CUDA where a GPU is present.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python -m pytest benchmarks/test_bench_flow.py --benchmark-only``
"""

from __future__ import annotations

import math

import ismrmrd
import numpy as np
import pytest
import torch

from plugins.mr.cine_items import CineImageSeries
from plugins.mr.flow_background import FlowBackground, FlowBackgroundConfig
from plugins.mr.flow_report import FlowReportConfig, FlowReportPlugin
from plugins.mr.flow_unwrap import FlowUnwrap, FlowUnwrapConfig
from plugins.mr.flow_velocity import FlowVelocity, FlowVelocityConfig, velocity_maps
from plugins.runtime.plugin import ChainContext
from recon.phasecontrast.series import BackgroundSettings, correct_background
from recon.phasecontrast.unwrap import unwrap_temporal
from recon.phasecontrast.velocity import VelocityEncoding
from tests.plugins.mr.flow_fixtures import flow_header

N_PHASES, N_COILS, NY, NX = 25, 16, 156, 192
VENC = 150.0

DEVICES = [
    pytest.param("cpu"),
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")),
]


def _clinical_pair(device: str) -> tuple[torch.Tensor, torch.Tensor]:
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


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


@pytest.mark.parametrize("device", DEVICES)
def test_bench_velocity_maps(benchmark, device: str) -> None:  # type: ignore[no-untyped-def]
    ref, enc = _clinical_pair(device)
    enc_info = VelocityEncoding(VENC)

    def run() -> None:
        velocity_maps(ref, enc, enc_info, "phase_difference", coil_dim=1)
        _sync(device)

    benchmark(run)


@pytest.mark.parametrize("device", DEVICES)
def test_bench_background_and_unwrap(benchmark, device: str) -> None:  # type: ignore[no-untyped-def]
    ref, enc = _clinical_pair(device)
    mag, vel = velocity_maps(ref, enc, VelocityEncoding(VENC), "phase_difference", coil_dim=1)
    settings = BackgroundSettings()

    def run() -> None:
        corrected = correct_background(vel, mag, settings)
        unwrap_temporal(corrected.velocity_cm_per_s, VENC, corrected.signal_mask)
        _sync(device)

    benchmark(run)


def _series(images: torch.Tensor, set_index: int) -> CineImageSeries:
    ref = ismrmrd.AcquisitionHeader()
    ref.idx.set = set_index
    ref.read_dir[:], ref.phase_dir[:], ref.slice_dir[:] = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)
    trig = (torch.arange(N_PHASES, dtype=torch.float64) + 0.5) * (1000.0 / N_PHASES)
    return CineImageSeries(0, images, False, None, trig, "grappa", ref)


@pytest.mark.parametrize("device", DEVICES)
def test_bench_flow_plugins_one_series(benchmark, device: str) -> None:  # type: ignore[no-untyped-def]
    ref, enc = _clinical_pair("cpu")
    items = [_series(ref, 0), _series(enc, 1)]
    context = ChainContext("flow", device=torch.device(device),
                           header=flow_header(n_phases=N_PHASES, matrix=NX, fov_mm=380.0))

    def run() -> list[object]:
        stream: object = items
        for stage in (FlowVelocity(FlowVelocityConfig(), context), FlowBackground(FlowBackgroundConfig(), context),
                      FlowUnwrap(FlowUnwrapConfig(), context), FlowReportPlugin(FlowReportConfig(), context)):
            stream = stage.run(stream)  # type: ignore[arg-type]
        return list(stream)  # type: ignore[call-overload]

    outputs = benchmark(run)
    assert sum(isinstance(o, ismrmrd.Image) for o in outputs) == 2 * N_PHASES
    assert np.isfinite(len(outputs))
