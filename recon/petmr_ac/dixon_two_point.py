"""Two-point Dixon with phase-error correction, for in-phase/opposed-phase or flexible echo times.

With two echoes the water and fat amplitudes are taken as real, non-negative and sharing one phase, so
``S_n = ρ ((1 − u) + u c_n) · e^{iφ₀} e^{i 2π ψ t_n}`` with u the fat fraction.  The magnitudes alone give
``|S_2|² q_1(u) = |S_1|² q_2(u)`` with ``q_n(u) = |(1 − u) + u c_n|²``, a quadratic in u (Eggers et al.,
MRM 2011); its two roots are the water-dominant and the fat-dominant reading of the voxel (for exact
in-phase/opposed-phase echoes they are u and 1 − u).  Each root implies a phase error
``e^{i 2π ψ (t_2 − t_1)}``; the root whose phase error is spatially smooth is chosen
(:func:`recon.petmr_ac.field_map.select_smooth_candidates`), which is the phase-error correction, and W, F
then follow by demodulating the echoes with that field map.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recon.petmr_ac.dixon_common import DixonResult, fat_fraction_map, solve_water_fat
from recon.petmr_ac.fat_model import HAMILTON_LIVER_FAT, FatSpectrum, Floats, fat_signal_factors
from recon.petmr_ac.field_map import select_smooth_candidates, take_candidates


def fat_fraction_roots(m1: np.ndarray, m2: np.ndarray, c1: complex, c2: complex) -> np.ndarray:
    """Both roots u ∈ [0, 1] of ``m2 q1(u) = m1 q2(u)`` per voxel (m_n = |S_n|²), shape (2, *m1.shape).

    Where noise makes the discriminant negative, both roots are the vertex of the parabola; roots outside
    [0, 1] are clipped (a voxel with one admissible root may then get it twice)."""
    a1, b1, a2, b2 = c1.real, abs(c1) ** 2, c2.real, abs(c2) ** 2
    qa = m2 * (1 - 2 * a1 + b1) - m1 * (1 - 2 * a2 + b2)
    qb = m2 * (2 * a1 - 2) - m1 * (2 * a2 - 2)
    qc = m2 - m1
    disc = np.maximum(qb * qb - 4 * qa * qc, 0.0)
    sq = np.sqrt(disc)
    # numerically stable roots: q = −(b + sign(b)·√D)/2, u₁ = q/a, u₂ = c/q
    q = -0.5 * (qb + np.where(qb >= 0, 1.0, -1.0) * sq)
    tiny = 1e-30
    with np.errstate(divide="ignore", invalid="ignore"):
        u1 = np.where(
            np.abs(qa) > tiny, q / np.where(np.abs(qa) > tiny, qa, 1.0), -qc / np.where(qb == 0, 1.0, qb)
        )
        u2 = np.where(np.abs(q) > tiny, qc / np.where(np.abs(q) > tiny, q, 1.0), u1)
    roots = np.clip(np.nan_to_num(np.stack([u1, u2]), nan=0.0), 0.0, 1.0)
    return np.sort(roots, axis=0)


def separate_two_point(
    echoes: np.ndarray,
    echo_times_s: Floats,
    larmor_hz: float,
    voxel_size_mm: Sequence[float],
    spectrum: FatSpectrum = HAMILTON_LIVER_FAT,
    signal_threshold_fraction: float = 0.05,
    sigmas_mm: Sequence[float] = (60.0, 30.0, 15.0, 8.0),
) -> DixonResult:
    """Separate water and fat from two echoes (e.g. opposed-phase then in-phase) with phase-error correction.

    Args:
        echoes: coil-combined complex echo images, shape (2, z, y, x).
        echo_times_s: the two echo times (s).
        larmor_hz: proton resonance frequency (Hz).
        voxel_size_mm: (z, y, x) voxel size (mm).
        spectrum: fat spectrum model.
        signal_threshold_fraction: voxels below this fraction of the 99th-percentile signal are background.
        sigmas_mm: smoothing schedule of the phase-error regularisation (mm).

    Returns:
        :class:`DixonResult`; ``field_map_hz`` is ψ modulo 1/(t₂ − t₁).
    """
    echoes = np.asarray(echoes)
    t = np.asarray(echo_times_s, dtype=np.float64)
    if echoes.ndim != 4 or echoes.shape[0] != 2 or len(t) != 2 or t[1] == t[0]:
        raise ValueError(f"need 2 echoes shaped (2, z, y, x) at two different times; got {echoes.shape}, {t}")
    c = fat_signal_factors(t, spectrum, larmor_hz)
    m1 = np.abs(echoes[0]).astype(np.float64) ** 2
    m2 = np.abs(echoes[1]).astype(np.float64) ** 2
    roots = fat_fraction_roots(m1, m2, complex(c[0]), complex(c[1]))
    # phase error implied by each root: S₂ conj(S₁) / (q̃₂ conj(q̃₁)), q̃_n = (1 − u) + u c_n
    cross = echoes[1] * np.conj(echoes[0])
    model = ((1 - roots) + roots * c[1]) * np.conj((1 - roots) + roots * c[0])
    dt = float(t[1] - t[0])
    candidates_hz = np.angle(cross[None] * np.conj(model)) / (2 * np.pi * dt)
    magnitude = np.sqrt(0.5 * (m1 + m2))
    mask = magnitude > signal_threshold_fraction * float(np.percentile(magnitude, 99))
    # uniform weights inside the signal: magnitude weights would let the bright subcutaneous fat, read
    # water-dominant at the start, outvote the more numerous soft-tissue voxels around it
    index = select_smooth_candidates(candidates_hz, mask.astype(np.float32), voxel_size_mm, dt, sigmas_mm)
    psi = take_candidates(candidates_hz, index).astype(np.float32)
    water, fat = solve_water_fat(echoes, t, psi, c)
    threshold = signal_threshold_fraction * float(np.percentile(magnitude, 99))
    return DixonResult(
        water=water, fat=fat, field_map_hz=psi, fat_fraction=fat_fraction_map(water, fat, threshold)
    )
