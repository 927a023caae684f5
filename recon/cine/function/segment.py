"""Classical segmentation of a short-axis cine stack: LV blood pool, LV myocardium, RV blood pool.

Per slice and phase (images ``(S, P, Y, X)`` float magnitudes, one intensity scale per slice):

1. LV blood pool: the bright connected region (above the slice's blood/myocardium threshold) at the
   LV centre tracked from the seed slice (:mod:`recon.cine.function.localize`) slice by slice outward,
   phase by phase.  Papillary muscles and trabeculae are darker than blood, so they stay outside the
   pool and count as myocardium (as in the simulator's truth and in most CMR core labs' mass rules).
2. LV myocardium: the dark band from the pool out to the epicardial fat (or the RV blood across the
   septum) along rays (:mod:`recon.cine.function.rays`), holes of the pool included.
3. Basal rule: a region counts as ventricle only if the myocardial ring around it covers at least
   ``min_ring_coverage`` of its circumference (rays that meet the epicardial fat or the RV); above the
   descending mitral annulus a basal slice shows the left atrium and the LV outflow tract, which have no
   such ring, so they are left out phase by phase (no LVOT blood is counted as LV).  The RV is counted on
   a slice and phase only where the LV is (one base plane for both ventricles); the RV outflow tract
   above that plane is therefore not counted either.  At the apex, a slice without a pool next to a
   slice with one counts its myocardial cap (the dark disc at the tracked centre) and the RV beside it.
4. RV blood pool: the largest bright region next to the LV's septal wall, opened by one pixel so the
   thin epicardial fat around the ventricles is not taken for blood.

The slice threshold is the midpoint of the blood and myocardium intensities measured on the slice's own
first segmentation (50 % partial-volume boundary), refined twice.  A slice whose LV cannot be found in a
phase where the slices on both sides have one is reported as failed (slice and phases); its areas there
are interpolated from its neighbours so that volumes stay comparable, and the report names it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from recon.cine.function.localize import HeartLocation, disc_mask, locate_heart, otsu_threshold
from recon.cine.function.rays import polar_mask, ring_profile

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
_SQUARE = np.ones((3, 3), bool)


@dataclass(frozen=True)
class SegmentationParameters:
    """Tunable constants of the segmentation (lengths in mm)."""

    min_ring_coverage: float = 0.5
    max_wall_mm: float = 25.0
    seed_tolerance_mm: float = 12.0
    min_lv_area_mm2: float = 20.0
    min_rv_area_mm2: float = 60.0
    rv_search_mm: float = 90.0
    n_rays: int = 64
    crop_mm: float = 110.0


@dataclass(frozen=True)
class SliceStatus:
    """What happened on one slice: ``state`` is ``ventricle`` (counted in some phases),
    ``outside`` (beyond the base or apex: no ventricle in any phase) or ``failed`` (no LV found in some
    phase where the slices on both sides have one; areas there interpolated); ``n_phases_counted`` and a
    human ``message`` (naming the failed phases)."""

    slice_index: int
    state: str
    n_phases_counted: int
    message: str


@dataclass(frozen=True)
class StackSegmentation:
    """Masks and bookkeeping of a segmented stack.

    Attributes:
        lv_blood, lv_myocardium, rv_blood: (S, P, Y, X) bool masks (empty where not counted).
        counted: (S, P) bool, the slice and phase counts as ventricle (basal rule).
        lv_centre_yx: (S, P, 2) float64 LV centre used for the rays (NaN where none).
        ring_coverage: (S, P) float64 fraction of the circumference with a myocardial ring.
        threshold: (S,) float64 blood/myocardium threshold per slice (image units).
        status: per-slice status.
        location: where the heart was found.
    """

    lv_blood: BoolArray
    lv_myocardium: BoolArray
    rv_blood: BoolArray
    counted: BoolArray
    lv_centre_yx: FloatArray
    ring_coverage: FloatArray
    threshold: FloatArray
    status: tuple[SliceStatus, ...]
    location: HeartLocation

    def areas_mm2(self, pixel_area_mm2: float) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(S, P) areas of LV blood, RV blood and LV myocardium, failed slices and phases interpolated."""
        out = []
        for mask in (self.lv_blood, self.rv_blood, self.lv_myocardium):
            area = mask.sum(axis=(2, 3)).astype(np.float64) * pixel_area_mm2
            out.append(_interpolate_failed(area, self.counted))
        return out[0], out[1], out[2]


