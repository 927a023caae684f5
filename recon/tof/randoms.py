"""Randoms estimates from what the scanner provides: singles rates or the delayed coincidences.

A random coincidence of crystals i and j has rate R_ij = 2τ·S_i·S_j (2τ = coincidence window, S = singles
rates).  With measured singles, that product gives the (noise-free) shape; without them the singles are fitted
to the delayed coincidences by the fan-sum method: the delayed count of crystal i is Dᵢ = sᵢ·Σ_{j∈fan(i)} sⱼ
with sᵢ = Sᵢ·√(2τT), solved by fixed-point iteration.  Either way the estimate is finally scaled so that its
sum over all LORs in the field of view equals the number of delayed coincidences (when there are any),
which keeps the expected total exact while removing the Poisson noise of the delayeds per LOR.  Randoms are
uniform in the arrival-time difference over the window, so TOF bin b receives the fraction of the window
its time interval covers (edge bins collect the remainder).
"""

from __future__ import annotations

import numpy as np

from recon.tof.geometry import ScannerGeometry


def fan_mask(scanner: ScannerGeometry, fov_radius_mm: float) -> np.ndarray:
    """(n_crystals_per_ring,) bool: transaxial index differences d for which (i, i+d) is in the FOV."""
    n = scanner.n_crystals_per_ring
    d = np.arange(n)
    return np.abs(np.cos(np.pi * d / n)) <= fov_radius_mm / scanner.detection_radius_mm


def fan_sums(scanner: ScannerGeometry, values: np.ndarray, fov_radius_mm: float) -> np.ndarray:
    """Σ_{j ∈ fan(i)} values_j for every crystal i (fan = all crystals in coincidence with i), (n_crystals,)."""
    n = scanner.n_crystals_per_ring
    per_index = values.reshape(scanner.n_rings, n).sum(axis=0)
    mask = fan_mask(scanner, fov_radius_mm).astype(np.float64)
    # circular correlation: fan(i) = Σ_d mask[d]·per_index[(i + d) mod n]
    corr = np.real(np.fft.ifft(np.conj(np.fft.fft(mask)) * np.fft.fft(per_index)))
    return np.tile(corr, scanner.n_rings)


def singles_from_delayeds(
    scanner: ScannerGeometry,
    delayed_1: np.ndarray,
    delayed_2: np.ndarray,
    fov_radius_mm: float,
    n_iterations: int = 30,
) -> np.ndarray:
    """Fan-sum fit: s (n_crystals,) with Dᵢ ≈ sᵢ·Σ_{fan(i)} sⱼ, so that the expected delayeds of (i, j) are sᵢsⱼ."""
    counts = np.bincount(delayed_1, minlength=scanner.n_crystals) + np.bincount(
        delayed_2, minlength=scanner.n_crystals
    )
    counts = counts.astype(np.float64)
    s = (
        np.sqrt(counts.sum() / max(counts.size, 1))
        * np.ones(scanner.n_crystals)
        / np.sqrt(max(counts.size, 1))
    )
    s = np.maximum(s, 1e-12)
    for _ in range(n_iterations):
        s = np.sqrt(s * counts / np.maximum(fan_sums(scanner, s, fov_radius_mm), 1e-30))
    return s


def total_over_fov_pairs(scanner: ScannerGeometry, s: np.ndarray, fov_radius_mm: float) -> float:
    """Σ_{i<j in the FOV} sᵢ sⱼ."""
    return 0.5 * float(np.dot(s, fan_sums(scanner, s, fov_radius_mm)))


def crystal_randoms_factors(
    scanner: ScannerGeometry,
    fov_radius_mm: float,
    n_delayeds: int,
    delayed_1: np.ndarray,
    delayed_2: np.ndarray,
    singles_rate_cps: np.ndarray | None,
    frame_duration_s: float,
) -> np.ndarray:
    """Per-crystal factors s with expected randoms of pair (i, j) over the frame = sᵢ·sⱼ (all TOF bins)."""
    if singles_rate_cps is not None:
        two_tau_s = scanner.coincidence_window_ns * 1e-9
        s = np.asarray(singles_rate_cps, dtype=np.float64) * np.sqrt(two_tau_s * frame_duration_s)
    else:
        s = singles_from_delayeds(scanner, delayed_1, delayed_2, fov_radius_mm)
    if n_delayeds > 0:
        total = total_over_fov_pairs(scanner, s, fov_radius_mm)
        if total > 0:
            s = s * np.sqrt(n_delayeds / total)
    return s


def tof_bin_randoms_fraction(scanner: ScannerGeometry, tof_bin: np.ndarray) -> np.ndarray:
    """Fraction of a LOR's randoms that fall in each given TOF bin (uniform time difference over ±τ)."""
    if not scanner.is_tof:
        return np.ones(tof_bin.shape[0])
    half_window_ps = scanner.coincidence_window_ns * 500.0
    width = scanner.tof_bin_width_ps
    k = scanner.max_tof_bin
    b = tof_bin.astype(np.float64)
    lower = np.where(tof_bin <= -k, -np.inf, (b - 0.5) * width)
    upper = np.where(tof_bin >= k, np.inf, (b + 0.5) * width)
    covered = np.clip(np.minimum(upper, half_window_ps) - np.maximum(lower, -half_window_ps), 0.0, None)
    return covered / (2.0 * half_window_ps)
