"""Radial profiles from the LV centre: endocardial and epicardial radii per angle, and polar masks.

The myocardium is the dark band between the LV blood pool and the next bright structure outward
(epicardial fat, which surrounds the ventricles, or the RV blood pool across the septum).  Along each of
``n_rays`` rays the epicardial radius is where the intensity first rises through the blood/myocardium
threshold (linear interpolation, i.e. the 50 % partial-volume point) within ``max_wall_mm`` of the
endocardium.  Rays without such a rise (lung or mediastinum without fat) are filled from their
neighbours; the fraction of rays with a rise is the *coverage* of the ring, which decides whether a
blood region is ventricle or atrium at the base.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class RingProfile:
    """The myocardial ring of one LV blood region.

    Attributes:
        angles_rad: (R,) ray angles; ray direction (dy, dx) = (sin, cos).
        endo_radius_px: (R,) outermost blood-pool radius along each ray, pixels.
        epi_radius_px: (R,) epicardial radius along each ray (filled where not found), pixels.
        found: (R,) bool, the ray met a bright structure within the wall limit.
        coverage: fraction of rays with ``found``.
    """

    angles_rad: FloatArray
    endo_radius_px: FloatArray
    epi_radius_px: FloatArray
    found: BoolArray
    coverage: float


def endocardial_radii(blood: BoolArray, centre_yx: tuple[float, float], angles: FloatArray) -> FloatArray:
    """Largest radius (pixels) of a blood pixel along each ray direction (±half a ray's width)."""
    ys, xs = np.nonzero(blood)
    dy, dx = ys - centre_yx[0], xs - centre_yx[1]
    r = np.hypot(dy, dx)
    theta = np.arctan2(dy, dx)
    n = angles.size
    bins = np.round((theta - angles[0]) / (2 * np.pi / n)).astype(np.int64) % n
    radii = np.zeros(n)
    np.maximum.at(radii, bins, r + 0.5)
    missing = radii == 0.0
    if missing.all():
        return radii
    if missing.any():
        idx = np.arange(n)
        radii[missing] = np.interp(idx[missing], idx[~missing], radii[~missing], period=n)
    return radii


def ring_profile(
    image: FloatArray,
    blood: BoolArray,
    centre_yx: tuple[float, float],
    threshold: float,
    max_wall_px: float,
    n_rays: int = 64,
    step_px: float = 0.5,
) -> RingProfile:
    """Endocardial and epicardial radii of a blood region on one image (rays from ``centre_yx``)."""
    angles = np.linspace(-np.pi, np.pi, n_rays, endpoint=False)
    endo = endocardial_radii(blood, centre_yx, angles)
    n_steps = int(np.ceil((endo.max() + max_wall_px + 2.0) / step_px))
    radii = np.arange(n_steps) * step_px
    ys = centre_yx[0] + np.sin(angles)[:, None] * radii[None, :]
    xs = centre_yx[1] + np.cos(angles)[:, None] * radii[None, :]
    profiles = ndimage.map_coordinates(image, [ys.ravel(), xs.ravel()], order=1, mode="nearest")
    profiles = profiles.reshape(n_rays, n_steps)
    steps = np.arange(n_steps)[None, :]
    start = np.ceil((endo[:, None] + 1.0) / step_px)
    stop = np.ceil((endo[:, None] + max_wall_px) / step_px)
    above = (profiles > threshold) & (steps >= start) & (steps <= stop)
    k = np.argmax(above, axis=1)
    rows = np.arange(n_rays)
    lo, hi = profiles[rows, np.maximum(k - 1, 0)], profiles[rows, k]
    fraction = np.clip((threshold - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0, 1.0)
    epi = np.where(above.any(axis=1), (k - 1 + fraction) * step_px, np.nan)
    found = np.isfinite(epi)
    return RingProfile(angles, endo, _fill_wall(endo, epi, found), found, float(found.mean()))


def _fill_wall(endo: FloatArray, epi: FloatArray, found: BoolArray) -> FloatArray:
    """Wall thickness per ray: found rays smoothed by a circular median of 5, the others interpolated."""
    n = endo.size
    if not found.any():
        return endo.copy()
    wall = np.where(found, epi - endo, np.nan)
    idx = np.arange(n)
    wall = np.interp(idx, idx[found], wall[found], period=n)
    padded = np.concatenate([wall[-2:], wall, wall[:2]])
    smooth = np.median(np.lib.stride_tricks.sliding_window_view(padded, 5), axis=1)
    return endo + smooth


def polar_mask(
    shape: tuple[int, int], centre_yx: tuple[float, float], angles: FloatArray, radius_px: FloatArray
) -> BoolArray:
    """Pixels whose distance from the centre is within the (angle-interpolated) radius."""
    mask = np.zeros(shape, bool)
    reach = float(radius_px.max()) + 1.0
    y0, y1 = max(0, int(centre_yx[0] - reach)), min(shape[0], int(np.ceil(centre_yx[0] + reach)) + 1)
    x0, x1 = max(0, int(centre_yx[1] - reach)), min(shape[1], int(np.ceil(centre_yx[1] + reach)) + 1)
    if y1 <= y0 or x1 <= x0:
        return mask
    dy = (np.arange(y0, y1) - centre_yx[0])[:, None]
    dx = (np.arange(x0, x1) - centre_yx[1])[None, :]
    r2 = dy * dy + dx * dx
    inner = r2 <= float(radius_px.min()) ** 2
    ring = (r2 <= reach * reach) & ~inner
    theta = np.arctan2(np.broadcast_to(dy, r2.shape)[ring], np.broadcast_to(dx, r2.shape)[ring])
    limit = np.interp(theta, angles, radius_px, period=2 * np.pi)
    window = inner
    window[ring] = r2[ring] <= limit * limit
    mask[y0:y1, x0:x1] = window
    return mask
