"""The moving heart as a table of primitive shapes (heart frame, mm), painted in order.

One row per structure; the numba kernel (:mod:`hardware_sim.mr.paint_kernel`) and the numpy reference
(:func:`row_distance`) read the same table, so the two painters agree by construction.  Columns:

* ``KIND``: 0 ellipsoid (centre ``C``, semi-axes ``A``; minus a second ellipsoid ``C2``/``A2`` when
  ``SUBTRACT`` is 1), 1 capsule (segment ``P``→``Q`` with ``RADIUS``), 2 trabecular shell (the inner
  ``SHELL_MM`` of ellipsoid ``C``/``A``, kept where ``cos(LOBES·θ + w/5 mm) > THRESHOLD``, θ the
  angle about the ellipsoid's long axis, and ``w - base > W_FROM_BASE``);
* ``CLIP``: +1 keeps the ventricular side of the moving base plane (w ≥ base), -1 the atrial side
  (w ≤ base), 0 nothing.

The structures, in painting order (later replaces earlier): pericardium and epicardial fat around
the ventricles; left and right atria (their floor follows the descending base, their roof is fixed:
they fill in ventricular systole); RV myocardium, RV cavity, RV trabeculae; LV myocardium and cavity,
LV trabeculae, the antero-lateral and postero-medial papillary muscles; the aortic root (LVOT above
the base, to the aortic valve) and the RV outflow tract (to the pulmonary valve).  The ventricles'
shape is :class:`hardware_sim.mr.anatomy.HeartGeometry`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from hardware_sim.mr.heart_frame import FloatArray, Points, heart_frame_point
from hardware_sim.mr.tissues import Tissue
from hardware_sim.mr.vessels import AORTIC_VALVE_MM, PULMONARY_VALVE_MM

if TYPE_CHECKING:
    from hardware_sim.mr.anatomy import HeartGeometry

KIND, CLIP = 0, 1
C, A, C2, A2 = slice(2, 5), slice(5, 8), slice(8, 11), slice(11, 14)
SUBTRACT = 14
P, Q, RADIUS = slice(15, 18), slice(18, 21), 21
SHELL_MM, LOBES, THRESHOLD, W_FROM_BASE = 22, 23, 24, 25
ROW_WIDTH = 26

AORTIC_VALVE_HEART = heart_frame_point(AORTIC_VALVE_MM)
PULMONARY_VALVE_HEART = heart_frame_point(PULMONARY_VALVE_MM)
LA_ROOF_W_MM, RA_ROOF_W_MM = -58.0, -55.0
"""Atrial roofs (fixed, heart-frame w); the floors follow the base plane."""
ATRIUM_BELOW_BASE_MM = 12.0
"""How far the atrial ellipsoid would reach past the base plane (clipped there): sets the width of the
atrium where it meets the annulus."""
PAPILLARY_ANGLES_DEG = (-80.0, 100.0)
"""Antero-lateral and postero-medial papillary muscles, angle from +u about the long axis."""

HEART_TISSUES = (
    Tissue.PERICARDIUM, Tissue.PERICARDIUM, Tissue.FAT, Tissue.FAT, Tissue.LA_BLOOD, Tissue.RA_BLOOD,
    Tissue.MYOCARDIUM, Tissue.RV_BLOOD, Tissue.MYOCARDIUM, Tissue.MYOCARDIUM, Tissue.LV_BLOOD,
    Tissue.MYOCARDIUM, Tissue.MYOCARDIUM, Tissue.MYOCARDIUM, Tissue.LVOT_BLOOD, Tissue.RVOT_BLOOD,
)  # fmt: skip
"""Tissue of each row of :func:`structure_table`."""
LV_MYOCARDIUM_ROWS = (9, 11, 12, 13)
"""Rows that are LV myocardium (epicardium incl. septum, trabeculae, papillary muscles)."""


def _ellipsoid(centre, semi, clip: int, minus=None) -> npt.NDArray[np.float64]:  # type: ignore[no-untyped-def]
    row = np.zeros(ROW_WIDTH)
    row[CLIP], row[C], row[A], row[A2] = clip, centre, semi, 1.0
    if minus is not None:
        row[C2], row[A2], row[SUBTRACT] = minus[0], minus[1], 1.0
    return row


def _capsule(p, q, radius: float, clip: int) -> npt.NDArray[np.float64]:  # type: ignore[no-untyped-def]
    row = np.zeros(ROW_WIDTH)
    row[KIND], row[CLIP], row[P], row[Q], row[RADIUS], row[A], row[A2] = 1, clip, p, q, radius, 1.0, 1.0
    return row


def _shell(centre, semi, shell_mm: float, lobes: float, threshold: float, w_from_base: float):  # type: ignore[no-untyped-def]
    row = _ellipsoid(centre, semi, 1)
    row[KIND], row[SHELL_MM], row[LOBES], row[THRESHOLD], row[W_FROM_BASE] = (
        2,
        shell_mm,
        lobes,
        threshold,
        w_from_base,
    )
    return row


def _atrium(centre_uv: tuple[float, float], semi_uv: tuple[float, float], roof_w: float, base: float):  # type: ignore[no-untyped-def]
    floor = base + ATRIUM_BELOW_BASE_MM
    return _ellipsoid((*centre_uv, 0.5 * (roof_w + floor)), (*semi_uv, 0.5 * (floor - roof_w)), -1)


def structure_table(g: HeartGeometry) -> npt.NDArray[np.float64]:
    """Rows ``(len(HEART_TISSUES), ROW_WIDTH)`` of the heart at one contraction state."""
    base = g.w_base_mm
    re, le, rc, lc = g.lv_epi_radius_mm, g.lv_epi_length_mm, g.lv_cavity_radius_mm, g.lv_cavity_length_mm
    rv, off = g.rv_semi_axes_mm, g.rv_offset_mm
    epi, cavity = ((0.0, 0.0, base), (re, re, le)), ((0.0, 0.0, base), (rc, rc, lc))
    rv_centre = (off, 0.0, base)
    rows = [
        _ellipsoid((0.0, 0.0, base), (re + 5.0, re + 5.0, le + 5.0), 1),
        _ellipsoid(rv_centre, (rv[0] + 9.0, rv[1] + 9.0, rv[2] + 7.0), 1),
        _ellipsoid((0.0, 0.0, base), (re + 3.0, re + 3.0, le + 3.0), 1),
        _ellipsoid(rv_centre, (rv[0] + 7.0, rv[1] + 7.0, rv[2] + 5.0), 1),
        _atrium((-12.0, 8.0), (30.0, 33.0), LA_ROOF_W_MM, base),
        _atrium((38.0, 10.0), (22.0, 30.0), RA_ROOF_W_MM, base),
        _ellipsoid(rv_centre, (rv[0] + 4.0, rv[1] + 4.0, rv[2] + 3.0), 1),
        _ellipsoid(rv_centre, rv, 1, minus=epi),
        _shell(rv_centre, rv, 2.5, 7.0, 0.6, 15.0),
        _ellipsoid(*epi, 1),
        _ellipsoid(*cavity, 1),
        _shell(*cavity, 1.5, 11.0, 0.8, 0.4 * lc),
        *(_papillary(g, angle) for angle in PAPILLARY_ANGLES_DEG),
        _capsule((*AORTIC_VALVE_HEART[:2], base + 2.0), AORTIC_VALVE_HEART, 13.0, -1),
        _capsule(_rvot_start(g), PULMONARY_VALVE_HEART, 11.0, -1),
    ]
    return np.array(rows, dtype=np.float64)


def _papillary(g: HeartGeometry, angle_deg: float) -> npt.NDArray[np.float64]:
    """A papillary muscle: an ellipsoid on the cavity wall at 45 % of the cavity length, 6 mm thick."""
    w_rel = 0.45 * g.lv_cavity_length_mm
    wall = g.lv_cavity_radius_mm * np.sqrt(1.0 - 0.45**2)
    r = wall - 5.0
    t = np.deg2rad(angle_deg)
    centre = (r * np.cos(t), r * np.sin(t), g.w_base_mm + w_rel)
    return _ellipsoid(centre, (6.0, 6.0, 0.22 * g.lv_cavity_length_mm), 1)


def _rvot_start(g: HeartGeometry) -> tuple[float, float, float]:
    """Where the RV outflow tract leaves the RV base plane (anterior part of the RV cavity)."""
    rv = g.rv_semi_axes_mm
    v = float(np.clip(PULMONARY_VALVE_HEART[1], -(rv[1] - 14.0), rv[1] - 14.0))
    return (g.rv_offset_mm + 0.35 * rv[0], v, g.w_base_mm + 2.0)


def _ellipsoid_distance(
    h: Points, centre: npt.NDArray[np.float64], semi: npt.NDArray[np.float64]
) -> FloatArray:
    """First-order signed distance to an ellipsoid: (ρ - 1) / |∇ρ| (as the kernel)."""
    x = [(h[i] - np.float32(centre[i])) / np.float32(semi[i]) for i in range(3)]
    rho = np.sqrt(x[0] ** 2 + x[1] ** 2 + x[2] ** 2)
    grad = np.sqrt(sum((x[i] / np.float32(semi[i])) ** 2 for i in range(3))) / np.maximum(
        rho, np.float32(1e-6)
    )
    return ((rho - 1.0) / np.maximum(grad, np.float32(1e-6))).astype(np.float32)


def _clip(d: FloatArray, w_rel: FloatArray, clip: float) -> FloatArray:
    if clip > 0.5:
        return np.maximum(d, -w_rel)
    if clip < -0.5:
        return np.maximum(d, w_rel)
    return d


def row_distance(row: npt.NDArray[np.float64], base: float, h: Points) -> FloatArray:
    """Signed distance (mm, negative inside) of heart-frame points to one structure (numpy reference)."""
    w_rel = h[2] - np.float32(base)
    if row[KIND] == 1:
        p, q = row[P].astype(np.float32), row[Q].astype(np.float32)
        pq = q - p
        d = [h[i] - p[i] for i in range(3)]
        t = np.clip(sum(d[i] * pq[i] for i in range(3)) / np.float32(pq @ pq), 0.0, 1.0)
        dist = np.sqrt(sum((d[i] - t * pq[i]) ** 2 for i in range(3))) - np.float32(row[RADIUS])
        return _clip(dist.astype(np.float32), w_rel, row[CLIP])
    dist = _clip(_ellipsoid_distance(h, row[C], row[A]), w_rel, row[CLIP])
    if row[SUBTRACT] > 0.5:
        dist = np.maximum(dist, -_clip(_ellipsoid_distance(h, row[C2], row[A2]), w_rel, row[CLIP]))
    if row[KIND] == 2:  # the inner SHELL_MM of the (clipped) ellipsoid where the lobe pattern is on
        theta = np.arctan2(h[1] - np.float32(row[C][1]), h[0] - np.float32(row[C][0]))
        pattern = np.cos(np.float32(row[LOBES]) * theta + w_rel / np.float32(5.0)) > np.float32(
            row[THRESHOLD]
        )
        keep = pattern & (w_rel > np.float32(row[W_FROM_BASE])) & (dist <= 0.0)
        dist = np.where(keep, np.maximum(dist, -dist - np.float32(row[SHELL_MM])), np.float32(1e3))
    return dist.astype(np.float32)
