"""Multi-echo (≥ 3 echoes) Dixon water/fat separation with a B0 field-map estimate.

Model (see :mod:`recon.petmr_ac.fat_model`): ``S_n = (W + c_n F) exp(i 2π ψ t_n)`` with complex W, F.
For a fixed ψ the best W, F are a linear least-squares fit, so the residual depends on ψ only
(variable projection, Hernando et al. 2008)::

    r(ψ) = ‖S‖² − Σ_{n,m} conj(S_n) M_nm S_m exp(i 2π ψ (t_n − t_m)),   M = B (BᴴB)⁻¹ Bᴴ,  B = [1, c]

r(ψ) is a short trigonometric sum, evaluated on a grid of ψ per voxel.  The two deepest local minima are
the candidates (the true field map and its fat-water-swapped alias); a smooth field map is chosen among
them (:func:`recon.petmr_ac.field_map.select_smooth_candidates`).  The field map is estimated on a grid
coarsened in-plane by complex averaging (exact where ψ is constant over a block, and B0 is smooth), then
interpolated; W and F are solved at full resolution.  R2* decay is not modelled.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from recon.petmr_ac.fat_model import HAMILTON_LIVER_FAT, FatSpectrum, fat_signal_factors
from recon.petmr_ac.field_map import select_smooth_candidates, take_candidates

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DixonResult:
    """Water/fat separation of one volume.

    Attributes:
        water: complex water image, shape (z, y, x), complex64 (arbitrary signal units).
        fat: complex fat image, shape (z, y, x), complex64.
        field_map_hz: B0 off-resonance ψ, shape (z, y, x), float32 (Hz).
        fat_fraction: |F| / (|W| + |F|), shape (z, y, x), float32 in [0, 1] (0 where there is no signal).
    """

    water: np.ndarray
    fat: np.ndarray
    field_map_hz: np.ndarray
    fat_fraction: np.ndarray

    def __post_init__(self) -> None:
        shapes = {a.shape for a in (self.water, self.fat, self.field_map_hz, self.fat_fraction)}
        if len(shapes) != 1 or self.water.ndim != 3:
            raise ValueError(f"all maps must share one (z, y, x) shape, got {shapes}")


def fat_fraction_map(water: np.ndarray, fat: np.ndarray, min_signal: float = 0.0) -> np.ndarray:
    """|F| / (|W| + |F|) (magnitude-discrimination fat fraction), 0 where |W| + |F| ≤ ``min_signal``."""
    total = np.abs(water) + np.abs(fat)
    out = np.zeros(total.shape, dtype=np.float32)
    ok = total > max(min_signal, 0.0)
    out[ok] = (np.abs(fat)[ok] / total[ok]).astype(np.float32)
    return out


def projection_matrix(fat_factors: np.ndarray) -> np.ndarray:
    """M = B (BᴴB)⁻¹ Bᴴ with B = [1, c] (N × 2): projection onto the water/fat signal space, (N, N)."""
    basis = np.stack([np.ones_like(fat_factors), fat_factors], axis=1)
    return basis @ np.linalg.pinv(basis)


def solve_water_fat(echoes: np.ndarray, echo_times_s: np.ndarray, field_map_hz: np.ndarray,
                    fat_factors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares complex W, F for a known field map: echoes (N, *spatial) → (W, F), each (*spatial)."""
    basis = np.stack([np.ones_like(fat_factors), fat_factors], axis=1)
    pinv = np.linalg.pinv(basis).astype(np.complex64)  # (2, N)
    water = np.zeros(echoes.shape[1:], dtype=np.complex64)
    fat = np.zeros(echoes.shape[1:], dtype=np.complex64)
    psi = field_map_hz.astype(np.float32)
    for n, t in enumerate(np.asarray(echo_times_s, dtype=np.float64)):
        demod = echoes[n] * np.exp((-2j * np.pi * t) * psi).astype(np.complex64)
        water += pinv[0, n] * demod
        fat += pinv[1, n] * demod
    return water, fat


