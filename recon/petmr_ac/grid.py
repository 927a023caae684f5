"""Voxel grids located in patient coordinates, and resampling between them by a general affine.

Frame of reference: patient coordinates in mm (DICOM LPS: +x to the patient's left, +y posterior, +z
superior), which for a head-first supine patient are the PET scanner coordinates of
:mod:`recon.tof.geometry`.  Every grid here follows the image axis order (z, y, x) of the project: its
affine ``A`` (4 × 4) maps a voxel index ``(iz, iy, ix, 1)`` to the patient point ``(z, y, x, 1)``.

ISMRMRD images carry ``position`` (x, y, z), ``read_dir`` (direction of increasing ix), ``phase_dir``
(increasing iy), ``slice_dir`` (increasing iz) and ``field_of_view`` / ``matrix_size``.  With centred
FFTs (k-space centre at index n // 2) the point ``position`` is imaged at voxel index n // 2 of each
in-plane axis; :func:`grid_from_ismrmrd` uses that convention (``centre_index="fft"``) or the geometric
centre (n − 1) / 2 (``centre_index="geometric"``, as DICOM-converted data often assume).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from recon.petmr_ac.fat_model import Floats


@dataclass(frozen=True)
class VoxelGrid:
    """A regular grid in patient coordinates.

    Attributes:
        shape_zyx: voxels along (z, y, x), each ≥ 1.
        affine_zyx: 4 × 4 float64 array mapping (iz, iy, ix, 1) to patient (z, y, x, 1) in mm; the last row
            is (0, 0, 0, 1) and the 3 × 3 block is invertible.
    """

    shape_zyx: tuple[int, int, int]
    affine_zyx: np.ndarray

    def __post_init__(self) -> None:
        if len(self.shape_zyx) != 3 or any(int(n) < 1 for n in self.shape_zyx):
            raise ValueError(f"shape_zyx must be 3 positive sizes, got {self.shape_zyx}")
        a = np.asarray(self.affine_zyx, dtype=np.float64)
        if a.shape != (4, 4) or not np.allclose(a[3], [0, 0, 0, 1]):
            raise ValueError(f"affine_zyx must be 4 × 4 with last row (0, 0, 0, 1), got\n{a}")
        if abs(np.linalg.det(a[:3, :3])) < 1e-12:
            raise ValueError("affine_zyx is singular")
        a.setflags(write=False)
        object.__setattr__(self, "affine_zyx", a)
        object.__setattr__(self, "shape_zyx", tuple(int(n) for n in self.shape_zyx))

    @property
    def voxel_size_mm(self) -> tuple[float, float, float]:
        """Voxel edge lengths along (z, y, x), mm (column norms of the affine)."""
        norms = np.linalg.norm(self.affine_zyx[:3, :3], axis=0)
        return (float(norms[0]), float(norms[1]), float(norms[2]))

    def index_to_patient(self, index_zyx: np.ndarray) -> np.ndarray:
        """Patient (z, y, x) mm of voxel indices ``(..., 3)`` (fractional allowed)."""
        a = self.affine_zyx
        return np.asarray(index_zyx, dtype=np.float64) @ a[:3, :3].T + a[:3, 3]

    def patient_to_index(self, points_zyx: np.ndarray) -> np.ndarray:
        """Fractional voxel indices (iz, iy, ix) of patient points ``(..., 3)`` (z, y, x) mm."""
        inv = np.linalg.inv(self.affine_zyx)
        return np.asarray(points_zyx, dtype=np.float64) @ inv[:3, :3].T + inv[:3, 3]


def axis_aligned_grid(
    shape_zyx: Sequence[int], voxel_size_mm: Sequence[float], origin_mm: Sequence[float]
) -> VoxelGrid:
    """Grid with axes along patient (z, y, x); ``origin_mm`` = (z, y, x) of the centre of voxel [0, 0, 0]
    (the convention of :class:`recon.tof.geometry.ImageGrid`)."""
    a = np.eye(4)
    a[:3, :3] = np.diag([float(v) for v in voxel_size_mm])
    a[:3, 3] = [float(o) for o in origin_mm]
    return VoxelGrid((int(shape_zyx[0]), int(shape_zyx[1]), int(shape_zyx[2])), a)


def grid_from_pet_image_grid(pet_grid: object) -> VoxelGrid:
    """:class:`VoxelGrid` of a :class:`recon.tof.geometry.ImageGrid` (duck-typed: ``shape_zyx``,
    ``voxel_size_mm``, ``origin_mm``)."""
    return axis_aligned_grid(pet_grid.shape_zyx, pet_grid.voxel_size_mm, pet_grid.origin_mm)  # type: ignore[attr-defined]


def _xyz_to_zyx(v: Floats) -> np.ndarray:
    return np.asarray([float(v[2]), float(v[1]), float(v[0])])


def grid_from_ismrmrd(
    first_slice_position_xyz_mm: Floats,
    read_dir_xyz: Floats,
    phase_dir_xyz: Floats,
    slice_dir_xyz: Floats,
    in_plane_fov_mm: Sequence[float],
    matrix_size_xyz: Sequence[int],
    slice_spacing_mm: float,
    centre_index: Literal["fft", "geometric"] = "fft",
) -> VoxelGrid:
    """Grid of a stack of ISMRMRD slices (or one 3D volume).

    Args:
        first_slice_position_xyz_mm: ``position`` (x, y, z) of the slice with index iz = 0 (mm).
        read_dir_xyz, phase_dir_xyz, slice_dir_xyz: unit direction cosines (x, y, z) of ix, iy, iz.
        in_plane_fov_mm: field of view along (read, phase), mm.
        matrix_size_xyz: voxels along (read, phase, slice) = (nx, ny, nz).
        slice_spacing_mm: centre-to-centre distance of adjacent slices along ``slice_dir`` (mm, > 0).
        centre_index: where ``position`` lies in-plane: index n // 2 (``"fft"``) or (n − 1) / 2.
    """
    nx, ny, nz = (int(n) for n in matrix_size_xyz)
    dx, dy = float(in_plane_fov_mm[0]) / nx, float(in_plane_fov_mm[1]) / ny
    if slice_spacing_mm <= 0:
        raise ValueError(f"slice_spacing_mm must be > 0, got {slice_spacing_mm}")
    cx, cy = (nx // 2, ny // 2) if centre_index == "fft" else ((nx - 1) / 2, (ny - 1) / 2)
    read, phase, normal = (
        _xyz_to_zyx(d) / np.linalg.norm(d) for d in (read_dir_xyz, phase_dir_xyz, slice_dir_xyz)
    )
    a = np.eye(4)
    a[:3, 0] = normal * slice_spacing_mm
    a[:3, 1] = phase * dy
    a[:3, 2] = read * dx
    a[:3, 3] = _xyz_to_zyx(first_slice_position_xyz_mm) - cx * dx * read - cy * dy * phase
    return VoxelGrid((nz, ny, nx), a)


def resample(
    volume: np.ndarray,
    source: VoxelGrid,
    target: VoxelGrid,
    order: int = 1,
    fill_value: float = 0.0,
) -> np.ndarray:
    """Values of ``volume`` (on ``source``) at the voxel centres of ``target`` (spline ``order``, 0..3).

    Points outside the span of the source voxel centres get ``fill_value``.  The
    map from target index to source index is the general affine ``source⁻¹ · target``.
    """
    if tuple(volume.shape) != source.shape_zyx:
        raise ValueError(f"volume {volume.shape} does not match the source grid {source.shape_zyx}")
    m = np.linalg.inv(source.affine_zyx) @ target.affine_zyx
    if order == 1 and fill_value == 0.0 and _is_diagonal(m[:3, :3]) and not np.iscomplexobj(volume):
        return _resample_separable(np.asarray(volume, dtype=np.float32), m, target.shape_zyx)
    out = ndimage.affine_transform(
        np.asarray(volume, dtype=np.float32 if not np.iscomplexobj(volume) else np.complex64),
        m[:3, :3],
        offset=m[:3, 3],
        output_shape=target.shape_zyx,
        order=order,
        mode="constant",
        cval=fill_value,
        prefilter=order > 1,
    )
    return out


def field_of_view_mask(source: VoxelGrid, target: VoxelGrid) -> np.ndarray:
    """Voxels of ``target`` whose centre lies inside the source grid's extent (bool, target shape)."""
    ones = np.ones(source.shape_zyx, dtype=np.float32)
    m = np.linalg.inv(source.affine_zyx) @ target.affine_zyx
    inside = ndimage.affine_transform(
        ones,
        m[:3, :3],
        offset=m[:3, 3],
        output_shape=target.shape_zyx,
        order=0,
        mode="constant",
        cval=0.0,
        prefilter=False,
    )
    return inside > 0.5


