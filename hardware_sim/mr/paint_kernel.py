"""Fused painting of the heart structures (numba kernel; the hot loop of the motion samples).

A structure is a half-ellipsoid in the heart frame, optionally minus a second half-ellipsoid; the
distance and occupancy follow :mod:`hardware_sim.mr.anatomy` exactly (first-order ellipse distance,
ramp over ``edge_mm``).  ``structure_table`` has one row per structure in painting order:
``[cu, au, av, aw, cu2, au2, av2, aw2, subtract]`` (mm; ``subtract`` 0/1), all sharing the base
plane ``w_base_mm``.  The painted value of structure k at pixel p is ``signals[k, :, p]``.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

from hardware_sim.mr.anatomy import HeartGeometry
from hardware_sim.mr.tissues import Tissue

HEART_TISSUES = (
    Tissue.FAT,
    Tissue.FAT,
    Tissue.MYOCARDIUM,
    Tissue.RV_BLOOD,
    Tissue.MYOCARDIUM,
    Tissue.LV_BLOOD,
)
"""Tissue of each row of :func:`structure_table` (the order of ``anatomy.heart_structures``)."""


def structure_table(g: HeartGeometry) -> npt.NDArray[np.float64]:
    """Rows of the heart structures of a geometry (same shapes and order as anatomy.heart_structures)."""
    rv = g.rv_semi_axes_mm
    re, le = g.lv_epi_radius_mm, g.lv_epi_length_mm
    rc, lc = g.lv_cavity_radius_mm, g.lv_cavity_length_mm
    off = g.rv_offset_mm
    none = [0.0, 1.0, 1.0, 1.0]
    rows = [
        [0.0, re + 3.0, re + 3.0, le + 3.0, *none, 0.0],
        [off, rv[0] + 7.0, rv[1] + 7.0, rv[2] + 5.0, *none, 0.0],
        [off, rv[0] + 4.0, rv[1] + 4.0, rv[2] + 3.0, *none, 0.0],
        [off, rv[0], rv[1], rv[2], 0.0, re, re, le, 1.0],
        [0.0, re, re, le, *none, 0.0],
        [0.0, rc, rc, lc, *none, 0.0],
    ]
    return np.array(rows, dtype=np.float64)


@numba.njit(cache=True, inline="always", fastmath=True)
def _distance(
    x: np.float32, y: np.float32, z: np.float32, iu: np.float32, iv: np.float32, iw: np.float32
) -> np.float32:
    """First-order ellipsoid distance with reciprocal semi-axes ``iu = 1/au`` etc."""
    xu, yv, zw = x * iu, y * iv, z * iw
    rho = np.sqrt(xu * xu + yv * yv + zw * zw)
    gu, gv, gw = xu * iu, yv * iv, zw * iw
    grad = np.sqrt(gu * gu + gv * gv + gw * gw) / max(rho, np.float32(1e-6))
    return (rho - np.float32(1.0)) / max(grad, np.float32(1e-6))


@numba.njit(cache=True, fastmath=True)
def paint_heart(
    image: npt.NDArray[np.complex64],
    hu: npt.NDArray[np.float32],
    hv: npt.NDArray[np.float32],
    hw: npt.NDArray[np.float32],
    table: npt.NDArray[np.float64],
    w_base_mm: float,
    signals: npt.NDArray[np.complex64],
    edge_mm: float,
) -> None:
    """Paint in place: ``image`` (n_contrasts, n_pixels); ``signals`` (n_structures, n_contrasts, n_pixels)."""
    n_contrasts, n_pixels = image.shape
    occ = np.empty(n_pixels, np.float32)
    inv = (1.0 / table).astype(np.float32)
    t32 = table.astype(np.float32)
    base = np.float32(w_base_mm)
    inv_edge = np.float32(1.0 / edge_mm)
    half = np.float32(0.5)
    for k in range(table.shape[0]):
        cu, iu, iv, iw = t32[k, 0], inv[k, 1], inv[k, 2], inv[k, 3]
        cu2, iu2, iv2, iw2 = t32[k, 4], inv[k, 5], inv[k, 6], inv[k, 7]
        subtract = table[k, 8] > 0.5
        for p in range(n_pixels):  # branch-free: vectorises
            w = hw[p] - base
            d = _distance(hu[p] - cu, hv[p], w, iu, iv, iw)
            if subtract:
                d = max(d, -max(_distance(hu[p] - cu2, hv[p], w, iu2, iv2, iw2), -w))
            d = max(d, -w)
            occ[p] = min(max(half - d * inv_edge, np.float32(0.0)), np.float32(1.0))
        for c in range(n_contrasts):
            for p in range(n_pixels):
                image[c, p] += occ[p] * (signals[k, c, p] - image[c, p])
