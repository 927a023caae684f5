"""Volumes on a :class:`~recon.petmr_ac.grid.VoxelGrid` → ``ismrmrd.Image`` slices with their geometry."""

from __future__ import annotations

from collections.abc import Mapping

import ismrmrd
import numpy as np

from recon.petmr_ac.grid import VoxelGrid


def slice_geometry(grid: VoxelGrid, k: int) -> dict[str, tuple[float, float, float]]:
    """ISMRMRD ``position`` (the centre-FFT voxel n // 2), directions and field of view of slice k (x, y, z)."""
    _, ny, nx = grid.shape_zyx
    centre_zyx = grid.index_to_patient(np.array([float(k), float(ny // 2), float(nx // 2)]))
    a = grid.affine_zyx[:3, :3]
    dz, dy, dx = grid.voxel_size_mm

    def xyz(v: np.ndarray) -> tuple[float, float, float]:
        return (float(v[2]), float(v[1]), float(v[0]))

    return {
        "position": xyz(centre_zyx),
        "read_dir": xyz(a[:, 2] / dx),
        "phase_dir": xyz(a[:, 1] / dy),
        "slice_dir": xyz(a[:, 0] / dz),
        "field_of_view": (nx * dx, ny * dy, dz),
    }


def volume_to_images(
    volume: np.ndarray,
    grid: VoxelGrid,
    series_index: int,
    meta: Mapping[str, str],
    measurement_uid: int = 0,
    time_stamp: int = 0,
) -> list[ismrmrd.Image]:
    """One float32 ``ismrmrd.Image`` per slice of ``volume`` (z, y, x), carrying ``meta`` as attributes."""
    if tuple(volume.shape) != grid.shape_zyx:
        raise ValueError(f"volume {volume.shape} does not match the grid {grid.shape_zyx}")
    images = []
    for k in range(volume.shape[0]):
        image = ismrmrd.Image.from_array(np.ascontiguousarray(volume[k][None], dtype=np.float32))
        image.image_type = ismrmrd.IMTYPE_MAGNITUDE
        for name, value in slice_geometry(grid, k).items():
            setattr(image, name, value)
        image.slice = k
        image.image_series_index = series_index
        image.image_index = k + 1
        image.measurement_uid = measurement_uid
        image.acquisition_time_stamp = time_stamp
        attributes = ismrmrd.Meta()
        for key, text in meta.items():
            attributes[key] = text
        image.attribute_string = attributes.serialize()
        images.append(image)
    return images
