"""Linear attenuation coefficients at 511 keV: tissue classes → μ-map, smoothing to the PET resolution,
and the hardware μ-map (patient table, rigid RF coils from :mod:`recon.petmr_ac.coil_templates`).

Default coefficients (per cm, 511 keV) follow the 4-class Dixon segmentation of Martinez-Möller et al.
(J Nucl Med 2009): air 0, lung 0.018, fat 0.086, soft tissue 0.100; bone 0.172 (NIST cortical bone) where a
bone class exists.  NIST for comparison: water 0.096, adipose tissue 0.091.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from recon.petmr_ac.coil_templates import PlacedCoil, coil_fraction
from recon.petmr_ac.grid import VoxelGrid
from recon.petmr_ac.tissue import TissueClass

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


@dataclass(frozen=True)
class MuCoefficients:
    """μ at 511 keV per tissue class (1/cm, each in [0, 0.5]).

    Attributes:
        air_mu_per_cm: background and air (0).
        lung_mu_per_cm: lung (0.018, the Martinez-Möller value for inflated lung).
        fat_mu_per_cm: adipose tissue (0.086).
        soft_tissue_mu_per_cm: soft tissue (0.100).
        bone_mu_per_cm: cortical bone (0.172), used only where a bone class exists.
    """

    air_mu_per_cm: float = 0.0
    lung_mu_per_cm: float = 0.018
    fat_mu_per_cm: float = 0.086
    soft_tissue_mu_per_cm: float = 0.100
    bone_mu_per_cm: float = 0.172

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if not 0.0 <= float(value) <= 0.5:
                raise ValueError(f"{name} must be in [0, 0.5] /cm, got {value}")

    def lookup_table(self) -> np.ndarray:
        """μ indexed by :class:`TissueClass` value, shape (5,), float32 (1/cm)."""
        table = np.zeros(len(TissueClass), dtype=np.float32)
        table[TissueClass.AIR] = self.air_mu_per_cm
        table[TissueClass.LUNG] = self.lung_mu_per_cm
        table[TissueClass.FAT] = self.fat_mu_per_cm
        table[TissueClass.SOFT_TISSUE] = self.soft_tissue_mu_per_cm
        table[TissueClass.BONE] = self.bone_mu_per_cm
        return table


def labels_to_mu(labels: np.ndarray, coefficients: MuCoefficients | None = None) -> np.ndarray:
    """μ-map (1/cm, float32) from a :class:`TissueClass` label volume of any shape."""
    table = (coefficients or MuCoefficients()).lookup_table()
    if labels.size and int(labels.max()) >= len(table):
        raise ValueError(f"label {int(labels.max())} is not a TissueClass value")
    return table[labels.astype(np.intp)]


def smooth_to_resolution(mu_per_cm: np.ndarray, voxel_size_mm: Sequence[float], fwhm_mm: float) -> np.ndarray:
    """Gaussian smoothing of a μ-map to an isotropic resolution ``fwhm_mm`` (mm; 0 = unchanged).

    Matches the sharp tissue boundaries of the segmentation to the PET resolution, so that a small
    misregistration does not produce edge artefacts; μ integrals are preserved (mode ``nearest``)."""
    if fwhm_mm < 0:
        raise ValueError(f"fwhm_mm must be ≥ 0, got {fwhm_mm}")
    if fwhm_mm == 0:
        return mu_per_cm.astype(np.float32)
    sigma = [fwhm_mm / FWHM_PER_SIGMA / float(v) for v in voxel_size_mm]
    return ndimage.gaussian_filter(mu_per_cm.astype(np.float32), sigma, mode="nearest", truncate=3.0)


@dataclass(frozen=True)
class HardwareBox:
    """One hardware component approximated by a box, in patient/scanner coordinates.

    Attributes:
        name: what it is (``"table"``, ``"anterior coil"``).
        centre_zyx_mm: centre of the box (z, y, x), mm.
        size_zyx_mm: edge lengths (z, y, x), mm, each > 0.
        mu_per_cm: its effective μ at 511 keV (1/cm, ≥ 0).
    """

    name: str
    centre_zyx_mm: tuple[float, float, float]
    size_zyx_mm: tuple[float, float, float]
    mu_per_cm: float

    def __post_init__(self) -> None:
        if len(self.centre_zyx_mm) != 3 or len(self.size_zyx_mm) != 3 or min(self.size_zyx_mm) <= 0:
            raise ValueError(f"{self.name}: centre and size need 3 entries, sizes > 0")
        if self.mu_per_cm < 0:
            raise ValueError(f"{self.name}: mu_per_cm must be ≥ 0, got {self.mu_per_cm}")


def default_table(
    table_top_y_mm: float = 120.0,
    mu_per_cm: float = 0.025,
    thickness_mm: float = 30.0,
    width_mm: float = 450.0,
    length_mm: float = 2000.0,
) -> HardwareBox:
    """A flat patient table below a supine patient (+y is posterior).

    The default (30 mm thick, μ 0.025 /cm: foam-core composite, ≈ 7 % attenuation vertically) is an
    illustrative stand-in: a site uses its vendor's CT-derived table template instead."""
    centre = (0.0, table_top_y_mm + thickness_mm / 2.0, 0.0)
    return HardwareBox("table", centre, (length_mm, thickness_mm, width_mm), mu_per_cm)


