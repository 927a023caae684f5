"""Coil combination and display scaling: closed-form results."""

from __future__ import annotations

import pytest
import torch

from recon.cine.combine import b1_combine, combination_weights, display_scale, rss_combine, to_display
from tests.recon.cine import synthetic


def test_b1_combination_returns_the_object_for_exact_maps() -> None:
    maps = synthetic.coil_maps(6, (16, 12))
    rho = synthetic.phantom((16, 12)).to(torch.complex64) * torch.exp(0.3j * torch.ones(16, 12))
    coil_images = maps * rho
    assert torch.allclose(b1_combine(coil_images[None], maps)[0], rho, atol=1e-5)
    rss = torch.linalg.vector_norm(maps, dim=0)
    assert torch.allclose(rss_combine(coil_images), rho.abs() * rss, atol=1e-5)


def test_combination_weights_vanish_where_maps_vanish() -> None:
    maps = torch.zeros(2, 3, 3, dtype=torch.complex64)
    maps[:, 1, 1] = torch.tensor([1.0, 1j])
    w = combination_weights(maps)
    assert torch.allclose(w[:, 1, 1], torch.tensor([0.5, -0.5j]))
    assert float(w[:, 0, 0].abs().sum()) == 0.0


def test_display_scale_maps_the_percentile_to_the_range() -> None:
    magnitude = torch.linspace(0, 10, 1001)
    scale = display_scale(magnitude, percentile=50.0, max_value=4095.0)
    assert scale == pytest.approx(819.0)  # median 5 → 4095
    shown = to_display(magnitude, scale)
    assert int(shown.max()) == 4095 and int(shown[500]) == 4095 and int(shown[250]) == 2048
