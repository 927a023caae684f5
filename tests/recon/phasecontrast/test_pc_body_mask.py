"""Issue 25: the background correction leaves no velocity outside the body and never extrapolates its
high-order polynomial beyond the values it takes on the static tissue."""

from __future__ import annotations

import numpy as np
import torch

from recon.phasecontrast.masks import body_mask
from recon.phasecontrast.series import BackgroundSettings, bounded_offset, correct_background
from tests.recon.phasecontrast.pc_synthetic import synthetic_series


def test_body_mask_fills_holes_and_drops_specks() -> None:
    signal = torch.zeros(40, 40, dtype=torch.bool)
    signal[5:35, 5:35] = True
    signal[12:20, 12:20] = False  # a lung: no signal, inside the body
    signal[1, 38] = True  # a noise speck in the air
    body = body_mask(signal)
    assert bool(body[15, 15]) and bool(body[5:35, 5:35].all())
    assert not bool(body[1, 38]) and int(body.sum()) == 30 * 30


def test_order_6_background_is_zero_outside_the_body_and_bounded_inside() -> None:
    data = synthetic_series(np.random.default_rng(4), noise_cm_per_s=2.0)
    velocity = torch.from_numpy(data["velocity"])
    magnitude = torch.from_numpy(data["magnitude"])
    result = correct_background(velocity, magnitude, BackgroundSettings(order=6))
    outside = ~torch.from_numpy(data["body"])
    outside &= ~result.body_mask
    assert int(outside.sum()) > 500
    assert float(result.velocity_cm_per_s[:, outside].abs().max()) == 0.0
    offset = result.fit.offset_cm_per_s
    on_static, in_body = offset[result.static_mask], offset[result.body_mask]
    assert float(in_body.max()) <= float(on_static.max()) + 1e-9
    assert float(in_body.min()) >= float(on_static.min()) - 1e-9
    assert float(offset[~result.body_mask].abs().max()) == 0.0
    # inside the body the correction still removes the background (static tissue near 0 on average)
    static_mean = result.velocity_cm_per_s.mean(dim=0)[result.static_mask]
    assert abs(float(static_mean.mean())) < 0.3


def test_bounded_offset_clamps_an_extrapolating_polynomial() -> None:
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    offset = 1000.0 * xx**6  # small near the centre, huge at the edges
    static = (yy.abs() < 0.3) & (xx.abs() < 0.3)
    body = (yy**2 + xx**2) < 0.8
    bounded = bounded_offset(offset, static, body)
    assert float(bounded.max()) <= float(offset[static].max()) + 1e-6
    assert float(bounded[~body].abs().max()) == 0.0


def test_zero_outside_body_can_be_turned_off() -> None:
    data = synthetic_series(np.random.default_rng(5), noise_cm_per_s=1.0)
    result = correct_background(
        torch.from_numpy(data["velocity"]),
        torch.from_numpy(data["magnitude"]),
        BackgroundSettings(order=2, zero_outside_body=False),
    )
    outside = ~result.body_mask
    assert float(result.velocity_cm_per_s[:, outside].abs().max()) > 10.0
