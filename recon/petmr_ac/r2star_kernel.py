"""Numba kernel: water and fat with a common R2* decay for a known field map, per voxel.

Model ``S_n = (W + c_n F) exp((i 2π ψ − R2*) t_n)`` (Yu et al., MRM 2007).  For each voxel the echoes are
demodulated by the field map, the residual ``‖y‖² − yᴴ P_R y`` (``P_R`` the projection onto the decaying
water/fat basis) is evaluated on a grid of R2* values, the minimum is refined by a parabola and W, F follow
from the 2 × 2 normal equations at that R2*.  Without R2* the decay between in- and opposed-phase echoes
would read as fat.
"""

from __future__ import annotations

import numba
import numpy as np

from recon.petmr_ac.fat_model import Floats


def _projections(echo_times_s: np.ndarray, fat_factors: np.ndarray, r2star_grid: np.ndarray) -> np.ndarray:
    """P_R = B_R (B_Rᴴ B_R)⁻¹ B_Rᴴ for each grid R2*, (n_R, N, N) complex128."""
    out = np.empty((len(r2star_grid), len(echo_times_s), len(echo_times_s)), dtype=np.complex128)
    for i, r in enumerate(r2star_grid):
        decay = np.exp(-r * echo_times_s)[:, None]
        basis = decay * np.stack([np.ones_like(fat_factors), fat_factors], axis=1)
        out[i] = basis @ np.linalg.pinv(basis)
    return out


@numba.njit(cache=True, nogil=True)
def _r2star_kernel(
    echoes: np.ndarray,
    psi_hz: np.ndarray,
    t: np.ndarray,
    c: np.ndarray,
    r_grid: np.ndarray,
    proj: np.ndarray,
    water: np.ndarray,
    fat: np.ndarray,
    r2star: np.ndarray,
) -> None:  # pragma: no cover
    n_echo, n_vox = echoes.shape
    n_r = r_grid.shape[0]
    y = np.empty(n_echo, dtype=np.complex128)
    res = np.empty(n_r)
    for v in range(n_vox):
        for n in range(n_echo):
            ang = -2.0 * np.pi * psi_hz[v] * t[n]
            y[n] = echoes[n, v] * complex(np.cos(ang), np.sin(ang))
        best = 0
        for i in range(n_r):
            q = 0.0
            for a in range(n_echo):
                acc = 0j
                for b in range(n_echo):
                    acc += proj[i, a, b] * y[b]
                q += (y[a].conjugate() * acc).real
            res[i] = -q
            if res[i] < res[best]:
                best = i
        r = r_grid[best]
        if 0 < best < n_r - 1:
            curv = res[best - 1] - 2.0 * res[best] + res[best + 1]
            if curv > 0.0:
                off = 0.5 * (res[best - 1] - res[best + 1]) / curv
                r += max(-0.5, min(0.5, off)) * (r_grid[best + 1] - r_grid[best])
        # normal equations of B = diag(e^{-R t}) [1, c]
        g11, g12, g22 = 0.0, 0j, 0.0
        h1, h2 = 0j, 0j
        for n in range(n_echo):
            d = np.exp(-r * t[n])
            g11 += d * d
            g12 += d * d * c[n]
            g22 += d * d * (c[n].real ** 2 + c[n].imag ** 2)
            h1 += d * y[n]
            h2 += d * c[n].conjugate() * y[n]
        det = g11 * g22 - (g12.real**2 + g12.imag**2)
        if det <= 1e-12:
            water[v], fat[v], r2star[v] = 0j, 0j, r
            continue
        water[v] = (g22 * h1 - g12 * h2) / det
        fat[v] = (g11 * h2 - g12.conjugate() * h1) / det
        r2star[v] = r


