"""Closed-form synthetic phase-contrast data for the core tests (never the recon's own operators).

A vessel is a disc of radius ``radius_px`` with a parabolic (Poiseuille) profile
``v(r, t) = v_max(t) · (1 − r² / R²)``; its exact flow is ``π R² v_max(t) / 2``.  Pixel values are area
averages of the continuous profile over ``n_sub × n_sub`` sub-pixels, so edge pixels carry partial volume.
"""

from __future__ import annotations

import math

import numpy as np


def aortic_waveform(n_phases: int, peak: float = 1.0, backflow: float = 0.0) -> np.ndarray:
    """Normalised systolic pulse over one beat: a sine lobe in the first 35 % of the cycle, then an
    optional small negative (regurgitant) lobe of relative size ``backflow`` in early diastole."""
    t = (np.arange(n_phases) + 0.5) / n_phases
    systole = np.where(t < 0.35, np.sin(np.pi * t / 0.35), 0.0)
    diastole = np.where((t >= 0.35) & (t < 0.65), -backflow * np.sin(np.pi * (t - 0.35) / 0.3), 0.0)
    return peak * (systole + diastole)


def parabolic_disc(
    shape_yx: tuple[int, int], centre_yx: tuple[float, float], radius_px: float, n_sub: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel area averages of ``1 − r²/R²`` (inside the disc) and of the disc indicator."""
    ny, nx = shape_yx
    offsets = (np.arange(n_sub) + 0.5) / n_sub - 0.5
    yy = np.arange(ny)[:, None, None, None] + offsets[None, None, :, None] - centre_yx[0]
    xx = np.arange(nx)[None, :, None, None] + offsets[None, None, None, :] - centre_yx[1]
    r2 = (yy**2 + xx**2) / radius_px**2
    inside = r2 < 1.0
    profile = np.where(inside, 1.0 - r2, 0.0).mean(axis=(2, 3))
    return profile, inside.mean(axis=(2, 3))


def exact_flow_ml_per_s(radius_px: float, pixel_mm: float, v_max_cm_per_s: np.ndarray) -> np.ndarray:
    """Poiseuille flow π R² v_max / 2 in ml/s for a radius in pixels of ``pixel_mm``."""
    radius_cm = radius_px * pixel_mm / 10.0
    return math.pi * radius_cm**2 * np.asarray(v_max_cm_per_s) / 2.0


def body_disc(shape_yx: tuple[int, int], radius_fraction: float = 0.45) -> np.ndarray:
    """Boolean disc of static tissue centred in the image."""
    ny, nx = shape_yx
    yy, xx = np.mgrid[0:ny, 0:nx]
    return ((yy - ny / 2) ** 2 + (xx - nx / 2) ** 2) < (radius_fraction * min(ny, nx)) ** 2


def synthetic_series(
    rng: np.random.Generator,
    shape_yx: tuple[int, int] = (64, 64),
    n_phases: int = 20,
    vessels: tuple[tuple[float, float, float, float, float], ...] = ((24.0, 26.0, 5.0, 120.0, 0.0),),
    background_poly: tuple[float, ...] = (1.5, -2.0, 1.0, 0.8, -0.6, 0.5),
    non_polynomial_cm_per_s: float = 0.0,
    noise_cm_per_s: float = 0.0,
) -> dict[str, np.ndarray]:
    """Velocity series ``(phases, y, x)`` with vessels on static tissue plus a background offset.

    ``vessels``: tuples ``(cy, cx, radius_px, peak_cm_per_s, backflow)`` (negative peak = flow the other
    way).  ``background_poly``: coefficients of ``1, y, x, y², yx, x²`` on coordinates in [−1, 1] (cm/s).
    The non-polynomial part is ``a · sin(3πy) · cos(2πx)`` (cannot be fitted by a quadratic).
    Returns velocity, magnitude, body mask, the true vessel velocity (no background, no noise), the
    true background and the per-vessel masks ``vessel_<i>`` (pixels touched by the disc).
    """
    ny, nx = shape_yx
    yy = np.linspace(-1.0, 1.0, ny)[:, None]
    xx = np.linspace(-1.0, 1.0, nx)[None, :]
    c = background_poly
    background = c[0] + c[1] * yy + c[2] * xx + c[3] * yy**2 + c[4] * yy * xx + c[5] * xx**2
    background = background + non_polynomial_cm_per_s * np.sin(3 * np.pi * yy) * np.cos(2 * np.pi * xx)
    body = body_disc(shape_yx)
    flow_v = np.zeros((n_phases, ny, nx))
    out: dict[str, np.ndarray] = {}
    for i, (cy, cx, radius, peak, backflow) in enumerate(vessels):
        profile, fraction = parabolic_disc(shape_yx, (cy, cx), radius)
        flow_v += aortic_waveform(n_phases, peak, backflow)[:, None, None] * profile[None]
        out[f"vessel_{i}"] = fraction > 0
    velocity = flow_v + background[None] + noise_cm_per_s * rng.standard_normal((n_phases, ny, nx))
    outside = ~body
    velocity[:, outside] = rng.uniform(-150.0, 150.0, size=(n_phases, int(outside.sum())))  # noise-only phase
    magnitude = np.where(body, 1.0, 0.02) + 0.01 * rng.standard_normal((n_phases, ny, nx))
    out.update(
        velocity=velocity,
        magnitude=np.abs(magnitude),
        body=body,
        true_flow_velocity=flow_v,
        background=background,
    )
    return out
