"""Shared pieces of the Dixon separations: the result type, the fat fraction and the linear solve."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon.petmr_ac.fat_model import Floats


@dataclass(frozen=True)
class DixonResult:
    """Water/fat separation of one volume.

    Attributes:
        water: complex water image, shape (z, y, x), complex64 (arbitrary signal units).
        fat: complex fat image, shape (z, y, x), complex64.
        field_map_hz: B0 off-resonance ψ, shape (z, y, x), float32 (Hz).
        fat_fraction: phase-constrained fat fraction (see :func:`fat_fraction_map`), shape (z, y, x), float32,
            ≈ [0, 1] (0 where there is no signal).
        n_swap_corrected_voxels: voxels whose field map was moved by swap correction (≥ 0).
    """

    water: np.ndarray
    fat: np.ndarray
    field_map_hz: np.ndarray
    fat_fraction: np.ndarray
    n_swap_corrected_voxels: int = 0

    def __post_init__(self) -> None:
        shapes = {a.shape for a in (self.water, self.fat, self.field_map_hz, self.fat_fraction)}
        if len(shapes) != 1 or self.water.ndim != 3:
            raise ValueError(f"all maps must share one (z, y, x) shape, got {shapes}")
        if self.n_swap_corrected_voxels < 0:
            raise ValueError("n_swap_corrected_voxels must be ≥ 0")


def fat_fraction_map(water: np.ndarray, fat: np.ndarray, min_signal: float = 0.0) -> np.ndarray:
    """Phase-constrained fat fraction ``Re(F · conj(W + F)) / |W + F|²``, 0 where ``|W + F| ≤ min_signal``.

    Water and fat share the receive phase at TE = 0, so the part of F in phase with W + F is the fat signal
    and the quadrature part is noise.  Unlike the magnitude ratio ``|F| / (|W| + |F|)``, whose noise floor
    biases low fat fractions upwards (≈ +15 points in muscle at SNR 10), this estimator is unbiased, so a
    region's mean is the region's fat fraction; single noisy voxels may fall slightly outside [0, 1] and are
    not clipped (clipping would bring the bias back).
    """
    total = water + fat
    power = np.abs(total) ** 2
    out = np.zeros(total.shape, dtype=np.float32)
    ok = np.abs(total) > max(min_signal, 0.0)
    out[ok] = ((fat[ok] * np.conj(total[ok])).real / np.maximum(power[ok], 1e-30)).astype(np.float32)
    return out


def solve_water_fat(
    echoes: np.ndarray, echo_times_s: Floats, field_map_hz: np.ndarray, fat_factors: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares complex W, F for a known field map: echoes (N, *spatial) → (W, F), each (*spatial)."""
    basis = np.stack([np.ones_like(fat_factors), fat_factors], axis=1)
    pinv = np.linalg.pinv(basis).astype(np.complex64)  # (2, N)
    water = np.zeros(echoes.shape[1:], dtype=np.complex64)
    fat = np.zeros(echoes.shape[1:], dtype=np.complex64)
    angle = (-2.0 * np.pi) * field_map_hz.astype(np.float32)
    for n, t in enumerate(np.asarray(echo_times_s, dtype=np.float64)):
        phase = angle * np.float32(t)
        demod = echoes[n] * (np.cos(phase) + 1j * np.sin(phase)).astype(np.complex64)
        water += pinv[0, n] * demod
        fat += pinv[1, n] * demod
    return water, fat


def projection_matrix(fat_factors: np.ndarray) -> np.ndarray:
    """M = B (BᴴB)⁻¹ Bᴴ with B = [1, c] (N × 2): projection onto the water/fat signal space, (N, N)."""
    basis = np.stack([np.ones_like(fat_factors), fat_factors], axis=1)
    return basis @ np.linalg.pinv(basis)