def solve_water_fat_r2star(
    echoes: np.ndarray,
    echo_times_s: Floats,
    field_map_hz: np.ndarray,
    fat_factors: np.ndarray,
    r2star_grid_per_s: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """W, F (complex64) and R2* (1/s, float32) per voxel: echoes (N, V), field map (V,) → three (V,) arrays."""
    t = np.asarray(echo_times_s, dtype=np.float64)
    grid = np.asarray(r2star_grid_per_s, dtype=np.float64)
    proj = _projections(t, np.asarray(fat_factors, dtype=np.complex128), grid)
    n_vox = echoes.shape[1]
    water = np.empty(n_vox, dtype=np.complex64)
    fat = np.empty(n_vox, dtype=np.complex64)
    r2 = np.empty(n_vox, dtype=np.float32)
    _r2star_kernel(
        np.ascontiguousarray(echoes, dtype=np.complex64),
        np.ascontiguousarray(field_map_hz, dtype=np.float64),
        t,
        np.asarray(fat_factors, dtype=np.complex128),
        grid,
        proj,
        water,
        fat,
        r2,
    )
    return water, fat, r2


@numba.njit(cache=True, nogil=True)
def _known_kernel(
    echoes: np.ndarray,
    mask: np.ndarray,
    psi_hz: np.ndarray,
    r2star: np.ndarray,
    t: np.ndarray,
    c: np.ndarray,
    water: np.ndarray,
    fat: np.ndarray,
    ff: np.ndarray,
) -> None:  # pragma: no cover - compiled
    n_echo, n_vox = echoes.shape
    y = np.empty(n_echo, dtype=np.complex128)
    d = np.empty(n_echo)
    for v in range(n_vox):
        if not mask[v]:
            water[v], fat[v], ff[v] = 0j, 0j, 0.0
            continue
        for n in range(n_echo):
            ang = -2.0 * np.pi * psi_hz[v] * t[n]
            y[n] = echoes[n, v] * complex(np.cos(ang), np.sin(ang))
            d[n] = np.exp(-r2star[v] * t[n])
        g11, g12, g22 = 0.0, 0j, 0.0
        h1, h2 = 0j, 0j
        for n in range(n_echo):
            dd = d[n] * d[n]
            g11 += dd
            g12 += dd * c[n]
            g22 += dd * (c[n].real ** 2 + c[n].imag ** 2)
            h1 += d[n] * y[n]
            h2 += d[n] * c[n].conjugate() * y[n]
        det = g11 * g22 - (g12.real**2 + g12.imag**2)
        if det <= 1e-12:
            water[v], fat[v], ff[v] = 0j, 0j, 0.0
            continue
        w = (g22 * h1 - g12 * h2) / det
        f = (g11 * h2 - g12.conjugate() * h1) / det
        water[v], fat[v] = w, f
        s0 = w + f
        power = s0.real * s0.real + s0.imag * s0.imag
        ff[v] = (f * s0.conjugate()).real / power if power > 0.0 else 0.0


def solve_water_fat_known(
    echoes: np.ndarray,
    echo_times_s: Floats,
    field_map_hz: np.ndarray,
    r2star_per_s: np.ndarray,
    fat_factors: np.ndarray,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """W, F (complex64) and the phase-constrained fat fraction (float32, as
    :func:`recon.petmr_ac.dixon_common.fat_fraction_map`) for a known field map and R2* per voxel: echoes
    (N, *spatial), maps (*spatial) → three (*spatial) arrays; voxels outside ``mask`` (bool) get 0.  The
    echoes are not copied when they are C-contiguous complex64."""
    spatial = echoes.shape[1:]
    flat = np.ascontiguousarray(echoes, dtype=np.complex64).reshape(echoes.shape[0], -1)
    keep = np.ones(flat.shape[1], dtype=np.bool_) if mask is None else np.ascontiguousarray(mask).reshape(-1)
    water = np.empty(flat.shape[1], dtype=np.complex64)
    fat = np.empty(flat.shape[1], dtype=np.complex64)
    ff = np.empty(flat.shape[1], dtype=np.float32)
    _known_kernel(
        flat,
        keep,
        np.ascontiguousarray(field_map_hz, dtype=np.float32).reshape(-1),
        np.ascontiguousarray(r2star_per_s, dtype=np.float32).reshape(-1),
        np.asarray(echo_times_s, dtype=np.float64),
        np.asarray(fat_factors, dtype=np.complex128),
        water,
        fat,
        ff,
    )
    return water.reshape(spatial), fat.reshape(spatial), ff.reshape(spatial)
