"""Dixon maps for reading: a body mask, the fat fraction in percent (masked, 0–100 %), and a smooth B0 map.

The separation's own outputs stay as they are (:class:`~recon.petmr_ac.dixon_common.DixonResult`: the fat
fraction is unclipped so that region means are unbiased, the field map is the per-voxel estimate).  A map
shown to a person needs more: outside the body and in signal voids (lungs) the ratio F / (W + F) is a ratio
of noise (thousands of percent), and the per-voxel field map carries the noise of each voxel's phase.  B0
itself varies slowly in the body (susceptibility, shim), so the map shown is the signal-weighted, wrap-safe
Gaussian average of the estimate (normalised convolution of the phasor ``e^{i2πψτ}``), inside the body only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from recon.petmr_ac.smoothing import robust_percentile


def signal_mask(
    magnitude: np.ndarray, threshold_fraction: float = 0.05, min_speck_voxels: int = 2
) -> np.ndarray:
    """Voxels with signal: magnitude above ``threshold_fraction`` of the 99th percentile, in-plane specks of
    noise (thinner than ``2·min_speck_voxels + 1`` voxels) removed.  ``magnitude`` (z, y, x) → bool (z, y, x)."""
    if magnitude.ndim != 3:
        raise ValueError(f"magnitude must be (z, y, x), got shape {magnitude.shape}")
    above = magnitude > threshold_fraction * robust_percentile(magnitude, 99)
    plane = np.zeros((1, 3, 3), dtype=bool)
    plane[0] = True
    return ndimage.binary_opening(above, structure=plane, iterations=min_speck_voxels)


def body_mask(signal: np.ndarray, closing_voxels: int = 3) -> np.ndarray:
    """The body: the signal mask with gaps closed and, slice by slice, holes (lungs, bowel gas) filled."""
    plane = np.zeros((1, 3, 3), dtype=bool)
    plane[0] = True
    padded = np.pad(signal, ((0, 0), (closing_voxels, closing_voxels), (closing_voxels, closing_voxels)))
    closed = ndimage.binary_closing(padded, structure=plane, iterations=closing_voxels)
    closed = closed[:, closing_voxels:-closing_voxels, closing_voxels:-closing_voxels]
    return np.stack([ndimage.binary_fill_holes(s) for s in closed])


def fat_fraction_percent(fat_fraction: np.ndarray, signal: np.ndarray) -> np.ndarray:
    """Fat fraction for reading, % (float32): ``100 · FF`` clipped to 0–100 where there is signal, 0 elsewhere."""
    if fat_fraction.shape != signal.shape:
        raise ValueError(f"fat fraction {fat_fraction.shape} and mask {signal.shape} differ in shape")
    out = np.clip(100.0 * np.nan_to_num(fat_fraction), 0.0, 100.0).astype(np.float32)
    out[~signal] = 0.0
    return out


def smooth_field_map(
    field_map_hz: np.ndarray,
    weights: np.ndarray,
    body: np.ndarray,
    voxel_size_mm: Sequence[float],
    period_s: float,
    sigma_mm: float = 6.0,
    fallback_sigma_mm: float = 24.0,
) -> np.ndarray:
    """Smooth B0 map (Hz, float32), 0 outside ``body``.

    In-plane normalised convolution of ``weights · e^{i2πψτ}`` (τ = ``period_s``, so wraps of ψ by 1/τ do no
    harm) with a Gaussian of ``sigma_mm``; voxels with under 5 % weight in that window (inside the lungs) take
    the wider ``fallback_sigma_mm`` average.  ``weights`` (z, y, x) ≥ 0, e.g. the signal mask as 0/1 (uniform
    weights: bright subcutaneous fat must not outvote the tissue around it).
    """
    if not field_map_hz.shape == weights.shape == body.shape or field_map_hz.ndim != 3:
        raise ValueError("field map, weights and body mask must share one (z, y, x) shape")
    if period_s <= 0:
        raise ValueError(f"period_s must be > 0, got {period_s}")
    top = max(float(weights.max()), 1e-30) if weights.size else 1.0
    phasor = weights * np.exp(2j * np.pi * field_map_hz.astype(np.float64) * period_s)
    out = np.zeros(field_map_hz.shape, dtype=np.complex128)
    support = np.zeros(field_map_hz.shape, dtype=np.float64)
    # the narrowest average with support wins; the widest fills whatever lies far from any signal
    for sigma, min_support in ((4.0 * fallback_sigma_mm, 0.0), (fallback_sigma_mm, 0.05), (sigma_mm, 0.05)):
        s = (0.0, sigma / float(voxel_size_mm[1]), sigma / float(voxel_size_mm[2]))
        num = ndimage.gaussian_filter(phasor.real, s) + 1j * ndimage.gaussian_filter(phasor.imag, s)
        den = ndimage.gaussian_filter(weights.astype(np.float64), s)
        ok = den > min_support * top
        out = np.where(ok, num, out)
        support = np.where(ok, den, support)
    psi = np.angle(out) / (2.0 * np.pi * period_s)
    psi[~body | (support <= 0)] = 0.0
    return psi.astype(np.float32)


def symmetric_window_hz(field_map_hz: np.ndarray, body: np.ndarray, minimum_hz: float = 10.0) -> float:
    """Half-width (Hz) of a display window centred on 0 that holds the body's 1st–99th percentiles, rounded
    up to a multiple of 10 Hz (at least ``minimum_hz``)."""
    inside = field_map_hz[body]
    if inside.size == 0:
        return minimum_hz
    half = float(np.max(np.abs(np.percentile(inside, [1.0, 99.0]))))
    return max(minimum_hz, 10.0 * math.ceil(half / 10.0))
