"""Truncation completion: body parts (typically the arms) outside the MR field of view are missing from the
MR-based μ-map; their outline is taken from the non-attenuation-corrected (NAC) PET image (or a TOF back
projection), which sees the whole body, and they are filled with the soft-tissue μ.

Only voxels outside the MR field of view (shrunk by ``fov_margin_mm``, where MR images are distorted and
unreliable) are completed: inside it the MR segmentation is trusted, air included.  The NAC outline there
is placed where the smoothed NAC image falls to ``edge_fraction`` of the completed parts' own plateau in
that slice (half of it by default: the edge of a blurred uniform object), not at a fraction of the hottest
organ, which would put the edge of low-uptake arms in the blur halo outside them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from recon.petmr_ac.grid import VoxelGrid, field_of_view_mask
from recon.petmr_ac.tissue import fill_holes_per_slice


@dataclass(frozen=True)
class TruncationSettings:
    """Parameters of the truncation completion.

    Attributes:
        nac_smoothing_fwhm_mm: Gaussian smoothing of the NAC image before thresholding (mm, ≥ 0).
        nac_threshold_fraction: body = smoothed NAC above this fraction of its 99th percentile (0..1).
        fov_margin_mm: the MR field of view is shrunk by this much before it is trusted (mm, ≥ 0).
        fill_mu_per_cm: μ given to completed voxels (1/cm; soft tissue 0.100 by default).
        edge_fraction: outside the trusted MR region the outline is where the smoothed NAC falls below this
            fraction of the 90th percentile of its candidate voxels there, per slice (0..1).
    """

    nac_smoothing_fwhm_mm: float = 10.0
    nac_threshold_fraction: float = 0.15
    fov_margin_mm: float = 10.0
    fill_mu_per_cm: float = 0.100
    edge_fraction: float = 0.5

    def __post_init__(self) -> None:
        for name in ("nac_threshold_fraction", "edge_fraction"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)}")
        if min(self.nac_smoothing_fwhm_mm, self.fov_margin_mm, self.fill_mu_per_cm) < 0:
            raise ValueError("nac_smoothing_fwhm_mm, fov_margin_mm and fill_mu_per_cm must be ≥ 0")


def nac_body_mask(
    nac_image: np.ndarray,
    voxel_size_mm: Sequence[float],
    settings: TruncationSettings,
    trusted_mr: np.ndarray | None = None,
) -> np.ndarray:
    """Body outline from a NAC PET image (z, y, x): smoothed, thresholded, holes filled per slice (bool).

    With ``trusted_mr`` (PET shape, bool) the outline outside it is refined per slice to where the smoothed
    NAC exceeds ``edge_fraction`` of the 90th percentile of the candidate voxels there (see the module)."""
    sigma = [settings.nac_smoothing_fwhm_mm / 2.3548 / float(v) for v in voxel_size_mm]
    smooth = ndimage.gaussian_filter(np.asarray(nac_image, dtype=np.float32), sigma, mode="constant")
    level = settings.nac_threshold_fraction * float(np.percentile(smooth, 99))
    body = fill_holes_per_slice(smooth > level)
    if trusted_mr is None:
        return body
    outside = body & ~trusted_mr
    for k in range(body.shape[0]):
        if outside[k].any():
            plateau = float(np.percentile(smooth[k][outside[k]], 90))
            body[k] &= trusted_mr[k] | (smooth[k] > settings.edge_fraction * plateau)
    return body


def trusted_mr_region(mr_grid: VoxelGrid, pet_grid: VoxelGrid, margin_mm: float) -> np.ndarray:
    """PET voxels inside the MR field of view shrunk in-plane by ``margin_mm`` (bool, PET shape)."""
    inside = field_of_view_mask(mr_grid, pet_grid)
    vy, vx = pet_grid.voxel_size_mm[1:]
    r = max(round(margin_mm / vy), round(margin_mm / vx))
    if r == 0 or not inside.any():
        return inside
    structure = np.zeros((1, 3, 3), dtype=bool)
    structure[0, 1, :] = structure[0, :, 1] = True
    return ndimage.binary_erosion(inside, structure=structure, iterations=r, border_value=0)


def complete_truncation(
    mu_pet_per_cm: np.ndarray, nac_body: np.ndarray, trusted_mr: np.ndarray, fill_mu_per_cm: float = 0.100
) -> tuple[np.ndarray, np.ndarray]:
    """(completed μ-map, completed-voxel mask): NAC-body voxels outside the trusted MR region get at least
    ``fill_mu_per_cm``; everything else is unchanged."""
    if not (mu_pet_per_cm.shape == nac_body.shape == trusted_mr.shape):
        raise ValueError(
            f"shapes differ: μ {mu_pet_per_cm.shape}, NAC body {nac_body.shape}, MR {trusted_mr.shape}"
        )
    completed = nac_body & ~trusted_mr
    out = mu_pet_per_cm.astype(np.float32).copy()
    out[completed] = np.maximum(out[completed], fill_mu_per_cm)
    return out, completed
