"""Numba kernel: the two deepest local minima of the Dixon VARPRO residual r(ψ) on a grid, per voxel.

``r(ψ_k) = c − 2 Σ_{n>m} Re(G_nm · R_k,nm)`` with ``c = Σ_n |S_n|² (1 − M_nn)``,
``G_nm = conj(S_n) M_nm S_m`` and ``R_k,nm = exp(i 2π ψ_k (t_n − t_m))`` (see
:mod:`recon.petmr_ac.dixon_multi_echo`); computing r on the fly per voxel avoids a (K × V) array.
"""

from __future__ import annotations

import numba
import numpy as np

from recon.petmr_ac.dixon_common import projection_matrix


@numba.njit(cache=True, nogil=True)
def _parabola_offset(rm: float, r0: float, rp: float) -> float:
    curvature = rm - 2.0 * r0 + rp
    if curvature > 0.0:
        off = 0.5 * (rm - rp) / curvature
        return min(0.5, max(-0.5, off))
    return 0.0


@numba.njit(cache=True, nogil=True)
def two_minima_kernel(
    echoes: np.ndarray,
    m: np.ndarray,
    rot: np.ndarray,
    pairs: np.ndarray,
    psi_grid: np.ndarray,
    periodic: bool,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """echoes (N, V) complex64; m (N, N) complex128; rot (K, P) complex128 for the P pairs (n, m) in
    ``pairs`` (P, 2); psi_grid (K,) uniform; out (2, V) float64 receives the two minima (Hz)."""
    n_echo, n_vox = echoes.shape
    n_grid, n_pairs = rot.shape
    step = psi_grid[1] - psi_grid[0]
    r = np.empty(n_grid)
    g = np.empty(n_pairs, dtype=np.complex128)
    for v in range(n_vox):
        c = 0.0
        for n in range(n_echo):
            s = echoes[n, v]
            c += (s.real * s.real + s.imag * s.imag) * (1.0 - m[n, n].real)
        for p in range(n_pairs):
            a, b = pairs[p, 0], pairs[p, 1]
            g[p] = np.conj(echoes[a, v]) * m[a, b] * echoes[b, v]
        for k in range(n_grid):
            acc = c
            for p in range(n_pairs):
                acc -= 2.0 * (g[p].real * rot[k, p].real - g[p].imag * rot[k, p].imag)
            r[k] = acc
        best1, best2 = np.inf, np.inf
        i1, i2 = -1, -1
        for k in range(n_grid):
            if periodic:
                rm, rp = r[(k - 1) % n_grid], r[(k + 1) % n_grid]
            else:
                rm = r[k - 1] if k > 0 else np.inf
                rp = r[k + 1] if k < n_grid - 1 else np.inf
            if r[k] <= rm and r[k] < rp:
                if r[k] < best1:
                    best2, i2 = best1, i1
                    best1, i1 = r[k], k
                elif r[k] < best2:
                    best2, i2 = r[k], k
        if i1 < 0:
            i1 = int(np.argmin(r))
        if i2 < 0:
            i2 = i1
        for j, i in ((0, i1), (1, i2)):
            if periodic or (0 < i < n_grid - 1):
                off = _parabola_offset(r[(i - 1) % n_grid], r[i], r[(i + 1) % n_grid])
            else:
                off = 0.0
            out[j, v] = psi_grid[i] + off * step


def two_deepest_minima_fast(
    echoes: np.ndarray,
    echo_times_s: np.ndarray,
    fat_factors: np.ndarray,
    psi_grid_hz: np.ndarray,
    periodic: bool,
) -> np.ndarray:
    """ψ (Hz) of the two deepest local minima of r(ψ) per voxel: echoes (N, V) → (2, V) float64."""
    m = projection_matrix(fat_factors).astype(np.complex128)
    t = np.asarray(echo_times_s, dtype=np.float64)
    pairs = np.array([(n, k) for n in range(len(t)) for k in range(n)], dtype=np.int64)
    dt = t[pairs[:, 0]] - t[pairs[:, 1]]
    rot = np.exp(2j * np.pi * psi_grid_hz[:, None] * dt[None, :])
    out = np.empty((2, echoes.shape[1]), dtype=np.float64)
    two_minima_kernel(
        np.ascontiguousarray(echoes, dtype=np.complex64),
        m,
        rot,
        pairs,
        np.asarray(psi_grid_hz, dtype=np.float64),
        bool(periodic),
        out,
    )
    return out