def _interpolate_failed(area: FloatArray, counted: BoolArray) -> FloatArray:
    """Areas of failed slices and phases (:func:`failed_phases`) interpolated over the counted slices."""
    failed = failed_phases(counted)
    out = area.copy()
    for p in np.nonzero(failed.any(axis=0))[0]:
        good = np.nonzero(counted[:, p])[0]
        bad = np.nonzero(failed[:, p])[0]
        out[bad, p] = np.interp(bad, good, area[good, p])
    return out


@dataclass(frozen=True)
class _PhaseResult:
    blood: BoolArray
    myocardium: BoolArray
    centre: tuple[float, float]
    coverage: float


def _lv_region(
    image: FloatArray, threshold: float, seed: tuple[float, float], tol_px: float
) -> BoolArray | None:
    """The bright connected region at (or nearest within ``tol_px`` to) the seed."""
    labels, n = ndimage.label(image > threshold)
    if n == 0:
        return None
    y, x = round(seed[0]), round(seed[1])
    if 0 <= y < image.shape[0] and 0 <= x < image.shape[1] and labels[y, x] > 0:
        return np.asarray(labels == labels[y, x])
    near = labels[disc_mask(image.shape, seed, tol_px) & (labels > 0)]
    if near.size == 0:
        return None
    values, counts = np.unique(near, return_counts=True)
    return np.asarray(labels == values[int(np.argmax(counts))])


def _segment_phase(
    image: FloatArray,
    threshold: float,
    seed: tuple[float, float],
    pixel_mm: float,
    prm: SegmentationParameters,
    apical: tuple[float, bool] | None,
) -> _PhaseResult | None:
    """LV pool and myocardium of one image.  Towards the apex (``apical``: largest plausible pool in
    pixels, from the last counted slice, and whether a cap may follow) a larger region is not the LV;
    without a pool there, the myocardial cap (the dark disc at the seed) is returned with an empty pool."""
    found = _lv_region(image, threshold, seed, prm.seed_tolerance_mm / pixel_mm)
    n_px = 0 if found is None else int(found.sum())
    too_large = apical is not None and n_px > apical[0]
    if found is None or n_px * pixel_mm**2 < prm.min_lv_area_mm2 or too_large:
        if apical is None or not apical[1]:
            return None
        centre = seed
        start = disc_mask(image.shape, seed, 0.5)
        blood = np.zeros_like(start)
    else:
        start = blood = found
        cy, cx = ndimage.center_of_mass(blood)
        centre = (float(cy), float(cx))
    ring = ring_profile(image, start, centre, threshold, prm.max_wall_mm / pixel_mm, prm.n_rays)
    epi = polar_mask(image.shape, centre, ring.angles_rad, ring.epi_radius_px)
    return _PhaseResult(blood, epi & ~blood, centre, ring.coverage)


def _slice_threshold(images: FloatArray, seed: tuple[float, float], radius_px: float) -> float:
    """Initial blood/myocardium threshold: Otsu of the time-mean image around the LV."""
    roi = disc_mask(images.shape[1:], seed, radius_px)
    return otsu_threshold(images.mean(axis=0)[roi])


def _refined_threshold(images: FloatArray, results: list[_PhaseResult | None], fallback: float) -> float:
    """Midpoint of the median blood (eroded pool) and median myocardium intensities."""
    blood, myo = [], []
    for image, r in zip(images, results, strict=True):
        if r is None:
            continue
        core = ndimage.binary_erosion(r.blood)
        blood.append(image[core])
        myo.append(image[ndimage.binary_erosion(r.myocardium)])
    if not blood or sum(b.size for b in blood) < 10 or sum(m.size for m in myo) < 10:
        return fallback
    return 0.5 * (float(np.median(np.concatenate(blood))) + float(np.median(np.concatenate(myo))))


def _segment_slice(
    images: FloatArray,
    seeds: list[tuple[float, float]],
    radius_px: float,
    pixel_mm: float,
    prm: SegmentationParameters,
    apical_limits: list[tuple[float, bool] | None],
    initial_threshold: float | None,
) -> tuple[list[_PhaseResult | None], float]:
    """Every phase of one slice; the slice threshold (initially the neighbour's, or Otsu's on the seed
    slice) is refined twice on every fifth phase first."""
    threshold = initial_threshold or _slice_threshold(images, seeds[0], radius_px)
    subset = list(range(0, images.shape[0], 5))
    for _ in range(2):
        results = [
            _segment_phase(images[p], threshold, seeds[p], pixel_mm, prm, apical_limits[p]) for p in subset
        ]
        threshold = _refined_threshold(images[subset], results, threshold)
    final = [
        _segment_phase(images[p], threshold, seeds[p], pixel_mm, prm, apical_limits[p])
        for p in range(images.shape[0])
    ]
    return final, threshold


