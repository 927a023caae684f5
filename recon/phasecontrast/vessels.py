"""Automatic vessel regions of interest from magnitude and velocity.

Blood in a large vessel cut through-plane has a strongly pulsatile velocity, static tissue has only
phase noise.  The temporal standard deviation of the velocity, restricted to pixels with signal, is
therefore the detection feature:

1. seeds: pixels whose feature exceeds ``seed_fraction`` of the strongest vessel's and
   ``noise_factor`` times the robust (median) level of the slice;
2. 8-connected seed regions smaller than ``min_area_pixels`` are dropped; the ``n_vessels`` with the
   largest summed feature are kept;
3. each region grows (all regions at once, a pixel belongs to the first that reaches it) into
   neighbouring signal pixels whose feature exceeds ``grow_factor`` times the noise level — the slow
   blood near the wall — and finally by ``edge_margin_pixels`` so that partial-volume edge pixels are
   counted (their velocity is diluted by the static fraction, so including them is unbiased while
   cutting them off would lose flow).
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
    peak = float(feature[signal].max()) if signal.any() else 0.0
    seeds = signal & (feature > max(seed_fraction * peak, noise_factor * noise_level))
    labels, n = ndimage.label(seeds, structure=_EIGHT)
    regions = []
    for index in range(1, n + 1):
        region = labels == index
        if int(region.sum()) >= min_area_pixels:
            regions.append((region, float(feature[region].sum())))
    return sorted(regions, key=lambda r: -r[1])


def _grow(regions: list[np.ndarray], allowed: np.ndarray, n_steps: int) -> list[np.ndarray]:
    claimed = np.logical_or.reduce(regions) if regions else np.zeros_like(allowed)
    grown = [r.copy() for r in regions]
    for _ in range(n_steps):
        changed = False
        for r in grown:
            new = ndimage.binary_dilation(r, structure=_EIGHT) & allowed & ~claimed
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
    grown = _grow([r for r, _ in regions], signal & (feature > grow_factor * noise_level), max_grow_steps)
    final_regions = _grow(grown, np.ones_like(signal), edge_margin_pixels)
    result = []
    for final, (_, score) in zip(final_regions, regions, strict=True):
        cy, cx = ndimage.center_of_mass(final)
        mask = torch.from_numpy(final).to(velocity_cm_per_s.device)
        result.append(
            VesselROI(mask=mask, centroid_yx=(float(cy), float(cx)), n_pixels=int(final.sum()), score=score)
        )
    return result
