"""Slice geometry in patient coordinates (LPS, mm) and the pixel grids of a slice.

A slice has a centre, unit read / phase / slice directions (right-handed: slice = read × phase) and a
recon field of view.  In-plane pixel ``(j, i)`` of an ``(ny, nx)`` grid with spacing ``(dy, dx)`` lies at
``centre + (i - nx//2)·dx·read + (j - ny//2)·dy·phase`` (the centred-FFT convention: index n//2 is the
centre).  Short-axis slices are perpendicular to the heart's long axis, the readout rotated in plane so
that the body fits the phase FOV (see SHORT_AXIS_INPLANE_ROTATION_DEG); flow planes and Dixon slices are axial
(read = +x, phase = +y, slice = +z).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hardware_sim.mr.anatomy import HEART_BASE_CENTRE_MM, HEART_LONG_AXIS, Points
from hardware_sim.mr.config import MRExamConfig

FLOW_PLANE_FIRST_Z_MM = 95.0
"""z of the lowest flow plane (above the heart, through the great vessels)."""


@dataclass(frozen=True)
class SliceGeometry:
    """One 2D slice.

    ``centre_mm``, ``read_dir``, ``phase_dir``, ``slice_dir``: (3,) float64 in LPS (directions unit and
    orthogonal); ``fov_mm``: recon FOV (readout, phase) in mm; ``thickness_mm``: slice thickness.
    """

    centre_mm: npt.NDArray[np.float64]
    read_dir: npt.NDArray[np.float64]
    phase_dir: npt.NDArray[np.float64]
    slice_dir: npt.NDArray[np.float64]
    fov_mm: tuple[float, float]
    thickness_mm: float

    def __post_init__(self) -> None:
        dirs = np.stack([self.read_dir, self.phase_dir, self.slice_dir])
        if not np.allclose(dirs @ dirs.T, np.eye(3), atol=1e-9):
            raise ValueError("read/phase/slice directions must be orthonormal")
        if not np.allclose(np.cross(self.read_dir, self.phase_dir), self.slice_dir, atol=1e-9):
            raise ValueError("slice_dir must equal read_dir × phase_dir")

    def points(self, n_y: int, n_x: int, dy_mm: float, dx_mm: float) -> Points:
        """Patient coordinates (x, y, z) of an in-plane grid, each (n_y, n_x) float32."""
        u = ((np.arange(n_x) - n_x // 2) * dx_mm).astype(np.float64)
        v = ((np.arange(n_y) - n_y // 2) * dy_mm).astype(np.float64)
        coords = (
            self.centre_mm[:, None, None]
            + u[None, None, :] * self.read_dir[:, None, None]
            + v[None, :, None] * self.phase_dir[:, None, None]
        )
        return (coords[0].astype(np.float32), coords[1].astype(np.float32), coords[2].astype(np.float32))


SHORT_AXIS_INPLANE_ROTATION_DEG = 165.0
"""In-plane rotation of the short-axis readout from the direction closest to patient z: chosen so the
torso and arms fit inside the phase FOV (no fold-over) and the readout carries the long body extent."""


def _short_axis_dirs() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    slice_dir = HEART_LONG_AXIS.astype(np.float64)
    z = np.array([0.0, 0.0, 1.0])
    r0 = z - (z @ slice_dir) * slice_dir
    r0 /= np.linalg.norm(r0)
    h0 = np.cross(slice_dir, r0)
    angle = np.deg2rad(SHORT_AXIS_INPLANE_ROTATION_DEG)
    read = np.cos(angle) * r0 + np.sin(angle) * h0
    phase = np.cross(slice_dir, read)
    return read, phase, slice_dir


def slice_geometries(config: MRExamConfig) -> list[SliceGeometry]:
    """The slices of the exam, in acquisition order (short axis: base → apex)."""
    fov = config.effective_fov_mm
    thick = config.slice_thickness_mm
    n = config.n_slices
    offsets = (np.arange(n) - (n - 1) / 2.0) * thick
    if config.protocol == "cine":
        read, phase, slice_dir = _short_axis_dirs()
        first = HEART_BASE_CENTRE_MM + slice_dir * 4.0  # first slice centre 4 mm apical of the ED base
        centres = [first + slice_dir * thick * k for k in range(n)]
    else:
        read, phase, slice_dir = np.eye(3)[0], np.eye(3)[1], np.eye(3)[2]
        z0 = FLOW_PLANE_FIRST_Z_MM if config.protocol == "flow" else 0.0
        z = z0 + np.arange(n) * thick if config.protocol == "flow" else offsets
        centres = [np.array([0.0, 0.0, float(zz)]) for zz in z]
    return [
        SliceGeometry(np.asarray(c, dtype=np.float64), read, phase, slice_dir, fov, thick) for c in centres
    ]
