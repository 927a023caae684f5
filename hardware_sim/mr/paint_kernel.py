"""Fused painting of the heart structures (numba kernel; the hot loop of the motion samples).

Reads the row table of :mod:`hardware_sim.mr.heart_shapes` (ellipsoids, capsules, trabecular shells,
each clipped to one side of the moving base plane) and follows :func:`heart_shapes.row_distance`
exactly: first-order ellipsoid distance, ramp occupancy over ``edge_mm``.  The painted value of
structure k at pixel p is ``signals[k, :, p]`` (a zero-stride view paints constants).
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

from hardware_sim.mr import heart_shapes as hs

_CU, _AU, _CU2, _AU2 = hs.C.start, hs.A.start, hs.C2.start, hs.A2.start
_P, _Q = hs.P.start, hs.Q.start


@numba.njit(cache=True, inline="always", fastmath=True)
def _ellipsoid(
    x: np.float32, y: np.float32, z: np.float32, iu: np.float32, iv: np.float32, iw: np.float32
) -> np.float32:
    """First-order ellipsoid distance with reciprocal semi-axes ``iu = 1/au`` etc."""
    xu, yv, zw = x * iu, y * iv, z * iw
    rho = np.sqrt(xu * xu + yv * yv + zw * zw)
    gu, gv, gw = xu * iu, yv * iv, zw * iw
    grad = np.sqrt(gu * gu + gv * gv + gw * gw) / max(rho, np.float32(1e-6))
    return (rho - np.float32(1.0)) / max(grad, np.float32(1e-6))


@numba.njit(cache=True, inline="always", fastmath=True)
def _capsule(
    u: np.float32, v: np.float32, hw: np.float32, t: npt.NDArray[np.float32], inv_len2: np.float32
) -> np.float32:
    """Distance to the axis of the capsule P→Q minus its radius."""
    dx, dy, dz = t[_Q] - t[_P], t[_Q + 1] - t[_P + 1], t[_Q + 2] - t[_P + 2]
    px, py, pz = u - t[_P], v - t[_P + 1], hw - t[_P + 2]
    s = min(max((px * dx + py * dy + pz * dz) * inv_len2, np.float32(0.0)), np.float32(1.0))
    ex, ey, ez = px - s * dx, py - s * dy, pz - s * dz
    return np.sqrt(ex * ex + ey * ey + ez * ez) - t[hs.RADIUS]


@numba.njit(cache=True, fastmath=True)
def _row_distances(
    t: npt.NDArray[np.float32],
    hu: npt.NDArray[np.float32],
    hv: npt.NDArray[np.float32],
    hw: npt.NDArray[np.float32],
    base: np.float32,
    out: npt.NDArray[np.float32],
) -> None:
    """Signed distances of every point to row ``t``; one branch-free loop per kind (vectorises).

    Clipping to one side of the base plane is ``max(d, -clip·w + off)`` with ``off`` = -1e9 for
    unclipped rows, so no branch depends on the row inside the loops."""
    one = np.float32(1.0)
    kind, clip = t[hs.KIND], t[hs.CLIP]
    off = np.float32(0.0) if clip != np.float32(0.0) else np.float32(-1e9)
    cu, cv, cw = t[_CU], t[_CU + 1], t[_CU + 2]
    iu, iv, iw = one / t[_AU], one / t[_AU + 1], one / t[_AU + 2]
    n = hu.shape[0]
    if kind == np.float32(1.0):
        dx, dy, dz = t[_Q] - t[_P], t[_Q + 1] - t[_P + 1], t[_Q + 2] - t[_P + 2]
        inv_len2 = one / (dx * dx + dy * dy + dz * dz)
        for p in range(n):
            out[p] = max(_capsule(hu[p], hv[p], hw[p], t, inv_len2), -clip * (hw[p] - base) + off)
        return
    for p in range(n):
        out[p] = max(_ellipsoid(hu[p] - cu, hv[p] - cv, hw[p] - cw, iu, iv, iw), -clip * (hw[p] - base) + off)
    if t[hs.SUBTRACT] > np.float32(0.5):
        cu2, cv2, cw2 = t[_CU2], t[_CU2 + 1], t[_CU2 + 2]
        ju, jv, jw = one / t[_AU2], one / t[_AU2 + 1], one / t[_AU2 + 2]
        for p in range(n):
            w = hw[p] - base
            d2 = max(_ellipsoid(hu[p] - cu2, hv[p] - cv2, hw[p] - cw2, ju, jv, jw), -clip * w + off)
            out[p] = max(out[p], -d2)
    if kind == np.float32(2.0):  # trabecular shell: the inner SHELL_MM where the lobe pattern is on
        lobes, threshold, shell, start = t[hs.LOBES], t[hs.THRESHOLD], t[hs.SHELL_MM], t[hs.W_FROM_BASE]
        for p in range(n):
            d = out[p]
            if d > np.float32(0.0) or d < -shell - np.float32(2.0):
                out[p] = np.float32(1e3)
                continue
            w = hw[p] - base
            on = np.cos(lobes * np.arctan2(hv[p] - cv, hu[p] - cu) + w / np.float32(5.0)) > threshold
            out[p] = max(d, -d - shell) if (on and w > start) else np.float32(1e3)


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
    t32 = table.astype(np.float32)
    base = np.float32(w_base_mm)
    inv_edge = np.float32(1.0 / edge_mm)
    half = np.float32(0.5)
    dist = np.empty(n_pixels, np.float32)
    for k in range(table.shape[0]):
        _row_distances(t32[k], hu, hv, hw, base, dist)
        inside = np.float32(0.0)
        for p in range(n_pixels):
            o = min(max(half - dist[p] * inv_edge, np.float32(0.0)), np.float32(1.0))
            occ[p] = o
            inside = max(inside, o)
        if inside == np.float32(0.0):
            continue
        for c in range(n_contrasts):
            for p in range(n_pixels):
                image[c, p] += occ[p] * (signals[k, c, p] - image[c, p])