def residual_on_grid(echoes: np.ndarray, echo_times_s: np.ndarray, fat_factors: np.ndarray,
                     psi_grid_hz: np.ndarray) -> np.ndarray:
    """VARPRO residual r(ψ) for every grid value: echoes (N, V) → (K, V), float32 (signal² units)."""
    m = projection_matrix(fat_factors)
    t = np.asarray(echo_times_s, dtype=np.float64)
    n_echoes = len(t)
    const = np.sum(np.abs(echoes) ** 2 * (1.0 - np.real(np.diag(m)))[:, None], axis=0)
    residual = np.broadcast_to(const, (len(psi_grid_hz), echoes.shape[1])).astype(np.float32).copy()
    for n in range(n_echoes):
        for k in range(n):
            g = (np.conj(echoes[n]) * m[n, k] * echoes[k]).astype(np.complex64)  # (V,)
            rot = np.exp(2j * np.pi * psi_grid_hz * (t[n] - t[k])).astype(np.complex64)  # (K,)
            residual -= 2.0 * (rot[:, None] * g[None, :]).real
    return residual


def two_deepest_minima(residual: np.ndarray, psi_grid_hz: np.ndarray, periodic: bool) -> np.ndarray:
    """The ψ of the two lowest local minima of r(ψ) per voxel (refined by a parabola), shape (2, V).

    A voxel with a single minimum gets it twice."""
    k_grid = residual.shape[0]
    if periodic:
        prev, nxt = np.roll(residual, 1, axis=0), np.roll(residual, -1, axis=0)
    else:
        big = np.full((1, residual.shape[1]), np.inf, dtype=residual.dtype)
        prev = np.concatenate([big, residual[:-1]], axis=0)
        nxt = np.concatenate([residual[1:], big], axis=0)
    is_min = (residual <= prev) & (residual < nxt)
    masked = np.where(is_min, residual, np.inf)
    order = np.argsort(masked, axis=0)[:2]  # (2, V)
    second_ok = np.isfinite(np.take_along_axis(masked, order[1:2], axis=0))[0]
    order[1] = np.where(second_ok, order[1], order[0])
    step = float(psi_grid_hz[1] - psi_grid_hz[0])
    out = np.empty(order.shape, dtype=np.float64)
    for j in range(2):
        r0 = np.take_along_axis(residual, order[j : j + 1], axis=0)[0]
        rm = np.take_along_axis(prev, order[j : j + 1], axis=0)[0]
        rp = np.take_along_axis(nxt, order[j : j + 1], axis=0)[0]
        curvature = rm - 2 * r0 + rp
        with np.errstate(divide="ignore", invalid="ignore"):
            offset = np.where(np.isfinite(curvature) & (curvature > 0), 0.5 * (rm - rp) / curvature, 0.0)
        out[j] = psi_grid_hz[order[j]] + np.clip(offset, -0.5, 0.5) * step
    del k_grid
    return out


def _block_average(x: np.ndarray, factor: int) -> np.ndarray:
    """Average over factor × factor in-plane blocks of the last two axes (cropping the remainder)."""
    if factor == 1:
        return x
    *lead, ny, nx = x.shape
    ny2, nx2 = ny // factor, nx // factor
    x = x[..., : ny2 * factor, : nx2 * factor].reshape(*lead, ny2, factor, nx2, factor)
    return x.mean(axis=(-3, -1))


def _upsample_field_map(psi_low: np.ndarray, shape: tuple[int, ...], factor: int, period_s: float) -> np.ndarray:
    """Interpolate a coarse field map back to full resolution, through its phasor (wrap-safe)."""
    if factor == 1:
        return psi_low
    phasor = np.exp(2j * np.pi * psi_low * period_s)
    zoom = [1.0, shape[1] / psi_low.shape[1], shape[2] / psi_low.shape[2]]
    # block centres sit at (b + 0.5)·factor − 0.5 in full-resolution voxels: shift by the half block
    re = ndimage.zoom(phasor.real, zoom, order=1, mode="nearest", grid_mode=True)
    im = ndimage.zoom(phasor.imag, zoom, order=1, mode="nearest", grid_mode=True)
    return np.angle(re + 1j * im) / (2 * np.pi * period_s)


