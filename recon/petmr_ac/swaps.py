"""Fat-water swap detection and correction.

A swap is a region where the field-map estimate has jumped to its alias, off the true B0 by about the
main fat frequency Δf (≈ −3.4 ppm: −217 Hz at 1.5 T, −434 Hz at 3 T), so that water reads as fat and fat as
water there.  B0 is smooth, so a swap shows as a connected region whose field map differs from a smooth,
signal-weighted reference of its surroundings by ≈ ±Δf.  Correction moves the field map of the region by
∓Δf and solves water and fat again from the echoes (exact for the multi-peak model, unlike exchanging the
two images).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from recon.petmr_ac.dixon_common import DixonResult, fat_fraction_map, solve_water_fat
from recon.petmr_ac.fat_model import HAMILTON_LIVER_FAT, FatSpectrum, Floats, fat_signal_factors
from recon.petmr_ac.smoothing import gaussian_smooth


def reference_field_map(
    field_map_hz: np.ndarray, weights: np.ndarray, voxel_size_mm: Sequence[float], sigma_mm: float
) -> np.ndarray:
    """Signal-weighted Gaussian average of the field map (Hz); robust to small swapped regions when
    ``sigma_mm`` is large compared with them.  Voxels with no weight nearby get the global weighted mean."""
    sigma = [sigma_mm / float(v) for v in voxel_size_mm]
    w = np.maximum(weights.astype(np.float64), 0.0)
    if w.ndim == 3:
        num, den = gaussian_smooth(w * field_map_hz, sigma), gaussian_smooth(w, sigma)
    else:
        num = ndimage.gaussian_filter(w * field_map_hz, sigma, mode="nearest")
        den = ndimage.gaussian_filter(w, sigma, mode="nearest")
    global_mean = float((w * field_map_hz).sum() / w.sum()) if w.sum() > 0 else 0.0
    return np.where(den > 1e-6 * max(float(den.max()), 1e-30), num / np.maximum(den, 1e-30), global_mean)


def detect_swaps(
    field_map_hz: np.ndarray,
    weights: np.ndarray,
    voxel_size_mm: Sequence[float],
    fat_shift_hz: float,
    sigma_mm: float = 60.0,
    tolerance_fraction: float = 0.35,
    min_region_voxels: int = 8,
    n_passes: int = 4,
    period_hz: float | None = None,
) -> np.ndarray:
    """Field-map shift (Hz) that undoes a swap in each voxel: ``+Δf``, ``−Δf`` or 0, shape as the field map.

    A voxel is swapped when ``|ψ − ψ_ref ∓ Δf| < tolerance_fraction · |Δf|``; swapped voxels are kept only
    in connected regions (6-connectivity) of at least ``min_region_voxels``.  The reference ψ_ref is
    recomputed without the swapped voxels in a second pass (``n_passes``).

    Args:
        field_map_hz: estimated field map ψ (Hz), shape (z, y, x).
        weights: reliability per voxel (signal magnitude; 0 in background), same shape.
        voxel_size_mm: (z, y, x) voxel size (mm).
        fat_shift_hz: frequency of the main fat peak relative to water (Hz, negative).
        sigma_mm: width of the reference smoothing (mm), larger than the swaps to be found.
        tolerance_fraction: accepted deviation from an exact ±Δf jump, as a fraction of |Δf|.
        min_region_voxels: smallest swapped region kept (voxels).
        n_passes: reference refinements.
        period_hz: when the field map is only known modulo a period (uniform echo spacing ΔTE: 1/ΔTE), the
            deviation from the reference is wrapped into [−period/2, period/2).
    """
    if field_map_hz.shape != weights.shape:
        raise ValueError(f"field map {field_map_hz.shape} and weights {weights.shape} differ")
    shift = np.zeros(field_map_hz.shape, dtype=np.float32)
    active = weights > 0
    for _ in range(max(1, n_passes)):
        corrected = field_map_hz + shift
        ref = reference_field_map(corrected, np.where(shift == 0, weights, 0.0), voxel_size_mm, sigma_mm)
        delta = field_map_hz - ref
        if period_hz:
            delta = (delta + period_hz / 2) % period_hz - period_hz / 2
        tol = tolerance_fraction * abs(fat_shift_hz)
        new_shift = np.zeros_like(shift)
        for sign in (1.0, -1.0):
            hit = active & (np.abs(delta - sign * fat_shift_hz) < tol)
            new_shift[_large_regions(hit, min_region_voxels)] = -sign * fat_shift_hz
        if np.array_equal(new_shift, shift):
            break
        shift = new_shift
    return shift


def _large_regions(mask: np.ndarray, min_voxels: int) -> np.ndarray:
    """Connected components of ``mask`` (6-connectivity) with at least ``min_voxels`` voxels."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.zeros(mask.shape, dtype=bool)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_voxels
    keep[0] = False
    return keep[labels]


def correct_swaps(
    result: DixonResult,
    echoes: np.ndarray,
    echo_times_s: Floats,
    larmor_hz: float,
    shift_hz: np.ndarray,
    spectrum: FatSpectrum = HAMILTON_LIVER_FAT,
    min_signal: float = 0.0,
) -> DixonResult:
    """Apply a field-map shift (from :func:`detect_swaps`) and solve water and fat again where it is non-zero."""
    swapped = shift_hz != 0
    if not swapped.any():
        return result
    t = np.asarray(echo_times_s, dtype=np.float64)
    psi = (result.field_map_hz + shift_hz).astype(np.float32)
    c = fat_signal_factors(t, spectrum, larmor_hz)
    water_new, fat_new = solve_water_fat(echoes[:, swapped][..., None], t, psi[swapped][..., None], c)
    water, fat = result.water.copy(), result.fat.copy()
    water[swapped], fat[swapped] = water_new[:, 0], fat_new[:, 0]
    return DixonResult(
        water=water, fat=fat, field_map_hz=psi, fat_fraction=fat_fraction_map(water, fat, min_signal)
    )
