"""Slice geometry in patient coordinates (LPS, mm) and the pixel grids of a slice.

A slice has a centre, unit read / phase / slice directions (right-handed: slice = read × phase) and a
recon field of view.  In-plane pixel ``(j, i)`` of an ``(ny, nx)`` grid with spacing ``(dy, dx)`` lies at
``centre + (i - nx//2)·dx·read + (j - ny//2)·dy·phase`` (the centred-FFT convention: index n//2 is the
centre).  Short-axis slices are perpendicular to the heart's long axis, the readout rotated in plane so
that the body fits the phase FOV (see SHORT_AXIS_INPLANE_ROTATION_DEG); the stack runs from the
mitral annulus at end-diastole to the apex.  Long-axis views (2-, 3-, 4-chamber) contain the LV long
axis.  Flow planes are double oblique, perpendicular to the ascending aorta and to the pulmonary trunk
just above their valves (slice normal = forward flow), read as close to patient left as the plane
allows.  Dixon slices are axial (read = +x, phase = +y, slice = +z).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hardware_sim.mr.config import MRExamConfig
from hardware_sim.mr.heart_frame import (
    HEART_BASE_CENTRE_MM,
    HEART_LONG_AXIS,
    HEART_SEPTAL_AXIS,
    HEART_THIRD_AXIS,
    Points,
)
from hardware_sim.mr.heart_shapes import AORTIC_VALVE_HEART
from hardware_sim.mr.tissue_sequences import TISSUE_PROTOCOLS
from hardware_sim.mr.vessels import ASCENDING_AORTA, PULMONARY_TRUNK


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
AORTIC_PLANE_ABOVE_VALVE_MM = 20.0
"""Aortic flow plane: perpendicular to the ascending aorta this far above the valve (sinotubular
junction, above the coronary ostia), as planned on a clinical LVOT/coronal view."""
PULMONARY_PLANE_ABOVE_VALVE_MM = 15.0
"""Pulmonary flow plane: perpendicular to the main pulmonary artery this far above the valve (below
the bifurcation)."""
LONG_AXIS_VIEW_CENTRE_W_MM = 30.0
"""Long-axis views are centred on the LV long axis this far from the ED base (mid-cavity)."""


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


def _dirs_with_read_near(
    normal: npt.NDArray[np.float64], preferred_read: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Read/phase/slice directions of a plane with a given normal, read as close as possible to
    ``preferred_read`` (the body's long in-plane extent goes along the oversampled readout)."""
    n = normal / np.linalg.norm(normal)
    read = preferred_read - (preferred_read @ n) * n
    read /= np.linalg.norm(read)
    return read, np.cross(n, read), n


def short_axis_centres(config: MRExamConfig) -> list[npt.NDArray[np.float64]]:
    """Short-axis stack from the mitral annulus at end-diastole towards the apex: the first slice's
    basal face on the annulus, then one slice spacing (thickness + gap) apart."""
    first = config.stack_start_mm + 0.5 * config.slice_thickness_mm
    return [
        HEART_BASE_CENTRE_MM + HEART_LONG_AXIS * (first + k * config.slice_spacing_mm)
        for k in range(config.n_slices)
    ]


def long_axis_dirs(
    view: str,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Directions of a long-axis view (read along the LV long axis, base → apex).

    four_chamber: the plane through the long axis and the RV (septal axis): both ventricles, both
    atria, mitral and tricuspid valves; two_chamber: perpendicular to it (LV, LA only); three_chamber:
    the plane through the long axis and the aortic valve (LVOT, aortic root).
    """
    if view == "four_chamber":
        in_plane = HEART_SEPTAL_AXIS
    elif view == "two_chamber":
        in_plane = HEART_THIRD_AXIS
    elif view == "three_chamber":
        av = AORTIC_VALVE_HEART
        in_plane = av[0] * HEART_SEPTAL_AXIS + av[1] * HEART_THIRD_AXIS
        in_plane = in_plane / np.linalg.norm(in_plane)
    else:
        raise ValueError(
            f"unknown long-axis view {view!r}; allowed: four_chamber, three_chamber, two_chamber"
        )
    read = HEART_LONG_AXIS.astype(np.float64)
    normal = np.cross(read, in_plane)
    return read, np.cross(normal, read), normal


def flow_plane(k: int, thickness_mm: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Centre and normal of flow plane k: even k the ascending aorta, odd k the pulmonary trunk, each
    perpendicular to the vessel above its valve (further planes one slice thickness higher)."""
    vessel, above = (
        (ASCENDING_AORTA, AORTIC_PLANE_ABOVE_VALVE_MM)
        if k % 2 == 0
        else (PULMONARY_TRUNK, PULMONARY_PLANE_ABOVE_VALVE_MM)
    )
    return vessel.point_along_mm(above + (k // 2) * thickness_mm)


def slice_geometries(config: MRExamConfig) -> list[SliceGeometry]:
    """The slices of the exam, in acquisition order (short axis: base → apex), planned as a
    technologist would from the anatomy (never from the truth of a particular exam)."""
    fov = config.effective_fov_mm
    thick = config.slice_thickness_mm
    n = config.n_slices
    x_axis = np.eye(3)[0]
    planes: list[tuple[npt.NDArray[np.float64], tuple[npt.NDArray[np.float64], ...]]] = []
    if config.protocol in TISSUE_PROTOCOLS or (config.protocol == "cine" and config.view == "short_axis"):
        dirs = _short_axis_dirs()
        planes = [(c, dirs) for c in short_axis_centres(config)]
    elif config.protocol == "cine":
        dirs = long_axis_dirs(config.view)
        centre = HEART_BASE_CENTRE_MM + HEART_LONG_AXIS * LONG_AXIS_VIEW_CENTRE_W_MM
        planes = [(centre + dirs[2] * config.slice_spacing_mm * (k - (n - 1) / 2.0), dirs) for k in range(n)]
    elif config.protocol == "flow":
        for k in range(n):
            centre, normal = flow_plane(k, config.slice_spacing_mm)
            planes.append((centre, _dirs_with_read_near(normal, x_axis)))
    else:
        offsets = (np.arange(n) - (n - 1) / 2.0) * config.slice_spacing_mm
        dirs = (np.eye(3)[0], np.eye(3)[1], np.eye(3)[2])
        planes = [(np.array([0.0, 0.0, float(z)]), dirs) for z in offsets]
    return [SliceGeometry(np.asarray(c, dtype=np.float64), d[0], d[1], d[2], fov, thick) for c, d in planes]
