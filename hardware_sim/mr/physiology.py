"""Heart rhythm, mechanical cardiac phase, contraction curve, flow waveforms and the ECG.

Time is in seconds from the start of the exam.  Beat ``b`` spans ``[r[b], r[b+1])`` of the R-wave
times ``r``.  Within a beat, the *mechanical phase* ψ ∈ [0, 1) maps systole (duration
``0.35 s·√(RR/1 s)``, Bazett-like) onto ``[0, ψ_s]`` and diastole onto ``[ψ_s, 1)``, where ψ_s is the
systolic fraction of the nominal beat: at the nominal RR the mapping is linear, so output phase p of a
retrospective recon (cardiac fraction (p + ½)/n_phases of the RR) sees the state ψ = (p + ½)/n_phases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
SYSTOLE_AT_1S_S = 0.35
"""Systolic duration at RR = 1 s, seconds (scales with √RR)."""


@dataclass(frozen=True)
class Rhythm:
    """A sequence of heartbeats.

    ``r_wave_times_s``: (n_beats + 1,) float64, R-wave times in s (beat b spans r[b]..r[b+1]);
    ``ectopic``: (n_beats,) bool, beat starts with a premature (ectopic) R-wave;
    ``strength``: (n_beats,) float64, contraction amplitude relative to a normal beat (1.0);
    ``nominal_rr_s``: the mean RR interval of the configured heart rate, s;
    ``atrial_fibrillation``: no P waves and irregular RR.
    """

    r_wave_times_s: FloatArray
    ectopic: npt.NDArray[np.bool_]
    strength: FloatArray
    nominal_rr_s: float
    atrial_fibrillation: bool

    def __post_init__(self) -> None:
        n = self.r_wave_times_s.shape[0] - 1
        if n < 1 or self.ectopic.shape != (n,) or self.strength.shape != (n,):
            raise ValueError("rhythm arrays have inconsistent shapes")
        if np.any(np.diff(self.r_wave_times_s) <= 0.0):
            raise ValueError("R-wave times must increase")

    @property
    def rr_s(self) -> FloatArray:
        """RR interval of each beat, s."""
        return np.diff(self.r_wave_times_s)

    @property
    def systole_fraction(self) -> float:
        """ψ_s: the systolic fraction of the nominal beat."""
        return float(systole_duration_s(self.nominal_rr_s)) / self.nominal_rr_s

    def beat_index(self, t_s: FloatArray) -> npt.NDArray[np.intp]:
        """Index of the beat containing each time (clipped to the simulated beats)."""
        idx = np.searchsorted(self.r_wave_times_s, t_s, side="right") - 1
        return np.clip(idx, 0, self.ectopic.shape[0] - 1)


def systole_duration_s(rr_s: FloatArray | float) -> FloatArray:
    """Systolic duration for an RR interval, s."""
    return SYSTOLE_AT_1S_S * np.sqrt(np.asarray(rr_s, dtype=np.float64))


def generate_rhythm(
    heart_rate_bpm: float,
    rr_variability_percent: float,
    arrhythmia: Literal["none", "ectopic", "afib"],
    ectopic_fraction: float,
    duration_s: float,
    rng: np.random.Generator,
) -> Rhythm:
    """Draw R-wave times covering ``[0, duration_s]`` (first R-wave within the first beat)."""
    nominal = 60.0 / heart_rate_bpm
    sigma = rr_variability_percent / 100.0
    rr: list[float] = []
    ectopic: list[bool] = []
    strength: list[float] = []
    total = -rng.uniform(0.0, nominal)
    while total < duration_s + 2.0 * nominal:
        if arrhythmia == "afib":
            value = nominal * float(np.exp(rng.normal(-0.02, 0.2)))
            previous = rr[-1] if rr else nominal
            rr.append(float(np.clip(value, 0.45 * nominal, 1.9 * nominal)))
            ectopic.append(False)
            strength.append(float(np.clip(np.sqrt(previous / nominal), 0.6, 1.2)))
        elif arrhythmia == "ectopic" and rr and not ectopic[-1] and rng.random() < ectopic_fraction:
            rr[-1] = 0.65 * nominal  # the previous beat is cut short by the premature R-wave
            rr.append(1.35 * nominal)  # compensatory pause
            ectopic.append(True)
            strength.append(0.55)
        else:
            rr.append(nominal * float(np.clip(1.0 + sigma * rng.standard_normal(), 0.7, 1.3)))
            ectopic.append(False)
            strength.append(1.0 if not (ectopic and ectopic[-1]) else 1.15)
        total += rr[-1]
    start = -rng.uniform(0.0, nominal)
    r_times = start + np.concatenate([[0.0], np.cumsum(rr)])
    return Rhythm(
        r_wave_times_s=r_times,
        ectopic=np.array(ectopic, dtype=bool),
        strength=np.array(strength, dtype=np.float64),
        nominal_rr_s=nominal,
        atrial_fibrillation=arrhythmia == "afib",
    )


def mechanical_phase(tau_s: FloatArray, rr_s: FloatArray, nominal_rr_s: float) -> FloatArray:
    """ψ ∈ [0, 1) for a time ``tau_s`` since the R-wave within a beat of length ``rr_s``."""
    psi_s = float(systole_duration_s(nominal_rr_s)) / nominal_rr_s
    t_sys = np.minimum(systole_duration_s(rr_s), 0.8 * rr_s)
    systolic = psi_s * tau_s / t_sys
    diastolic = psi_s + (1.0 - psi_s) * (tau_s - t_sys) / (rr_s - t_sys)
    return np.clip(np.where(tau_s < t_sys, systolic, diastolic), 0.0, 1.0 - 1e-9)


def contraction_curve(psi: FloatArray, systole_fraction: float) -> FloatArray:
    """Normalised contraction e(ψ): 0 at end-diastole (ψ = 0, 1), 1 at end-systole (ψ = ψ_s).

    Systolic ejection (half cosine), rapid filling to 0.2, diastasis to 0.15, atrial kick to 0.
    """
    psi = np.asarray(psi, dtype=np.float64)
    ps = systole_fraction
    rapid_end = ps + 0.3 * (1.0 - ps)
    kick_start = 0.85
    e_sys = 0.5 * (1.0 - np.cos(np.pi * psi / ps))
    e_fill = 1.0 - 0.8 * 0.5 * (1.0 - np.cos(np.pi * (psi - ps) / (rapid_end - ps)))
    e_dias = 0.2 - 0.05 * (psi - rapid_end) / (kick_start - rapid_end)
    e_kick = 0.15 * 0.5 * (1.0 + np.cos(np.pi * (psi - kick_start) / (1.0 - kick_start)))
    return np.select([psi < ps, psi < rapid_end, psi < kick_start], [e_sys, e_fill, e_dias], e_kick)


def contraction_rate(psi: FloatArray, systole_fraction: float) -> FloatArray:
    """de/dψ of :func:`contraction_curve` (analytic)."""
    psi = np.asarray(psi, dtype=np.float64)
    ps = systole_fraction
    rapid_end = ps + 0.3 * (1.0 - ps)
    kick_start = 0.85
    d_sys = 0.5 * np.pi / ps * np.sin(np.pi * psi / ps)
    d_fill = -0.4 * np.pi / (rapid_end - ps) * np.sin(np.pi * (psi - ps) / (rapid_end - ps))
    d_dias = np.full_like(psi, -0.05 / (kick_start - rapid_end))
    d_kick = -0.075 * np.pi / (1.0 - kick_start) * np.sin(np.pi * (psi - kick_start) / (1.0 - kick_start))
    return np.select([psi < ps, psi < rapid_end, psi < kick_start], [d_sys, d_fill, d_dias], d_kick)


@dataclass(frozen=True)
class CardiacState:
    """Cardiac state at some times: ``psi`` mechanical phase, ``contraction`` = strength·e(ψ),
    ``psi_rate_per_s`` dψ/dt (1/s), ``strength`` of the beat; all float64 arrays of one shape."""

    psi: FloatArray
    contraction: FloatArray
    psi_rate_per_s: FloatArray
    strength: FloatArray


def cardiac_state(rhythm: Rhythm, t_s: FloatArray) -> CardiacState:
    """Mechanical phase and contraction at times ``t_s``."""
    t = np.asarray(t_s, dtype=np.float64)
    b = rhythm.beat_index(t)
    rr = rhythm.rr_s[b]
    tau = t - rhythm.r_wave_times_s[b]
    psi = mechanical_phase(tau, rr, rhythm.nominal_rr_s)
    t_sys = np.minimum(systole_duration_s(rr), 0.8 * rr)
    ps = rhythm.systole_fraction
    rate = np.where(tau < t_sys, ps / t_sys, (1.0 - ps) / (rr - t_sys))
    strength = rhythm.strength[b]
    return CardiacState(psi, strength * contraction_curve(psi, ps), rate, strength)


def nominal_state(n_phases: int, heart_rate_bpm: float) -> CardiacState:
    """State at the centres (p + ½)/n_phases of a nominal beat (the truth's output phases)."""
    nominal = 60.0 / heart_rate_bpm
    ps = float(systole_duration_s(nominal)) / nominal
    psi = (np.arange(n_phases) + 0.5) / n_phases
    return CardiacState(psi, contraction_curve(psi, ps), np.full(n_phases, 1.0 / nominal), np.ones(n_phases))


def _gauss(
    t: FloatArray, centre: FloatArray | float, width: float, amplitude: FloatArray | float
) -> FloatArray:
    return amplitude * np.exp(-0.5 * ((t - centre) / width) ** 2)


def ecg_mv(rhythm: Rhythm, t_s: FloatArray) -> FloatArray:
    """Synthetic lead-II ECG (mV): P (absent in AF), QRS (wide for ectopic beats), T waves."""
    t = np.asarray(t_s, dtype=np.float64)
    out = np.zeros_like(t)
    b0 = rhythm.beat_index(t)
    for shift in (-1, 0, 1):
        raw = b0 + shift
        valid = (raw >= 0) & (raw < rhythm.ectopic.shape[0])
        b = np.clip(raw, 0, rhythm.ectopic.shape[0] - 1)
        r = rhythm.r_wave_times_s[b]
        ect = rhythm.ectopic[b]
        width = np.where(ect, 0.03, 0.01)
        beat = 1.2 * np.exp(-0.5 * ((t - r) / width) ** 2)
        beat += _gauss(t, r - 0.025, 0.008, -0.1) + _gauss(t, r + 0.025 + 2 * (width - 0.01), 0.008, -0.25)
        t_wave = r + 0.3 * np.sqrt(rhythm.rr_s[b])
        beat += _gauss(t, t_wave, 0.05, np.where(ect, -0.3, 0.3))
        if not rhythm.atrial_fibrillation:
            beat += _gauss(t, r - 0.16, 0.025, np.where(ect, 0.0, 0.15))
        out += np.where(valid, beat, 0.0)
    if rhythm.atrial_fibrillation:
        out += 0.05 * np.sin(2 * np.pi * 6.3 * t) * np.sin(2 * np.pi * 0.7 * t + 1.0)
    return out
