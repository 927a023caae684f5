"""Attenuation maps (511 keV μ-maps) from image files, with their geometry, for the PET reconstruction.

Readable:

- ISMRMRD image HDF5 (``images.h5`` of a ``reconstream run``): the series whose images carry the meta
  ``Role = mu_map_511keV`` (the ``petmr`` chain's series 20), else the only series with ``Unit = 1/cm``.
  Slices (``matrix z = 1``) are stacked by ``slice`` with the centred-FFT convention of
  :mod:`recon.petmr_ac.grid`; a single 3-D image is centred geometrically (as ``pet_tof_osem`` writes it).
- NIfTI-1/2 (``.nii``, ``.nii.gz``) through nibabel when it is installed: the RAS affine is converted to LPS.

DICOM μ-maps are not read yet (convert them to NIfTI, e.g. with dcm2niix).  Values must be in 1/cm (water
0.096); maps stored in other units are rescaled with ``scale`` (e.g. 1e-4 for maps in 10⁻⁴/cm).  Oblique maps
are resampled (trilinear) onto an axis-aligned grid of their bounding box at their finest voxel size, so
that the result is a :class:`~plugins.pet.items.PETMuMap` in scanner (= LPS patient) coordinates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import ismrmrd
import numpy as np

from plugins.pet.items import PETMuMap
from recon.petmr_ac.grid import VoxelGrid, axis_aligned_grid, grid_from_ismrmrd, resample
from recon.tof.geometry import ImageGrid

MUMAP_ROLE = "mu_map_511keV"
NIFTI_SUFFIXES = (".nii", ".nii.gz")
#: Largest plausible μ at 511 keV, 1/cm (cortical bone 0.17, metal implants up to ≈ 0.9).
MAX_MU_PER_CM = 1.0


class MuMapFileError(ValueError):
    """A μ-map file cannot be used; the message names the file and what was wrong."""


def is_nifti(path: Path) -> bool:
    """Whether ``path`` is named like a NIfTI file."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def is_image_hdf5(path: Path) -> bool:
    """Whether ``path`` is an ISMRMRD HDF5 file holding images and no raw acquisitions."""
    try:
        with h5py.File(path, "r") as f:
            group = f.get("dataset")
            if not isinstance(group, h5py.Group) or "data" in group:
                return False
            return any(name.startswith("image_") for name in group)
    except OSError:
        return False


def is_mumap_file(path: Path) -> bool:
    """Whether ``path`` is an image file :func:`read_mumap` reads (NIfTI, or ISMRMRD images without raw data)."""
    return is_nifti(path) or is_image_hdf5(path)


def read_mumap(path: str | Path, scale: float = 1.0) -> PETMuMap:
    """The μ-map in ``path`` (see the module docstring), × ``scale``, on an axis-aligned grid."""
    path = Path(path)
    if not path.is_file():
        raise MuMapFileError(f"{path}: no such μ-map file")
    if is_nifti(path):
        volume, grid, what = _read_nifti(path)
    elif is_image_hdf5(path):
        volume, grid, what = _read_ismrmrd(path)
    else:
        raise MuMapFileError(
            f"{path}: not a μ-map file this version reads (ISMRMRD image HDF5 or NIfTI .nii/.nii.gz)"
        )
    volume = np.asarray(volume, dtype=np.float32) * np.float32(scale)
    _check_values(volume, path, scale)
    mumap = axis_aligned(np.clip(volume, 0.0, None), grid)
    return PETMuMap(mumap.mu_per_cm, mumap.grid, source=f"{path.name} ({what})")


def _check_values(volume: np.ndarray, path: Path, scale: float) -> None:
    if not np.all(np.isfinite(volume)):
        raise MuMapFileError(f"{path}: the μ-map has non-finite values")
    low, high = float(volume.min()), float(volume.max())
    if low < -0.01 or high > MAX_MU_PER_CM or high <= 0.0:
        raise MuMapFileError(
            f"{path}: μ values (× scale {scale:g}) span {low:.4g}..{high:.4g}; a 511 keV μ-map in 1/cm lies "
            f"in 0..{MAX_MU_PER_CM:g} with soft tissue ≈ 0.1 (rescale with mumap_scale, e.g. 1e-4 for 10⁻⁴/cm)"
        )


def axis_aligned(volume: np.ndarray, grid: VoxelGrid) -> PETMuMap:
    """``volume`` on ``grid`` as a :class:`PETMuMap` on an axis-aligned grid (exact when ``grid`` is one, up to
    axis flips; otherwise trilinear resampling onto the bounding box at the finest voxel size)."""
    a = grid.affine_zyx[:3, :3]
    if np.allclose(a, np.diag(np.diag(a)), atol=1e-6 * float(np.abs(a).max())):
        steps, origin = np.diag(a).copy(), grid.affine_zyx[:3, 3].copy()
        for axis in range(3):
            if steps[axis] < 0:
                volume = np.flip(volume, axis)
                origin[axis] += steps[axis] * (volume.shape[axis] - 1)
                steps[axis] = -steps[axis]
        image_grid = ImageGrid(
            grid.shape_zyx,
            (float(steps[0]), float(steps[1]), float(steps[2])),
            (float(origin[0]), float(origin[1]), float(origin[2])),
        )
        return PETMuMap(np.ascontiguousarray(volume, dtype=np.float32), image_grid)
    corners = np.array(
        [
            [i, j, k]
            for i in (0, grid.shape_zyx[0] - 1)
            for j in (0, grid.shape_zyx[1] - 1)
            for k in (0, grid.shape_zyx[2] - 1)
        ],
        dtype=np.float64,
    )
    points = grid.index_to_patient(corners)
    low, high = points.min(axis=0), points.max(axis=0)
    step = min(grid.voxel_size_mm)
    shape = tuple(int(np.floor((h - lo) / step)) + 1 for lo, h in zip(low, high, strict=True))
    target = axis_aligned_grid(shape, (step,) * 3, low)
    resampled = resample(volume, grid, target, order=1)
    image_grid = ImageGrid(
        target.shape_zyx, (step, step, step), (float(low[0]), float(low[1]), float(low[2]))
    )
    return PETMuMap(np.clip(resampled, 0.0, None).astype(np.float32), image_grid)


