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

import numpy as np

from recon.petmr_ac.dixon_common import DixonResult, fat_fraction_map, projection_matrix, solve_water_fat
from recon.petmr_ac.fat_model import (
    HAMILTON_LIVER_FAT,
    FatSpectrum,
    Floats,
    fat_frequencies_hz,
    fat_signal_factors,
)
from recon.petmr_ac.field_map import select_smooth_candidates, take_candidates
from recon.petmr_ac.r2star_kernel import solve_water_fat_known, solve_water_fat_r2star
from recon.petmr_ac.smoothing import gaussian_smooth, robust_percentile, upsample_linear
from recon.petmr_ac.swaps import detect_swaps
from recon.petmr_ac.varpro_kernel import two_deepest_minima_fast

__all__ = [
    "DixonResult",
    "fat_fraction_map",
    "residual_on_grid",
    "separate_multi_echo",
    "solve_water_fat",
    "two_deepest_minima",
]

logger = logging.getLogger(__name__)

AUTO_BLOCK_MM = 7.0
"""In-plane size (mm) of the blocks on which the field map is estimated when the factor is automatic."""


def residual_on_grid(
    echoes: np.ndarray, echo_times_s: np.ndarray, fat_factors: np.ndarray, psi_grid_hz: np.ndarray
) -> np.ndarray:
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
    ny, nx = (x.shape[-2] // factor) * factor, (x.shape[-1] // factor) * factor
    acc = np.zeros((*x.shape[:-2], ny // factor, nx // factor), dtype=x.dtype)
    for dy in range(factor):
        for dx in range(factor):
            acc += x[..., dy:ny:factor, dx:nx:factor]
    return acc / np.asarray(factor * factor, dtype=acc.real.dtype)


def _upsample_field_map(
    psi_low: np.ndarray, shape: tuple[int, ...], factor: int, period_s: float
) -> np.ndarray:
    """Interpolate a coarse field map (block centres) back to full resolution through its phasor (wrap-safe)."""
    if factor == 1:
        return psi_low
    phasor = np.exp(2j * np.pi * psi_low * period_s)
    factors = (1, factor, factor)
    re = upsample_linear(phasor.real, factors, shape)
    im = upsample_linear(phasor.imag, factors, shape)
    return np.angle(re + 1j * im) / (2 * np.pi * period_s)


def _signal_magnitude(echoes: np.ndarray) -> np.ndarray:
    """Root-mean-square magnitude over echoes, (z, y, x) float32."""
    acc = np.zeros(echoes.shape[1:], dtype=np.float32)
    for e in echoes:
        acc += e.real.astype(np.float32) ** 2 + e.imag.astype(np.float32) ** 2
    return np.sqrt(acc / echoes.shape[0])


def separate_multi_echo(
    echoes: np.ndarray,
    echo_times_s: Floats,
    larmor_hz: float,
    voxel_size_mm: Sequence[float],
    spectrum: FatSpectrum = HAMILTON_LIVER_FAT,
    n_field_map_values: int = 64,
    downsample_factor: int = 0,
    signal_threshold_fraction: float = 0.05,
    sigmas_mm: Sequence[float] = (60.0, 30.0, 15.0, 8.0),
    correct_swaps: bool = True,
    max_r2star_per_s: float = 300.0,
) -> DixonResult:
    """Separate water and fat from ≥ 3 echoes and estimate the B0 field map.

    Args:
        echoes: coil-combined complex echo images, shape (N, z, y, x).
        echo_times_s: echo times (s), length N, increasing.
        larmor_hz: proton resonance frequency (Hz) (from the header's field strength or H1 frequency).
        voxel_size_mm: (z, y, x) voxel size (mm).
        spectrum: fat spectrum model.
        n_field_map_values: grid size for the ψ search over one period 1/ΔTE_min.
        downsample_factor: in-plane block size for the field-map estimate (1 = full resolution; 0 = auto:
            blocks of about ``AUTO_BLOCK_MM``).
        signal_threshold_fraction: voxels below this fraction of the 99th-percentile signal are background
            (their water and fat are 0).
        sigmas_mm: smoothing schedule of the field-map regularisation (mm).
        correct_swaps: detect regions whose field map sits ±Δf_fat off its surroundings and move them back
            (:func:`recon.petmr_ac.swaps.detect_swaps`).
        max_r2star_per_s: upper end of the common-R2* search (1/s); 0 = no R2* decay in the model.  R2* is
            estimated on the coarse grid with the field map and interpolated.
    """
    echoes = np.asarray(echoes)
    t = np.asarray(echo_times_s, dtype=np.float64)
    if echoes.ndim != 4 or echoes.shape[0] != len(t) or len(t) < 3:
        raise ValueError(
            f"need ≥ 3 echoes shaped (N, z, y, x) matching echo_times_s; got {echoes.shape}, {len(t)}"
        )
    c = fat_signal_factors(t, spectrum, larmor_hz)
    dte = float(np.min(np.diff(t)))
    if downsample_factor <= 0:
        pixel_mm = min(float(voxel_size_mm[1]), float(voxel_size_mm[2]))
        downsample_factor = max(1, min(4, round(AUTO_BLOCK_MM / pixel_mm)))
    main_peak_hz = float(fat_frequencies_hz(spectrum, larmor_hz)[int(np.argmax(spectrum.amplitudes))])
    psi_low, r2_low, n_swapped = _estimate_field_map(
        echoes,
        t,
        c,
        dte,
        voxel_size_mm,
        n_field_map_values,
        downsample_factor,
        signal_threshold_fraction,
        sigmas_mm,
        main_peak_hz if correct_swaps else None,
        max_r2star_per_s,
    )
    psi = _upsample_field_map(psi_low, echoes.shape[1:], downsample_factor, dte).astype(np.float32)
    factors = (1, downsample_factor, downsample_factor)
    r2star = upsample_linear(r2_low, factors, echoes.shape[1:]) if downsample_factor > 1 else r2_low
    magnitude = _signal_magnitude(echoes)
    threshold = signal_threshold_fraction * float(robust_percentile(magnitude, 99))
    mask = magnitude > threshold
    water, fat, fat_fraction = solve_water_fat_known(echoes, t, psi, r2star, c, mask)
    return DixonResult(
        water=water,
        fat=fat,
        field_map_hz=psi,
        fat_fraction=fat_fraction,
        n_swap_corrected_voxels=n_swapped * downsample_factor**2,
    )


def _estimate_field_map(
    echoes: np.ndarray,
    t: np.ndarray,
    c: np.ndarray,
    dte: float,
    voxel_size_mm: Sequence[float],
    n_grid: int,
    factor: int,
    threshold_fraction: float,
    sigmas_mm: Sequence[float],
    fat_shift_hz: float | None,
    max_r2star_per_s: float,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Field map (Hz) and R2* (1/s) on the coarse grid (z, y/f, x/f), and the number of swap-corrected coarse
    voxels: candidates by VARPRO, the smooth choice, swap correction, R2* for the chosen field map,
    background filled from the surroundings."""
    coarse = _block_average(echoes, factor)
    spatial = coarse.shape[1:]
    flat = coarse.reshape(coarse.shape[0], -1)
    magnitude = np.sqrt(np.mean(np.abs(flat) ** 2, axis=0))
    mask = magnitude > threshold_fraction * robust_percentile(magnitude, 99)
    psi_grid = (np.arange(n_grid) - n_grid // 2) / (n_grid * dte)
    uniform = bool(np.allclose(np.diff(t), dte, rtol=1e-3))
    candidates = np.zeros((2, flat.shape[1]))
    if mask.any():
        candidates[:, mask] = two_deepest_minima_fast(flat[:, mask], t, c, psi_grid, periodic=uniform)
    voxel = [float(voxel_size_mm[0]), float(voxel_size_mm[1]) * factor, float(voxel_size_mm[2]) * factor]
    weights = np.where(mask, magnitude, 0.0).reshape(spatial)
    index = select_smooth_candidates(candidates.reshape(2, *spatial), weights, voxel, dte, sigmas_mm)
    psi = take_candidates(candidates.reshape(2, *spatial), index)
    n_swapped = 0
    if fat_shift_hz is not None:
        shift = detect_swaps(psi, weights, voxel, fat_shift_hz, period_hz=1.0 / dte if uniform else None)
        n_swapped = int(np.count_nonzero(shift))
        if n_swapped:
            logger.info("fat-water swap correction moved %d coarse voxels", n_swapped)
        psi = psi + shift
    psi = _extrapolate_background(psi, weights, voxel, dte, float(sigmas_mm[-1]))
    r2star = np.zeros(spatial, dtype=np.float32)
    if max_r2star_per_s > 0 and mask.any():
        grid = np.linspace(0.0, max_r2star_per_s, 16)
        r2_masked = solve_water_fat_r2star(flat[:, mask], t, psi.reshape(-1)[mask], c, grid)[2]
        r2star.reshape(-1)[mask] = r2_masked
        r2star.reshape(-1)[~mask] = float(np.median(r2_masked))
    return psi, r2star, n_swapped


def _extrapolate_background(
    psi: np.ndarray, weights: np.ndarray, voxel_size_mm: Sequence[float], period_s: float, sigma_mm: float
) -> np.ndarray:
    """Give background voxels (weight 0) the weighted local mean field map of their surroundings, so that
    interpolation at the body edge does not mix in meaningless background values."""
    background = weights <= 0
    if not background.any() or background.all():
        return psi
    sigma = [max(sigma_mm, 2.0 * float(v)) / float(v) for v in voxel_size_mm]
    phasor = weights * np.exp(2j * np.pi * psi * period_s)
    smooth = gaussian_smooth(phasor.real, sigma) + 1j * gaussian_smooth(phasor.imag, sigma)
    out = psi.copy()
    out[background] = np.angle(smooth[background]) / (2 * np.pi * period_s)
    return out
