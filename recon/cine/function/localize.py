"""Where the heart and the left ventricle are in a short-axis cine stack (classical, no training).

The heart is the region of largest temporal signal variation summed over slices (the walls move, the
chest does not); the LV blood pool is the bright region near it on the mid-ventricular slices, on the
time-averaged image (the centre of the cavity is blood in every phase), that is round and has a thick
wall: score = circularity × min(wall, 12 mm)/12 mm × √area × exp(−distance/100 mm).  (The RV is a
crescent with a 3–5 mm free wall; the LV wall is ≈ 10 mm.)  Images are
``(S, P, Y, X)`` float magnitudes on one intensity scale; positions are ``(y, x)`` pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class HeartLocation:
    """The heart's position in the stack.

    Attributes:
        heart_centre_yx: (y, x) pixel position of the largest smoothed temporal variation.
        lv_centre_yx: (y, x) centroid of the LV blood pool on the seed slice.
        seed_slice: slice index the LV was found on (mid-ventricular).
        lv_radius_mm: equivalent radius of the LV blood pool on the seed slice (time-mean image), mm.
    """

    heart_centre_yx: tuple[float, float]
    lv_centre_yx: tuple[float, float]
    seed_slice: int
    lv_radius_mm: float


def otsu_threshold(values: FloatArray, n_bins: int = 128) -> float:
    """Otsu's threshold of a 1-D sample (maximum between-class variance)."""
    hist, edges = np.histogram(values, bins=n_bins)
    centres = 0.5 * (edges[1:] + edges[:-1])
    w0 = np.cumsum(hist).astype(np.float64)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu0 = m0 / w0
        mu1 = (m0[-1] - m0) / w1
        between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centres[int(np.nanargmax(np.nan_to_num(between[:-1], nan=-1.0)))])


def disc_mask(shape: tuple[int, int], centre_yx: tuple[float, float], radius_px: float) -> BoolArray:
    """Pixels within ``radius_px`` of a centre."""
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return np.asarray((yy - centre_yx[0]) ** 2 + (xx - centre_yx[1]) ** 2 <= radius_px**2)


LV_WALL_MM = 12.0
"""Wall thickness (mm) at and above which a candidate's wall counts as fully LV-like in the seed score."""
MOTION_STEP = 2
"""The temporal standard deviation is computed on every ``MOTION_STEP``-th pixel (enough to find a heart)."""


def temporal_std(stack: FloatArray) -> FloatArray:
    """(S, Y', X') standard deviation over the cardiac phases of a stack (S, P, Y, X), float32, on
    every :data:`MOTION_STEP`-th pixel along y and x."""
    x = np.asarray(stack[:, :, ::MOTION_STEP, ::MOTION_STEP], dtype=np.float32)
    mean = x.mean(axis=1)
    return np.sqrt(np.maximum((x * x).mean(axis=1) - mean * mean, 0.0))


def heart_centre(motion: FloatArray, pixel_mm: float) -> tuple[float, float]:
    """(y, x) full-resolution pixel position of the largest temporal standard deviation (``motion``
    from :func:`temporal_std`) summed over slices, smoothed over ≈ 15 mm."""
    smooth = ndimage.gaussian_filter(motion.sum(axis=0), 15.0 / (pixel_mm * MOTION_STEP))
    y, x = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    return float(y * MOTION_STEP), float(x * MOTION_STEP)


def _circularity(region: BoolArray) -> float:
    """4π·area / perimeter² with the perimeter counted as boundary pixels × ≈ 1.1 (1 for a disc)."""
    boundary = region & ~ndimage.binary_erosion(region)
    perimeter = 1.1 * float(boundary.sum())
    return float(4.0 * np.pi * region.sum() / max(perimeter, 1.0) ** 2)


def _wall_mm(mean_image: FloatArray, region: BoolArray, threshold: float, pixel_mm: float) -> float:
    """Median thickness of the dark wall around a bright region (rays to the next bright structure), mm."""
    from recon.cine.function.rays import ring_profile

    cy, cx = ndimage.center_of_mass(region)
    ring = ring_profile(mean_image, region, (float(cy), float(cx)), threshold, 25.0 / pixel_mm)
    return float(np.median(ring.epi_radius_px - ring.endo_radius_px)) * pixel_mm


def _best_lv_region(
    mean_image: FloatArray, centre: tuple[float, float], pixel_mm: float, search_mm: float
) -> tuple[BoolArray, float] | None:
    """The bright region near the heart centre that is round and has a thick wall (the LV; the RV is a
    crescent with a thin free wall), of plausible size, and its score."""
    roi = disc_mask(mean_image.shape, centre, search_mm / pixel_mm)
    threshold = otsu_threshold(mean_image[roi])
    bright = ndimage.binary_opening(mean_image > threshold) & roi
    labels, n = ndimage.label(bright)
    best: tuple[BoolArray, float] | None = None
    for k in range(1, n + 1):
        region = labels == k
        area_mm2 = float(region.sum()) * pixel_mm**2
        if not 150.0 <= area_mm2 <= 12000.0:
            continue
        cy, cx = ndimage.center_of_mass(region)
        distance_mm = float(np.hypot(cy - centre[0], cx - centre[1])) * pixel_mm
        wall = min(_wall_mm(mean_image, region, threshold, pixel_mm), LV_WALL_MM) / LV_WALL_MM
        score = _circularity(region) * wall * np.sqrt(area_mm2) * np.exp(-distance_mm / 100.0)
        if best is None or score > best[1]:
            best = (region, score)
    return best


def locate_heart(
    stack: FloatArray, pixel_mm: float, motion: FloatArray | None = None, search_mm: float = 80.0
) -> HeartLocation | None:
    """Heart centre and LV seed of a short-axis stack (S, P, Y, X); None when no LV-like region is found.
    ``motion``: :func:`temporal_std` of the stack when already computed."""
    n_slices = stack.shape[0]
    centre = heart_centre(temporal_std(stack) if motion is None else motion, pixel_mm)
    candidates = range(max(0, n_slices // 3), max(1, (2 * n_slices + 2) // 3))
    found: list[tuple[float, int, BoolArray]] = []
    for s in candidates:
        best = _best_lv_region(stack[s].mean(axis=0), centre, pixel_mm, search_mm)
        if best is not None:
            found.append((best[1], s, best[0]))
    if not found:
        return None
    _, s, region = max(found, key=lambda f: f[0])
    cy, cx = ndimage.center_of_mass(region)
    radius_mm = float(np.sqrt(region.sum() / np.pi)) * pixel_mm
    return HeartLocation(centre, (float(cy), float(cx)), s, radius_mm)
