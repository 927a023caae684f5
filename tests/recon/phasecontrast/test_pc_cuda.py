"""The GPU path gives the CPU numbers (skips itself without a CUDA GPU)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recon.phasecontrast.flow import flow_curve
from recon.phasecontrast.series import BackgroundSettings, correct_background
from recon.phasecontrast.unwrap import unwrap_temporal
from recon.phasecontrast.velocity import VelocityEncoding, phase_difference_and_magnitude, velocity_from_phase
from tests.recon.phasecontrast.pc_synthetic import synthetic_series

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _pipeline(ref: torch.Tensor, enc: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    encoding = VelocityEncoding(150.0)
    dphi, magnitude = phase_difference_and_magnitude(ref, enc, coil_dim=1)
    velocity = velocity_from_phase(dphi, encoding).to(torch.float64)
    settings = BackgroundSettings(order=2, local_sigma_pixels=12.0)  # the flow chain refines near vessels
    corrected = correct_background(velocity, magnitude.to(torch.float64), settings)
    unwrapped = unwrap_temporal(corrected.velocity_cm_per_s, 150.0, corrected.signal_mask)
    roi = torch.zeros(unwrapped.shape[-2:], dtype=torch.bool, device=unwrapped.device)
    roi[18:31, 20:33] = True
    return unwrapped.cpu(), flow_curve(unwrapped, roi, 4.0, 0.9).flow_ml_per_s


def test_cuda_matches_cpu() -> None:
    data = synthetic_series(np.random.default_rng(0), noise_cm_per_s=1.0)
    g = torch.Generator().manual_seed(1)
    coils = torch.randn(4, 64, 64, generator=g, dtype=torch.complex64) + 2.0
    mag = torch.from_numpy(data["magnitude"]).to(torch.float32)
    phase = torch.from_numpy(math.pi * data["velocity"] / 150.0).to(torch.float32)
    ref = coils[None] * mag[:, None]
    enc = ref * torch.exp(1j * phase)[:, None]
    cpu_v, cpu_q = _pipeline(ref, enc)
    gpu_v, gpu_q = _pipeline(ref.cuda(), enc.cuda())
    body = torch.from_numpy(data["body"])
    assert torch.allclose(cpu_v[:, body], gpu_v[:, body], atol=1e-3)
    assert np.allclose(cpu_q, gpu_q, rtol=1e-4, atol=1e-3)
