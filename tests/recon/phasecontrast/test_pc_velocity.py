"""Velocity encoding: v = VENC · Δφ / π, noise-weighted coil combination, complex difference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recon.phasecontrast.velocity import (
    VelocityEncoding,
    complex_difference,
    phase_difference,
    phase_difference_and_magnitude,
    phase_from_velocity,
    velocity_from_complex_difference,
    velocity_from_phase,
)


def test_velocity_formula_closed_form() -> None:
    enc = VelocityEncoding(venc_cm_per_s=150.0)
    dphi = torch.tensor([0.0, math.pi / 2, -math.pi / 3, math.pi])
    v = velocity_from_phase(dphi, enc)
    assert torch.allclose(v, torch.tensor([0.0, 75.0, -50.0, 150.0]), atol=1e-5)
    flipped = velocity_from_phase(dphi, VelocityEncoding(150.0, flow_direction=-1))
    assert torch.allclose(flipped, -v)
    assert torch.allclose(phase_from_velocity(v, enc), dphi, atol=1e-6)


@pytest.mark.parametrize(("venc", "direction"), [(0.0, 1), (-10.0, 1), (float("nan"), 1), (100.0, 0)])
def test_encoding_validation(venc: float, direction: int) -> None:
    with pytest.raises(ValueError, match=r"venc_cm_per_s|flow_direction"):
        VelocityEncoding(venc, direction)


def _coil_pair(
    v: torch.Tensor, enc: VelocityEncoding, noise: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n_coils = 8
    ny, nx = v.shape
    # coil sensitivities: smooth magnitudes that differ strongly between coils, arbitrary phases
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, ny), torch.linspace(-1, 1, nx), indexing="ij")
    angles = torch.arange(n_coils) * (2 * math.pi / n_coils)
    mags = torch.stack(
        [torch.exp(-2.0 * ((yy - 0.9 * math.sin(a)) ** 2 + (xx - 0.9 * math.cos(a)) ** 2)) for a in angles]
    )
    coil_phase = torch.rand(n_coils, 1, 1, generator=g) * 2 * math.pi
    coils = mags * torch.exp(1j * (coil_phase + 0.5 * xx))
    obj_phase = torch.exp(1j * 0.7 * yy)  # background object phase common to both encodings
    ref = coils * obj_phase
    encoded = ref * torch.exp(1j * phase_from_velocity(v, enc))

    def noisy(x: torch.Tensor) -> torch.Tensor:
        re = torch.randn(x.shape, generator=g) * noise
        im = torch.randn(x.shape, generator=g) * noise
        return (x + torch.complex(re, im)).to(torch.complex64)

    return noisy(ref), noisy(encoded), mags


def test_noise_weighted_coil_phase_difference() -> None:
    enc = VelocityEncoding(100.0)
    v = torch.linspace(-60.0, 60.0, 32).reshape(1, -1).expand(32, 32).contiguous()
    ref, encoded, _ = _coil_pair(v, enc, noise=0.0, seed=1)
    exact = velocity_from_phase(phase_difference(ref, encoded, coil_dim=0), enc)
    assert torch.allclose(exact, v, atol=1e-3)

    noise = 0.08
    ref, encoded, mags = _coil_pair(v, enc, noise=noise, seed=2)
    weighted = velocity_from_phase(phase_difference(ref, encoded, coil_dim=0), enc)
    # naive: unweighted average of the per-coil phase differences
    naive = velocity_from_phase(phase_difference(ref, encoded).mean(dim=0), enc)
    err_weighted = float((weighted - v).pow(2).mean().sqrt())
    err_naive = float((naive - v).pow(2).mean().sqrt())
    assert err_weighted < 0.5 * err_naive
    # small-noise theory for the optimally combined estimate: std(v) = VENC/π · √2 σ / √Σ|C|²
    predicted_std = (enc.venc_cm_per_s / math.pi) * math.sqrt(2.0) * noise / mags.pow(2).sum(0).sqrt()
    normalised = ((weighted - v) / predicted_std).pow(2).mean().sqrt()
    assert 0.85 < float(normalised) < 1.15


def test_complex_difference_closed_form() -> None:
    enc = VelocityEncoding(80.0)
    v = torch.tensor([[-70.0, -20.0, 0.0, 35.0, 79.0]], dtype=torch.float64)
    mag = torch.tensor([[1.0, 2.0, 3.0, 0.5, 1.5]], dtype=torch.float64)
    ref = mag * torch.exp(1j * torch.full_like(v, 0.3))
    encoded = ref * torch.exp(1j * phase_from_velocity(v, enc))
    cd = complex_difference(ref, encoded)
    assert torch.allclose(cd, 2 * mag * torch.sin(torch.abs(math.pi * v / 80.0) / 2), atol=1e-12)
    assert torch.allclose(velocity_from_complex_difference(ref, encoded, enc), v, atol=1e-9)


def test_shape_and_type_errors() -> None:
    a = torch.zeros(3, 4, dtype=torch.complex64)
    with pytest.raises(ValueError, match="differ in shape"):
        phase_difference(a, torch.zeros(4, 3, dtype=torch.complex64))
    with pytest.raises(TypeError, match="complex"):
        phase_difference(a.real, a.real)


def test_float_precision_agrees() -> None:
    enc = VelocityEncoding(120.0)
    v = torch.from_numpy(np.linspace(-100, 100, 50))
    ref = torch.exp(1j * torch.full_like(v, 1.0))
    encoded = ref * torch.exp(1j * phase_from_velocity(v, enc))
    v32 = velocity_from_phase(phase_difference(ref.to(torch.complex64), encoded.to(torch.complex64)), enc)
    assert torch.allclose(v32.to(torch.float64), v, atol=1e-3)


def test_one_pass_phase_and_magnitude_match_rss() -> None:
    enc = VelocityEncoding(100.0)
    v = torch.linspace(-60.0, 60.0, 16).reshape(1, -1).expand(16, 16).contiguous()
    ref, encoded, mags = _coil_pair(v, enc, noise=0.0, seed=3)
    dphi, magnitude = phase_difference_and_magnitude(ref, encoded, coil_dim=0)
    assert torch.allclose(dphi, phase_difference(ref, encoded, coil_dim=0))
    assert torch.allclose(magnitude, mags.pow(2).sum(0).sqrt(), rtol=1e-4)
