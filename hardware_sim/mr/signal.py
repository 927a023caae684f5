"""Steady-state signal models and the velocity-encoding gradient.

* bSSFP: exact Bloch steady state (rotation/relaxation matrices, solved per off-resonance), RF phase
  alternated every TR, echo at TE = TR/2; off-resonance Δf produces the banding profile with bands at
  Δf = ±1/(2·TR).
* Spoiled gradient echo (phase contrast): Ernst signal ``M0·sinα·(1-E1)/(1-E1·cosα)·exp(-TE/T2*)``
  with the off-resonance phase ``2π·Δf·TE``.
* Multi-echo GRE (Dixon): water + fat with the multi-peak spectrum, each species with its own
  relaxation, off-resonance phase ``2π·Δf·TE``.
* Inflow (through-plane flow into a spoiled GRE slice): blood that entered the slice x mm ago has seen
  k = x/(v·TR) pulses, its longitudinal magnetisation ``Mss + (M0 - Mss)·(E1·cosα)^k``; averaged over
  the slice thickness d (N = d/(v·TR) pulses to cross it) the gain over the steady state is
  ``1 + (M0/Mss - 1)·(1 - q^N)/(N·ln(1/q))``, q = E1·cosα (Haacke et al., MRI: Physical Principles
  and Sequence Design, ch. 24).
* Velocity encoding: a trapezoidal bipolar gradient whose first moment M1 gives φ = γ·M1·v = π·v/VENC.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hardware_sim.mr.tissues import (
    FAT_PEAK_AMPLITUDES,
    GYROMAGNETIC_RATIO_RAD_PER_S_PER_T,
    TissueProperties,
    fat_peak_frequencies_hz,
)

ComplexArray = npt.NDArray[np.complex128]
FloatArray = npt.NDArray[np.float64]


def bssfp_signal(
    t1_ms: float, t2_ms: float, flip_angle_deg: float, tr_ms: float, off_resonance_hz: FloatArray
) -> ComplexArray:
    """Transverse steady-state bSSFP magnetisation at TE = TR/2 per unit M0 (alternating RF phase)."""
    df = np.asarray(off_resonance_hz, dtype=np.float64)
    alpha = np.deg2rad(flip_angle_deg)
    e1, e2 = np.exp(-tr_ms / t1_ms), np.exp(-tr_ms / t2_ms)
    theta = 2.0 * np.pi * df * tr_ms * 1e-3 + np.pi  # alternating RF absorbed as an extra π per TR
    c, s = np.cos(alpha), np.sin(alpha)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])
    ct, st = np.cos(theta), np.sin(theta)
    n = df.size
    free = np.zeros((n, 3, 3))
    free[:, 0, 0], free[:, 0, 1] = e2 * ct.ravel(), e2 * st.ravel()
    free[:, 1, 0], free[:, 1, 1] = -e2 * st.ravel(), e2 * ct.ravel()
    free[:, 2, 2] = e1
    system = np.eye(3) - rx @ free
    rhs = np.broadcast_to(rx @ np.array([0.0, 0.0, 1.0 - e1]), (n, 3))
    m_plus = np.linalg.solve(system, rhs[..., None])[..., 0]
    half = theta.ravel() / 2.0
    eh2 = np.exp(-0.5 * tr_ms / t2_ms)
    mxy = (m_plus[:, 0] + 1j * m_plus[:, 1]) * eh2 * np.exp(-1j * half)
    return mxy.reshape(df.shape)


def spoiled_gre_signal(
    t1_ms: float, t2star_ms: float, flip_angle_deg: float, tr_ms: float, te_ms: float
) -> float:
    """Ernst steady-state magnitude of a spoiled gradient echo per unit M0."""
    alpha = np.deg2rad(flip_angle_deg)
    e1 = np.exp(-tr_ms / t1_ms)
    return float(np.sin(alpha) * (1.0 - e1) / (1.0 - e1 * np.cos(alpha)) * np.exp(-te_ms / t2star_ms))


def inflow_gain(
    t1_ms: float,
    flip_angle_deg: float,
    tr_ms: float,
    thickness_mm: float,
    speed_cm_per_s: npt.NDArray[np.floating],
) -> FloatArray:
    """Spoiled-GRE signal of blood flowing through a slice at ``speed_cm_per_s`` over its steady state."""
    speed = np.abs(np.asarray(speed_cm_per_s, dtype=np.float64))
    alpha = np.deg2rad(flip_angle_deg)
    e1 = np.exp(-tr_ms / t1_ms)
    q = e1 * np.cos(alpha)
    fresh_over_ss = (1.0 - q) / (1.0 - e1)  # M0 / Mss
    n_pulses = thickness_mm / np.maximum(speed * 10.0 * tr_ms * 1e-3, 1e-9)  # mm / (mm per TR)
    mean_fresh = -np.expm1(n_pulses * np.log(q)) / (n_pulses * -np.log(q))
    return 1.0 + (fresh_over_ss - 1.0) * mean_fresh


def fat_spectrum_factor(field_strength_t: float, te_ms: float) -> complex:
    """Σ_p a_p·exp(i2π f_p TE): the multi-peak fat signal relative to a single water peak."""
    phases = 2.0 * np.pi * fat_peak_frequencies_hz(field_strength_t) * te_ms * 1e-3
    return complex(np.sum(FAT_PEAK_AMPLITUDES * np.exp(1j * phases)) / np.sum(FAT_PEAK_AMPLITUDES))


def multi_echo_gre_signal(
    water: TissueProperties,
    fat_relaxation_ms: tuple[float, float, float],
    field_strength_t: float,
    flip_angle_deg: float,
    tr_ms: float,
    te_ms: float,
) -> complex:
    """On-resonance signal of a water/fat mixture at echo time ``te_ms`` (per unit proton density)."""
    ff = water.fat_fraction
    s_water = (1.0 - ff) * spoiled_gre_signal(water.t1_ms, water.t2star_ms, flip_angle_deg, tr_ms, te_ms)
    t1f, _, t2sf = fat_relaxation_ms
    s_fat = ff * spoiled_gre_signal(t1f, t2sf, flip_angle_deg, tr_ms, te_ms)
    return s_water + s_fat * fat_spectrum_factor(field_strength_t, te_ms)


@dataclass(frozen=True)
class GradientWaveform:
    """Piecewise-linear gradient: ``times_s`` (n,) increasing, s; ``amplitude_t_per_m`` (n,), T/m."""

    times_s: FloatArray
    amplitude_t_per_m: FloatArray

    def __post_init__(self) -> None:
        if self.times_s.shape != self.amplitude_t_per_m.shape or np.any(np.diff(self.times_s) < 0):
            raise ValueError("times_s must increase and match amplitude_t_per_m")

    def moment(self, order: int) -> float:
        """∫ G(t)·tⁿ dt (exact for piecewise-linear G), units T/m·sⁿ⁺¹."""
        t, g = self.times_s, self.amplitude_t_per_m
        total = 0.0
        for t0, t1, g0, g1 in zip(t[:-1], t[1:], g[:-1], g[1:], strict=True):
            if t1 == t0:
                continue
            slope = (g1 - g0) / (t1 - t0)
            # ∫ (g0 + slope (t - t0)) tⁿ dt
            total += (g0 - slope * t0) * (t1 ** (order + 1) - t0 ** (order + 1)) / (order + 1)
            total += slope * (t1 ** (order + 2) - t0 ** (order + 2)) / (order + 2)
        return float(total)


def bipolar_for_venc(
    venc_cm_per_s: float, max_gradient_mt_per_m: float = 30.0, slew_t_per_m_per_s: float = 150.0
) -> GradientWaveform:
    """Symmetric trapezoidal bipolar (+/−) with zeroth moment 0 and γ·M1 = π/VENC."""
    target_m1 = np.pi / (GYROMAGNETIC_RATIO_RAD_PER_S_PER_T * venc_cm_per_s * 1e-2)
    g = max_gradient_mt_per_m * 1e-3
    ramp = g / slew_t_per_m_per_s
    # one lobe of area A = g·(flat + ramp) centred at T/2, the other at 3T/2: |M1| = A·(flat + 2·ramp)
    # solve g·(flat + ramp)·(flat + 2·ramp) = target for the flat-top duration
    flat = max(0.0, (-3.0 * ramp + np.sqrt(ramp**2 + 4.0 * target_m1 / g)) / 2.0)
    if flat == 0.0:  # triangular lobes at reduced amplitude: g·ramp·2ramp with ramp = g/slew
        g = (target_m1 * slew_t_per_m_per_s**2 / 2.0) ** (1.0 / 3.0)
        ramp = g / slew_t_per_m_per_s
    lobe = [0.0, ramp, ramp + flat, 2 * ramp + flat]
    t_lobe = 2 * ramp + flat
    times = np.array(lobe + [t_lobe + x for x in lobe[1:]])
    amps = np.array([0.0, -g, -g, 0.0, g, g, 0.0])
    return GradientWaveform(times, amps)


def encoded_phase_rad(waveform: GradientWaveform, x0_m: float, velocity_m_per_s: float) -> float:
    """φ = γ·∫G(t)·x(t) dt for a spin at x(t) = x0 + v·t (the Bloch phase of a moving spin)."""
    m0 = waveform.moment(0)
    m1 = waveform.moment(1)
    return float(GYROMAGNETIC_RATIO_RAD_PER_S_PER_T * (m0 * x0_m + m1 * velocity_m_per_s))