def _rv_region(
    image: FloatArray, threshold: float, lv: _PhaseResult, pixel_mm: float, prm: SegmentationParameters
) -> BoolArray:
    """The RV blood pool next to the LV's wall: the largest bright region (opened by one pixel, so
    that the thin epicardial fat drops out) within ``rv_search_mm`` of the LV centre and touching the
    dilated LV epicardium; grown back by up to two pixels within the bright mask."""
    out = np.zeros(image.shape, bool)
    box = _crop_box(image.shape, lv.centre, round(prm.rv_search_mm / pixel_mm))
    centre = (lv.centre[0] - box[0].start, lv.centre[1] - box[1].start)
    epi = (lv.blood | lv.myocardium)[box]
    window = image[box]
    bright = (window > threshold) & ~epi & disc_mask(window.shape, centre, prm.rv_search_mm / pixel_mm)
    core = ndimage.binary_opening(bright, structure=_SQUARE)
    labels, n = ndimage.label(core)
    if n == 0:
        return out
    ys, xs = np.nonzero(epi)
    wall = (slice(max(0, ys.min() - 3), ys.max() + 4), slice(max(0, xs.min() - 3), xs.max() + 4))
    near_wall = ndimage.binary_dilation(epi[wall], structure=_SQUARE, iterations=2)
    touching = np.unique(labels[wall][near_wall & (labels[wall] > 0)])
    if touching.size == 0:
        return out
    sizes = ndimage.sum_labels(core, labels, touching)
    best = labels == touching[int(np.argmax(sizes))]
    if best.sum() * pixel_mm**2 < prm.min_rv_area_mm2:
        return out
    ys, xs = np.nonzero(best)
    y0, x0 = max(0, ys.min() - 3), max(0, xs.min() - 3)
    sub = (slice(y0, ys.max() + 4), slice(x0, xs.max() + 4))
    grown = np.zeros_like(best)
    grown[sub] = bright[sub] & ndimage.binary_dilation(best[sub], iterations=2)
    out[box] = grown
    return out


def _slice_order(n_slices: int, seed_slice: int) -> list[tuple[int, int | None]]:
    """(slice, neighbour already done) from the seed slice outward to both ends."""
    order: list[tuple[int, int | None]] = [(seed_slice, None)]
    order += [(s, s + 1) for s in range(seed_slice - 1, -1, -1)]
    order += [(s, s - 1) for s in range(seed_slice + 1, n_slices)]
    return order


def _crop_box(shape: tuple[int, ...], centre: tuple[float, float], half_px: int) -> tuple[slice, slice]:
    """The (y, x) window of ± ``half_px`` around a centre, clipped to the image."""
    y0 = max(0, round(centre[0]) - half_px)
    x0 = max(0, round(centre[1]) - half_px)
    return slice(y0, min(shape[-2], y0 + 2 * half_px)), slice(x0, min(shape[-1], x0 + 2 * half_px))


def segment_stack(
    stack: FloatArray,
    pixel_mm: float,
    prm: SegmentationParameters | None = None,
    motion: FloatArray | None = None,
) -> StackSegmentation | None:
    """Segment a short-axis stack ``(S, P, Y, X)`` (slice 0 basal); None when no LV is found at all.

    The work is done in a window of ± ``crop_mm`` around the LV seed; masks come back full size.
    ``motion``: the stack's :func:`~recon.cine.function.localize.temporal_std` when already computed."""
    prm = prm or SegmentationParameters()
    location = locate_heart(stack, pixel_mm, motion)
    if location is None:
        return None
    box = _crop_box(stack.shape, location.lv_centre_yx, round(prm.crop_mm / pixel_mm))
    seed = (location.lv_centre_yx[0] - box[0].start, location.lv_centre_yx[1] - box[1].start)
    masks, centres, coverage, counted, thresholds = _segment_cropped(
        np.ascontiguousarray(stack[:, :, box[0], box[1]]), seed, location, pixel_mm, prm
    )
    full = [np.zeros(stack.shape, bool) for _ in range(3)]
    for f, m in zip(full, masks, strict=True):
        f[:, :, box[0], box[1]] = m
    centres += np.array([box[0].start, box[1].start], dtype=np.float64)
    status = _slice_status(counted, centres)
    return StackSegmentation(
        full[0], full[1], full[2], counted, centres, coverage, thresholds, status, location
    )


