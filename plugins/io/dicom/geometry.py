"""Where the pixels of an ISMRMRD image lie in patient coordinates (LPS, mm), for DICOM and NIfTI.

ISMRMRD ``position`` is the centre of the image; which pixel sits there depends on how the image was made:

* 2-D images (``matrix_size[2] == 1``: cine, flow, Dixon, μ-map slices) use the centre-FFT convention of
  the simulator and recon (:func:`recon.phasecontrast.maxwell.pixel_positions_m`,
  :func:`plugins.mr.dixon_images.slice_geometry`): pixel ``(ny // 2, nx // 2)`` sits at ``position``;
* 3-D volumes (``matrix_size[2] > 1``: PET, :func:`plugins.pet.tof_recon.volume_image`) have ``position`` at
  the geometric centre of the voxel centres, index ``(n - 1) / 2`` along each axis.

``x`` (columns) runs along ``read_dir``, ``y`` (rows) along ``phase_dir``, ``z`` along ``slice_dir``; voxel
sizes are ``field_of_view / matrix_size``.  ISMRMRD patient coordinates are DICOM's (LPS), so they go to
DICOM unchanged; NIfTI wants RAS (x and y negated).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class PlaneGeometry:
    """Geometry of one 2-D DICOM frame.

    ``position_mm``: (3,) LPS centre of pixel (row 0, column 0) — DICOM Image Position (Patient);
    ``row_dir``/``col_dir``: (3,) unit vectors along a row (increasing column, ``read_dir``) and along a
    column (increasing row, ``phase_dir``) — Image Orientation (Patient); ``spacing_mm``: (row spacing dy,
    column spacing dx) — Pixel Spacing; ``thickness_mm``: slice thickness; ``normal``: ``row × col``.
    """

    position_mm: np.ndarray
    row_dir: np.ndarray
    col_dir: np.ndarray
    spacing_mm: tuple[float, float]
    thickness_mm: float

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_dir, self.col_dir)

    def pixel_to_patient(self, row: float, col: float) -> np.ndarray:
        """LPS point (mm) of the pixel centre ``(row, col)``."""
        dy, dx = self.spacing_mm
        return self.position_mm + col * dx * self.row_dir + row * dy * self.col_dir


def _vec(values: Any) -> np.ndarray:
    return np.array([float(v) for v in values], dtype=np.float64)


def image_planes(image: Any) -> list[PlaneGeometry]:
    """One :class:`PlaneGeometry` per z slice of an ``ismrmrd.Image`` (data ``(cha, z, y, x)``).

    Raises ``ValueError`` naming the image when its field of view or directions are unusable.
    """
    nx, ny, nz = (int(n) for n in image.matrix_size)
    fov = _vec(image.field_of_view)
    read, phase, slice_dir = _vec(image.read_dir), _vec(image.phase_dir), _vec(image.slice_dir)
    if np.any(fov <= 0):
        raise ValueError(
            f"image series {int(image.image_series_index)} index {int(image.image_index)}: field_of_view "
            f"{tuple(fov)} mm is not positive, so its pixel spacing is unknown"
        )
    for name, v in (("read_dir", read), ("phase_dir", phase)):
        if not np.isclose(np.linalg.norm(v), 1.0, atol=1e-3):
            raise ValueError(
                f"image series {int(image.image_series_index)}: {name} {tuple(v)} is not a unit vector"
            )
    if not np.isclose(np.linalg.norm(slice_dir), 1.0, atol=1e-3):
        slice_dir = np.cross(read, phase)
    dx, dy, dz = fov[0] / nx, fov[1] / ny, fov[2] / nz
    centre = _vec(image.position)
    if nz == 1:
        cx, cy, cz = float(nx // 2), float(ny // 2), 0.0
    else:
        cx, cy, cz = (nx - 1) / 2.0, (ny - 1) / 2.0, (nz - 1) / 2.0
    planes = []
    for k in range(nz):
        origin = centre - cx * dx * read - cy * dy * phase + (k - cz) * dz * slice_dir
        planes.append(PlaneGeometry(origin, read, phase, (float(dy), float(dx)), float(dz)))
    return planes


def volume_affine_lps(planes: list[PlaneGeometry]) -> np.ndarray:
    """4 × 4 affine mapping voxel ``(i = column, j = row, k = slice, 1)`` to LPS mm for a stack of planes.

    The slice step is the difference of the first two planes' positions (the slice thickness along the
    normal for a single plane).
    """
    first = planes[0]
    dy, dx = first.spacing_mm
    if len(planes) > 1:
        step = planes[1].position_mm - first.position_mm
    else:
        step = first.normal * first.thickness_mm
    affine = np.eye(4)
    affine[:3, 0] = first.row_dir * dx
    affine[:3, 1] = first.col_dir * dy
    affine[:3, 2] = step
    affine[:3, 3] = first.position_mm
    return affine


def nifti_affine(planes: list[PlaneGeometry]) -> np.ndarray:
    """The NIfTI (RAS) affine of a stack of planes: voxel ``(i, j, k)`` = (column, row, slice) → RAS mm."""
    return LPS_TO_RAS @ volume_affine_lps(planes)
