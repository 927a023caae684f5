"""Concomitant-field (Maxwell) phase against Bernstein's closed form."""

from __future__ import annotations

import math

import pytest
import torch

from recon.phasecontrast.maxwell import (
    GYROMAGNETIC_RATIO_RAD_PER_S_PER_T,
    ConcomitantMoments,
    correct_maxwell,
    maxwell_phase_difference,
    pixel_positions_m,
)
from recon.phasecontrast.velocity import VelocityEncoding, velocity_from_phase


def test_through_plane_encoding_closed_form() -> None:
    # Gz only: φ = γ ΔM_zz (x² + y²) / (8 B0); 100 (mT/m)²·ms = 1e-7 T²·s/m², r = 0.1 m, 1.5 T
    moments = ConcomitantMoments(zz=100.0)
    pos = torch.tensor([[0.1, 0.0, 0.05], [0.0, -0.1, 0.0], [0.0, 0.0, 0.2]], dtype=torch.float64)
    phase = maxwell_phase_difference(pos, moments, 1.5)
    expected = GYROMAGNETIC_RATIO_RAD_PER_S_PER_T * 1e-7 * 0.01 / (8 * 1.5)
    assert phase[0].item() == pytest.approx(expected, rel=1e-12)
    assert phase[1].item() == pytest.approx(expected, rel=1e-12)
    assert phase[2].item() == 0.0  # on the z axis a pure Gz has no concomitant field
    assert expected == pytest.approx(0.0223, rel=0.01)
    # halving B0 doubles the phase
    assert maxwell_phase_difference(pos, moments, 0.75)[0].item() == pytest.approx(2 * expected)


def test_cross_terms_and_correction() -> None:
    moments = ConcomitantMoments(xx=50.0, xz=30.0)
    pos = torch.tensor([0.05, 0.02, 0.1], dtype=torch.float64)
    x, _, z = pos.tolist()
    expected = GYROMAGNETIC_RATIO_RAD_PER_S_PER_T * 1e-9 * (50.0 * z**2 - 30.0 * x * z) / 3.0
    assert maxwell_phase_difference(pos, moments, 1.5).item() == pytest.approx(expected, rel=1e-12)
    positions = pixel_positions_m((8, 10), (2.0, 2.5), (10.0, -5.0, 30.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    assert positions.shape == (8, 10, 3)
    assert positions[4, 5].tolist() == pytest.approx([0.010, -0.005, 0.030])
    assert positions[5, 5].tolist() == pytest.approx([0.010, -0.003, 0.030])
    enc = VelocityEncoding(150.0)
    offset = velocity_from_phase(maxwell_phase_difference(positions, moments, 3.0), enc)
    true_v = torch.full((3, 8, 10), 20.0, dtype=torch.float64)
    assert torch.allclose(correct_maxwell(true_v + offset, positions, moments, 3.0, enc), true_v)


def test_validation() -> None:
    with pytest.raises(ValueError, match="finite"):
        ConcomitantMoments(zz=math.inf)
    with pytest.raises(ValueError, match="length 3"):
        maxwell_phase_difference(torch.zeros(4, 2), ConcomitantMoments(), 1.5)