@dataclass(frozen=True)
class _Track:
    """Per phase: the LV centre and pool size (pixels) on the nearest counted slice of the current
    direction, and whether that slice is the one just done (an apical cap may only follow a pool)."""

    centre: FloatArray
    pool_px: FloatArray
    adjacent: BoolArray

    def seeds(self) -> list[tuple[float, float]]:
        return [(float(c[0]), float(c[1])) for c in self.centre]

    def limits(self, apical: bool) -> list[tuple[float, bool] | None]:
        if not apical:
            return [None] * self.pool_px.size
        return [(1.5 * float(a) + 4.0, bool(adj)) for a, adj in zip(self.pool_px, self.adjacent, strict=True)]

    def updated(self, results: list[_PhaseResult | None], lv: BoolArray, min_coverage: float) -> _Track:
        centre, pool, adjacent = self.centre.copy(), self.pool_px.copy(), np.zeros_like(self.adjacent)
        for p, r in enumerate(results):
            if r is not None and r.coverage >= min_coverage and lv[p].any():
                centre[p], pool[p], adjacent[p] = r.centre, float(lv[p].sum()), True
        return _Track(centre, pool, adjacent)


def _segment_cropped(
    stack: FloatArray,
    seed: tuple[float, float],
    location: HeartLocation,
    pixel_mm: float,
    prm: SegmentationParameters,
) -> tuple[list[BoolArray], FloatArray, FloatArray, BoolArray, FloatArray]:
    """The slice-by-slice tracking on the cropped stack: (LV, myocardium, RV masks), centres,
    ring coverage, counted and thresholds."""
    n_s, n_p = stack.shape[:2]
    lv, myo, rv = (np.zeros(stack.shape, bool) for _ in range(3))
    centres = np.full((n_s, n_p, 2), np.nan)
    coverage = np.zeros((n_s, n_p))
    counted = np.zeros((n_s, n_p), bool)
    thresholds = np.zeros(n_s)
    radius_px = (1.6 * location.lv_radius_mm + 15.0) / pixel_mm
    track = _Track(np.tile(np.asarray(seed, dtype=np.float64), (n_p, 1)), np.zeros(n_p), np.zeros(n_p, bool))
    seed_track = track
    for s, previous in _slice_order(n_s, location.seed_slice):
        if previous is not None and previous == location.seed_slice:
            track = seed_track  # the other direction starts again from the seed slice
        apical = previous is not None and previous < s
        initial = None if previous is None else float(thresholds[previous])
        results, thresholds[s] = _segment_slice(
            stack[s], track.seeds(), radius_px, pixel_mm, prm, track.limits(apical), initial
        )
        for p, r in enumerate(results):
            if r is None:
                continue
            centres[s, p] = r.centre
            coverage[s, p] = r.coverage
            if r.coverage >= prm.min_ring_coverage:
                counted[s, p] = True
                lv[s, p], myo[s, p] = r.blood, r.myocardium
                rv[s, p] = _rv_region(stack[s, p], thresholds[s], r, pixel_mm, prm)
        track = track.updated(results, lv[s], prm.min_ring_coverage)
        if previous is None:
            seed_track = track
    return [lv, myo, rv], centres, coverage, counted, thresholds


def failed_phases(counted: BoolArray) -> BoolArray:
    """(S, P): the LV was not counted on a slice and phase although slices on both sides of it were
    (inside the ventricle: a segmentation failure, not the base or apex)."""
    before = np.maximum.accumulate(counted, axis=0)
    after = np.maximum.accumulate(counted[::-1], axis=0)[::-1]
    inner = np.zeros_like(counted)
    inner[1:-1] = before[:-2] & after[2:]
    return np.asarray(inner & ~counted)


def _slice_status(counted: BoolArray, centres: FloatArray) -> tuple[SliceStatus, ...]:
    """Failed (LV not found in some phase inside the ventricle), ventricle, or outside (beyond the
    base or apex in every phase)."""
    failed = failed_phases(counted)
    out = []
    for s in range(counted.shape[0]):
        n = int(counted[s].sum())
        if failed[s].any():
            phases = np.nonzero(failed[s])[0].tolist()
            found = int(np.isfinite(centres[s, phases, 0]).sum())
            message = (
                f"segmentation failed in phases {phases} (LV region found in {found} of them, no myocardial "
                "ring): areas there interpolated from the neighbouring slices"
            )
            out.append(SliceStatus(s, "failed", n, message))
        elif n > 0:
            out.append(SliceStatus(s, "ventricle", n, f"ventricle counted in {n} phases"))
        else:
            out.append(SliceStatus(s, "outside", 0, "no ventricle (beyond the base or apex)"))
    return tuple(out)
