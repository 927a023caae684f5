"""Resample a volume from one PET/MR grid to another (trilinear, zero outside), in scanner coordinates."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import map_coordinates

from recon.tof.geometry import ImageGrid


def resample_to_grid(volume: np.ndarray, source: ImageGrid, target: ImageGrid) -> np.ndarray:
    """``volume`` (source.shape_zyx) sampled at the voxel centres of ``target``, float32 (z, y, x).

    Trilinear interpolation of the point values; for a μ-map on a finer grid than the target this keeps the
    local value (no averaging), adequate for attenuation line integrals at PET resolution.
    """
    if tuple(volume.shape) != tuple(source.shape_zyx):
        raise ValueError(f"volume {volume.shape} does not match its grid {source.shape_zyx}")
    if source == target:
        return np.ascontiguousarray(volume, dtype=np.float32)
    coords = [(target.axis_centres_mm(a) - source.origin_mm[a]) / source.voxel_size_mm[a] for a in range(3)]
    zz, yy, xx = np.meshgrid(*coords, indexing="ij")
    out = map_coordinates(
        np.asarray(volume, dtype=np.float32), [zz, yy, xx], order=1, mode="constant", cval=0.0
    )
    return out.astype(np.float32)