def _is_diagonal(a: np.ndarray) -> bool:
    return bool(np.allclose(a, np.diag(np.diag(a)), atol=1e-12))


def _interpolation_matrix(n_source: int, positions: np.ndarray) -> np.ndarray:
    """Linear interpolation weights (n_target × n_source) at fractional source indices; rows of positions
    outside [0, n_source − 1] are zero (the fill value 0)."""
    weights = np.zeros((len(positions), n_source), dtype=np.float32)
    inside = (positions >= -1e-9) & (positions <= n_source - 1 + 1e-9)
    p = np.clip(positions, 0, n_source - 1)
    lo = np.minimum(np.floor(p).astype(np.int64), max(n_source - 2, 0))
    frac = p - lo
    rows = np.nonzero(inside)[0]
    weights[rows, lo[rows]] += (1 - frac[rows]).astype(np.float32)
    if n_source > 1:
        weights[rows, lo[rows] + 1] += frac[rows].astype(np.float32)
    return weights


def _resample_separable(volume: np.ndarray, m: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Trilinear resampling for an axis-aligned index map (diagonal m): one small matrix per axis."""
    mats = [
        _interpolation_matrix(volume.shape[a], m[a, a] * np.arange(shape[a], dtype=np.float64) + m[a, 3])
        for a in range(3)
    ]
    out = np.einsum("zk,kyx->zyx", mats[0], volume, optimize=True)
    out = np.einsum("yk,zkx->zyx", mats[1], out, optimize=True)
    return np.ascontiguousarray(np.einsum("xk,zyk->zyx", mats[2], out, optimize=True), dtype=np.float32)
