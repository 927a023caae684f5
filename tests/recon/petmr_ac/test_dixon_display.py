"""Issue 25: Dixon maps for reading — fat fraction 0–100 % and 0 outside the signal, a smooth B0 map inside
the body (wrap-safe) and 0 outside."""

from __future__ import annotations

import numpy as np

from recon.petmr_ac.dixon_display import (
    body_mask,
    fat_fraction_percent,
    signal_mask,
    smooth_field_map,
    symmetric_window_hz,
)


def _ellipse(shape: tuple[int, int, int]) -> np.ndarray:
    _, ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    inside = ((yy - ny / 2) / (0.4 * ny)) ** 2 + ((xx - nx / 2) / (0.4 * nx)) ** 2 < 1
    return np.broadcast_to(inside, shape).copy()


def test_fat_fraction_is_clipped_and_masked() -> None:
    rng = np.random.default_rng(0)
    shape = (2, 48, 64)
    body = _ellipse(shape)
    magnitude = np.where(body, 1.0, 0.0) + 0.01 * rng.random(shape)
    ff = np.where(body, 0.2, 0.0) + np.where(
        body, 0.0, 50.0 * rng.standard_normal(shape)
    )  # noise ratio outside
    ff[0, 24, 32] = 1.7  # a noisy voxel above 100 %
    signal = signal_mask(magnitude)
    out = fat_fraction_percent(ff, signal)
    assert out.min() >= 0.0 and out.max() <= 100.0
    assert np.all(out[~body] == 0.0)
    assert np.allclose(out[body & (ff == 0.2)], 20.0)
    assert out[0, 24, 32] == 100.0


def test_field_map_is_smooth_inside_the_body_zero_outside_and_wrap_safe() -> None:
    rng = np.random.default_rng(1)
    shape = (2, 64, 64)
    period_s = 2.3e-3  # ψ is known modulo 1/period ≈ 435 Hz
    _, xx = np.mgrid[0:64, 0:64]
    truth = np.broadcast_to(200.0 + 1.5 * (xx - 32), shape)  # crosses the +217 Hz wrap
    noisy = truth + 40.0 * rng.standard_normal(shape)
    wrapped = (noisy + 0.5 / period_s) % (1.0 / period_s) - 0.5 / period_s
    body = _ellipse(shape)
    signal = body.copy()
    signal[:, 28:36, 20:28] = False  # a signal void (lung) inside the body
    b0 = smooth_field_map(wrapped, signal.astype(np.float32), body, (8.0, 3.0, 3.0), period_s, sigma_mm=6.0)
    assert np.all(b0[~body] == 0.0)
    error = np.angle(np.exp(2j * np.pi * (b0 - truth) * period_s)) / (2 * np.pi * period_s)
    inner = body.copy()
    inner[:, :, :10] = inner[:, :, -10:] = False
    assert np.sqrt(np.mean(error[inner] ** 2)) < 12.0  # from 40 Hz of per-voxel noise
    assert np.abs(error[:, 30, 24]).max() < 40.0  # inside the void: filled from the surroundings
    noisy_rms = np.sqrt(np.mean(np.diff(noisy, axis=2)[body[:, :, 1:]] ** 2))
    smooth_step = np.abs(np.angle(np.exp(2j * np.pi * np.diff(b0, axis=2) * period_s))) / (
        2 * np.pi * period_s
    )
    assert np.median(smooth_step[inner[:, :, 1:]]) < 0.1 * noisy_rms


def test_body_mask_fills_the_lungs_and_window_is_symmetric() -> None:
    shape = (1, 40, 40)
    signal = _ellipse(shape)
    signal[0, 15:25, 12:18] = False
    body = body_mask(signal)
    assert body[0, 20, 15] and not body[0, 0, 0]
    field = np.where(body, np.where(np.arange(40) < 20, -33.0, 21.0)[None, None, :], 0.0)
    assert symmetric_window_hz(field, body) == 40.0
