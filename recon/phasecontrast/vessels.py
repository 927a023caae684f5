"""Automatic vessel regions of interest from magnitude and velocity.

Blood in a large vessel cut through-plane has a strongly pulsatile velocity, static tissue has only
phase noise.  The temporal standard deviation of the velocity, restricted to pixels with signal, is
therefore the detection feature:

1. seeds: pixels whose feature exceeds ``seed_fraction`` of the strongest vessel's (the maximum of the
   3×3 median-filtered feature, so that isolated outlier pixels do not set it) and
   ``noise_factor`` times the robust (median) level of the slice;
2. 8-connected seed regions smaller than ``min_area_pixels`` are dropped; the ``n_vessels`` with the
   largest summed feature are kept;
3. each region grows (all regions at once, a pixel belongs to the first that reaches it) into
   neighbouring signal pixels whose feature exceeds ``grow_factor`` times the noise level and whose
   velocity curve correlates with the region's mean curve by at least ``min_correlation`` — the slow
   blood near the wall moves in step with the core, noise does not — and finally by
   ``edge_margin_pixels`` into signal pixels, so that partial-volume edge pixels are counted (their
   velocity is diluted by the static fraction, so including them is unbiased while cutting them off
   would lose flow).  Noise-only pixels (outside ``signal_mask``) never join a region.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class VesselROI:
    """One detected vessel.

    Attributes:
        mask: ``(y, x)`` boolean region of interest.
        centroid_yx: centre of mass in pixels ``(y, x)``.
        n_pixels: pixels in ``mask``.
        score: summed temporal velocity standard deviation over the seed region (cm/s · pixels).
    """

    mask: torch.Tensor
    centroid_yx: tuple[float, float]
    n_pixels: int
    score: float

    def __post_init__(self) -> None:
        if self.mask.ndim != 2 or self.mask.dtype != torch.bool:
            raise ValueError("vessel mask must be a (y, x) boolean tensor")
        if self.n_pixels != int(self.mask.sum()):
            raise ValueError("n_pixels does not match the mask")


def _seed_regions(
    feature: np.ndarray,
    signal: np.ndarray,
    seed_fraction: float,
    noise_level: float,
    noise_factor: float,
    min_area_pixels: int,
) -> list[tuple[np.ndarray, float]]:
    # the strongest vessel's level from a 3×3 median: an isolated pixel (Gibbs ringing next to a bright
    # vessel, a partial-volume edge) can carry a large velocity spread but is no vessel
    smooth = ndimage.median_filter(feature, size=3)
    peak = float(smooth[signal].max()) if signal.any() else 0.0
    seeds = signal & (feature > max(seed_fraction * peak, noise_factor * noise_level))
    labels, n = ndimage.label(seeds, structure=_EIGHT)
    regions = []
    for index in range(1, n + 1):
        region = labels == index
        if int(region.sum()) >= min_area_pixels:
            regions.append((region, float(feature[region].sum())))
    return sorted(regions, key=lambda r: -r[1])


def _correlation_with_mean(curves: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Pearson correlation over time of every pixel's curve ``(phases, y, x)`` with the region's mean curve."""
    mean_curve = curves[:, region].mean(axis=1)
    a = curves - curves.mean(axis=0, keepdims=True)
    b = (mean_curve - mean_curve.mean())[:, None, None]
    denominator = np.sqrt((a**2).sum(axis=0) * float((b**2).sum())) + 1e-12
    return (a * b).sum(axis=0) / denominator


def _grow(regions: list[np.ndarray], allowed: list[np.ndarray], n_steps: int) -> list[np.ndarray]:
    claimed = np.logical_or.reduce(regions) if regions else np.zeros_like(allowed[0])
    grown = [r.copy() for r in regions]
    for _ in range(n_steps):
        changed = False
        for r, ok in zip(grown, allowed, strict=True):
            new = ndimage.binary_dilation(r, structure=_EIGHT) & ok & ~claimed
            if new.any():
                r |= new
                claimed |= new
                changed = True
        if not changed:
            break
    return grown


def find_vessels(
    velocity_cm_per_s: torch.Tensor,
    signal_mask: torch.Tensor,
    n_vessels: int = 1,
    seed_fraction: float = 0.4,
    noise_factor: float = 6.0,
    grow_factor: float = 3.0,
    edge_margin_pixels: int = 1,
    min_area_pixels: int = 4,
    max_grow_steps: int = 20,
    min_correlation: float = 0.6,
) -> list[VesselROI]:
    """Detect up to ``n_vessels`` pulsatile vessels in ``(phases, y, x)`` velocity maps (strongest first).

    ``signal_mask`` ``(y, x)`` excludes noise-only pixels.  Returns fewer regions when fewer are found.
    """
    if velocity_cm_per_s.ndim != 3 or velocity_cm_per_s.shape[0] < 3:
        raise ValueError(f"velocity must be (phases ≥ 3, y, x), got {tuple(velocity_cm_per_s.shape)}")
    feature = velocity_cm_per_s.std(dim=0).detach().cpu().numpy().astype(np.float64)
    signal = signal_mask.detach().cpu().numpy().astype(bool)
    if not signal.any():
        return []
    noise_level = float(np.median(feature[signal]))
    regions = _seed_regions(feature, signal, seed_fraction, noise_level, noise_factor, min_area_pixels)[
        :n_vessels
    ]
    if not regions:
        return []
    curves = velocity_cm_per_s.detach().cpu().numpy().astype(np.float64)
    pulsatile = signal & (feature > grow_factor * noise_level)
    allowed = [pulsatile & (_correlation_with_mean(curves, r) >= min_correlation) for r, _ in regions]
    grown = _grow([r for r, _ in regions], allowed, max_grow_steps)
    final_regions = _grow(grown, [signal] * len(grown), edge_margin_pixels)
    result = []
    for final, (_, score) in zip(final_regions, regions, strict=True):
        cy, cx = ndimage.center_of_mass(final)
        mask = torch.from_numpy(final).to(velocity_cm_per_s.device)
        result.append(
            VesselROI(mask=mask, centroid_yx=(float(cy), float(cx)), n_pixels=int(final.sum()), score=score)
        )
    return result