HardwareComponent = HardwareBox | PlacedCoil


def hardware_mumap(
    grid: VoxelGrid, components: Sequence[HardwareComponent], n_subsamples: int = 3
) -> np.ndarray:
    """μ-map (1/cm, float32, grid shape) of hardware (table boxes, rigid coil templates) with partial-volume
    fractions: exact box overlaps for an axis-aligned grid (coils: 5² transverse sub-samples, exact along z),
    else ``n_subsamples``³ sample points per voxel; overlapping components take the larger μ.
    It depends only on the PET grid, so a chain computes it once."""
    a = grid.affine_zyx[:3, :3]
    if np.allclose(a, np.diag(np.diag(a))) and np.all(np.diag(a) > 0):
        return _hardware_axis_aligned(grid, components)
    out = np.zeros(grid.shape_zyx, dtype=np.float32)
    offsets = (np.arange(n_subsamples) + 0.5) / n_subsamples - 0.5
    index = np.stack(
        np.meshgrid(*[np.arange(n, dtype=np.float64) for n in grid.shape_zyx], indexing="ij"), axis=-1
    )
    for component in components:
        fraction = np.zeros(grid.shape_zyx, dtype=np.float32)
        for dz in offsets:
            for dy in offsets:
                for dx in offsets:
                    p = grid.index_to_patient(index + np.array([dz, dy, dx]))
                    fraction += _inside(component, p)
        out = np.maximum(out, component.mu_per_cm * fraction / n_subsamples**3)
    return out


def _inside(component: HardwareComponent, points_zyx_mm: np.ndarray) -> np.ndarray:
    """True for points ``(..., 3)`` (z, y, x, mm) inside a hardware component."""
    if isinstance(component, PlacedCoil):
        return component.contains(points_zyx_mm)
    lo = np.asarray(component.centre_zyx_mm) - np.asarray(component.size_zyx_mm) / 2
    hi = np.asarray(component.centre_zyx_mm) + np.asarray(component.size_zyx_mm) / 2
    return np.all((points_zyx_mm >= lo) & (points_zyx_mm < hi), axis=-1)


def _hardware_axis_aligned(grid: VoxelGrid, components: Sequence[HardwareComponent]) -> np.ndarray:
    """Voxel/component overlap fractions on an axis-aligned grid (boxes exact and separable per axis)."""
    out = np.zeros(grid.shape_zyx, dtype=np.float32)
    size = np.diag(grid.affine_zyx[:3, :3])
    for box in components:
        if isinstance(box, PlacedCoil):
            out = np.maximum(out, (box.mu_per_cm * coil_fraction(grid, box)).astype(np.float32))
            continue
        fractions = []
        for axis in range(3):
            centres = grid.affine_zyx[axis, 3] + size[axis] * np.arange(grid.shape_zyx[axis])
            lo_box = box.centre_zyx_mm[axis] - box.size_zyx_mm[axis] / 2
            hi_box = box.centre_zyx_mm[axis] + box.size_zyx_mm[axis] / 2
            overlap = np.minimum(centres + size[axis] / 2, hi_box) - np.maximum(
                centres - size[axis] / 2, lo_box
            )
            fractions.append(np.clip(overlap / size[axis], 0.0, 1.0))
        fraction = fractions[0][:, None, None] * fractions[1][None, :, None] * fractions[2][None, None, :]
        out = np.maximum(out, (box.mu_per_cm * fraction).astype(np.float32))
    return out