def _read_nifti(path: Path) -> tuple[np.ndarray, VoxelGrid, str]:
    try:
        import nibabel
    except ImportError as exc:
        raise MuMapFileError(
            f"{path}: reading NIfTI needs the nibabel package (pip install nibabel)"
        ) from exc
    image: Any = nibabel.load(str(path))
    data = np.asarray(image.get_fdata(dtype=np.float32))
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise MuMapFileError(f"{path}: a μ-map must be a 3-D volume, got shape {data.shape}")
    ras = np.asarray(image.affine, dtype=np.float64)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ras  # (i, j, k, 1) → LPS (x, y, z, 1)
    reverse = np.eye(4)[[2, 1, 0, 3]]  # (x, y, z) ↔ (z, y, x), and (i, j, k) ↔ (k, j, i)
    affine_zyx = reverse @ lps @ reverse
    volume = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))
    return volume, VoxelGrid(volume.shape, affine_zyx), "NIfTI"  # type: ignore[arg-type]


def _series_meta(dset: ismrmrd.Dataset, group: str) -> ismrmrd.Meta:
    return ismrmrd.Meta.deserialize(dset.read_image(group, 0).attribute_string)


def _mumap_series(dset: ismrmrd.Dataset, path: Path) -> str:
    groups = sorted(g for g in dset.list() if g.startswith("image_"))
    metas = {g: _series_meta(dset, g) for g in groups}
    by_role = [g for g, m in metas.items() if m.get("Role") == MUMAP_ROLE]
    by_unit = [g for g, m in metas.items() if m.get("Unit") == "1/cm" or m.get("Units") == "1/cm"]
    for candidates in (by_role, by_unit):
        if len(candidates) == 1:
            return candidates[0]
    raise MuMapFileError(
        f"{path}: expected one μ-map series (meta Role={MUMAP_ROLE} or Unit=1/cm), found "
        f"{len(by_role) or len(by_unit)} among {', '.join(groups) or 'no image series'}"
    )


def _read_ismrmrd(path: Path) -> tuple[np.ndarray, VoxelGrid, str]:
    dset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=False)
    try:
        group = _mumap_series(dset, path)
        images = [dset.read_image(group, i) for i in range(dset.number_of_images(group))]
    finally:
        dset.close()
    images.sort(key=lambda im: int(im.slice))
    first = images[0]
    nx, ny, nz = (int(n) for n in first.matrix_size)
    if nz > 1:
        return np.asarray(first.data[0], dtype=np.float32), _volume_grid(first), f"ISMRMRD {group}"
    volume = np.stack([np.asarray(im.data[0, 0], dtype=np.float32) for im in images])
    normal = np.asarray(first.slice_dir, dtype=np.float64)
    if len(images) > 1:
        steps = np.diff([float(np.dot(im.position, normal)) for im in images])
        if not np.allclose(steps, steps[0], rtol=1e-3) or steps[0] <= 0:
            raise MuMapFileError(f"{path}: {group} slices are not equally spaced along slice_dir")
        spacing = float(steps[0])
    else:
        spacing = float(first.field_of_view[2])
    grid = grid_from_ismrmrd(
        first.position, first.read_dir, first.phase_dir, first.slice_dir,
        (float(first.field_of_view[0]), float(first.field_of_view[1])), (nx, ny, len(images)), spacing,
    )  # fmt: skip
    return volume, grid, f"ISMRMRD {group}"


def _volume_grid(image: ismrmrd.Image) -> VoxelGrid:
    """Grid of one 3-D ISMRMRD image whose ``position`` is its geometric centre."""
    nx, ny, nz = (int(n) for n in image.matrix_size)
    fov = [float(f) for f in image.field_of_view]
    dirs = [np.asarray(d, dtype=np.float64)[::-1] for d in (image.slice_dir, image.phase_dir, image.read_dir)]
    steps = (fov[2] / nz, fov[1] / ny, fov[0] / nx)
    counts = (nz, ny, nx)
    a = np.eye(4)
    centre = np.asarray(image.position, dtype=np.float64)[::-1]
    for axis in range(3):
        a[:3, axis] = dirs[axis] / np.linalg.norm(dirs[axis]) * steps[axis]
        centre = centre - a[:3, axis] * (counts[axis] - 1) / 2.0
    a[:3, 3] = centre
    return VoxelGrid((nz, ny, nx), a)