def separate_multi_echo(
    echoes: np.ndarray,
    echo_times_s: Sequence[float],
    larmor_hz: float,
    voxel_size_mm: Sequence[float],
    spectrum: FatSpectrum = HAMILTON_LIVER_FAT,
    n_field_map_values: int = 64,
    downsample_factor: int = 2,
    signal_threshold_fraction: float = 0.05,
    sigmas_mm: Sequence[float] = (60.0, 30.0, 15.0, 8.0),
) -> DixonResult:
    """Separate water and fat from ≥ 3 echoes and estimate the B0 field map.

    Args:
        echoes: coil-combined complex echo images, shape (N, z, y, x).
        echo_times_s: echo times (s), length N, increasing.
        larmor_hz: proton resonance frequency (Hz) (from the header's field strength or H1 frequency).
        voxel_size_mm: (z, y, x) voxel size (mm).
        spectrum: fat spectrum model.
        n_field_map_values: grid size for the ψ search over one period 1/ΔTE_min.
        downsample_factor: in-plane block size for the field-map estimate (1 = full resolution).
        signal_threshold_fraction: voxels below this fraction of the 99th-percentile signal are background.
        sigmas_mm: smoothing schedule of the field-map regularisation (mm).
    """
    echoes = np.asarray(echoes)
    t = np.asarray(echo_times_s, dtype=np.float64)
    if echoes.ndim != 4 or echoes.shape[0] != len(t) or len(t) < 3:
        raise ValueError(f"need ≥ 3 echoes shaped (N, z, y, x) matching echo_times_s; got {echoes.shape}, {len(t)}")
    c = fat_signal_factors(t, spectrum, larmor_hz)
    dte = float(np.min(np.diff(t)))
    psi_low = _estimate_field_map(echoes, t, c, dte, voxel_size_mm, n_field_map_values, downsample_factor,
                                  signal_threshold_fraction, sigmas_mm)
    psi = _upsample_field_map(psi_low, echoes.shape[1:], downsample_factor, dte).astype(np.float32)
    water, fat = solve_water_fat(echoes, t, psi, c)
    magnitude = np.sqrt(np.mean(np.abs(echoes) ** 2, axis=0))
    threshold = signal_threshold_fraction * float(np.percentile(magnitude, 99))
    return DixonResult(water=water, fat=fat, field_map_hz=psi,
                       fat_fraction=fat_fraction_map(water, fat, threshold))


def _estimate_field_map(echoes: np.ndarray, t: np.ndarray, c: np.ndarray, dte: float,
                        voxel_size_mm: Sequence[float], n_grid: int, factor: int, threshold_fraction: float,
                        sigmas_mm: Sequence[float]) -> np.ndarray:
    """Field map on the coarse grid (z, y/f, x/f), Hz: candidates by VARPRO, then the smooth choice."""
    coarse = _block_average(echoes, factor)
    spatial = coarse.shape[1:]
    flat = coarse.reshape(coarse.shape[0], -1)
    magnitude = np.sqrt(np.mean(np.abs(flat) ** 2, axis=0))
    mask = magnitude > threshold_fraction * float(np.percentile(magnitude, 99))
    psi_grid = (np.arange(n_grid) - n_grid // 2) / (n_grid * dte)
    uniform = np.allclose(np.diff(t), dte, rtol=1e-3)
    candidates = np.zeros((2, flat.shape[1]))
    if mask.any():
        res = residual_on_grid(flat[:, mask], t, c, psi_grid)
        candidates[:, mask] = two_deepest_minima(res, psi_grid, periodic=uniform)
    voxel = [float(voxel_size_mm[0]), float(voxel_size_mm[1]) * factor, float(voxel_size_mm[2]) * factor]
    weights = np.where(mask, magnitude, 0.0).reshape(spatial)
    index = select_smooth_candidates(candidates.reshape(2, *spatial), weights, voxel, dte, sigmas_mm)
    logger.debug("field map: %d of %d coarse voxels took the second candidate",
                 int(index.sum()), index.size)
    return take_candidates(candidates.reshape(2, *spatial), index)
