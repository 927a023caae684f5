"""Voxelised shape masks and smooth within-tissue variation for the PET phantoms.

Coordinates are scanner/patient coordinates in mm (LPS for a head-first supine patient, see
:mod:`recon.tof.geometry`).  Masks are evaluated at voxel centres through broadcasting open grids
``z (nz,1,1)``, ``y (1,ny,1)``, ``x (1,1,nx)``, so no full coordinate arrays are built.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from recon.tof.geometry import ImageGrid


@dataclass(frozen=True)
class OpenGrid:
    """Voxel-centre coordinates of an :class:`ImageGrid` as broadcastable arrays, float64, mm.

    Attributes:
        z: shape ``(nz, 1, 1)``.
        y: shape ``(1, ny, 1)``.
        x: shape ``(1, 1, nx)``.
    """

    z: np.ndarray
    y: np.ndarray
    x: np.ndarray

    @classmethod
    def of(cls, grid: ImageGrid) -> OpenGrid:
        """Open grid of the voxel centres of ``grid``."""
        return cls(
            grid.axis_centres_mm(0)[:, None, None],
            grid.axis_centres_mm(1)[None, :, None],
            grid.axis_centres_mm(2)[None, None, :],
        )

    def full(self, mask: np.ndarray) -> np.ndarray:
        """Broadcast a mask to the full grid shape (bool)."""
        shape = (self.z.shape[0], self.y.shape[1], self.x.shape[2])
        return np.broadcast_to(mask, shape).copy()


def ellipsoid(
    g: OpenGrid, centre_xyz_mm: tuple[float, float, float], semi_axes_xyz_mm: tuple[float, float, float]
) -> np.ndarray:
    """Mask of an axis-aligned ellipsoid."""
    (cx, cy, cz), (ax, ay, az) = centre_xyz_mm, semi_axes_xyz_mm
    return g.full(((g.x - cx) / ax) ** 2 + ((g.y - cy) / ay) ** 2 + ((g.z - cz) / az) ** 2 <= 1.0)


def sphere(g: OpenGrid, centre_xyz_mm: tuple[float, float, float], radius_mm: float) -> np.ndarray:
    """Mask of a sphere."""
    return ellipsoid(g, centre_xyz_mm, (radius_mm, radius_mm, radius_mm))


def elliptic_cylinder(
    g: OpenGrid,
    centre_xy_mm: tuple[float, float],
    semi_axes_xy_mm: tuple[float, float],
    z_range_mm: tuple[float, float],
) -> np.ndarray:
    """Mask of a cylinder along z with an elliptic cross-section."""
    (cx, cy), (ax, ay) = centre_xy_mm, semi_axes_xy_mm
    inside_xy = ((g.x - cx) / ax) ** 2 + ((g.y - cy) / ay) ** 2 <= 1.0
    inside_z = (g.z >= z_range_mm[0]) & (g.z <= z_range_mm[1])
    return g.full(inside_xy & inside_z)


def box(
    g: OpenGrid, lower_xyz_mm: tuple[float, float, float], upper_xyz_mm: tuple[float, float, float]
) -> np.ndarray:
    """Mask of an axis-aligned box."""
    (x0, y0, z0), (x1, y1, z1) = lower_xyz_mm, upper_xyz_mm
    return g.full((g.x >= x0) & (g.x <= x1) & (g.y >= y0) & (g.y <= y1) & (g.z >= z0) & (g.z <= z1))


def smooth_field(
    shape_zyx: tuple[int, int, int],
    voxel_size_mm: tuple[float, float, float],
    correlation_mm: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """A smooth random field scaled to [0, 1] (Gaussian-filtered white noise), float32, ``shape_zyx``."""
    noise = rng.standard_normal(shape_zyx).astype(np.float32)
    sigma = tuple(max(correlation_mm / s, 0.5) for s in voxel_size_mm)
    field = gaussian_filter(noise, sigma=sigma, mode="reflect")
    low, high = float(field.min()), float(field.max())
    return ((field - low) / max(high - low, 1e-12)).astype(np.float32)


def assign_tissue(
    mu_per_cm: np.ndarray,
    labels: np.ndarray,
    mask: np.ndarray,
    label: int,
    mu_range_per_cm: tuple[float, float],
    field: np.ndarray,
) -> None:
    """Paint ``label`` into ``labels`` and a μ varying within ``mu_range_per_cm`` (by ``field``) in place."""
    low, high = mu_range_per_cm
    labels[mask] = label
    mu_per_cm[mask] = low + (high - low) * field[mask]
