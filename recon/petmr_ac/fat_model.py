"""Multi-peak fat spectrum and the complex fat signal factor at given echo times.

Signal model (the ISMRM fat-water toolbox convention, Hernando/Hamilton)::

    S(t_n) = (W + c_n · F) · exp(i 2π ψ t_n),      c_n = Σ_p α_p exp(i 2π f_p t_n)

with W, F complex water and fat amplitudes, ψ the B0 off-resonance (Hz), α_p the relative amplitudes of
the fat peaks (Σ α_p = 1) and f_p = δ_p · 1e-6 · f_H1 their frequency offsets from water (Hz; negative:
fat resonates below water).  f_H1 is the proton resonance frequency of the scanner (from the ISMRMRD
header: ``experimentalConditions.H1resonanceFrequency_Hz``, or γ̄·B0 from the field strength).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np

Floats: TypeAlias = Sequence[float] | np.ndarray
"""A sequence of floats: a tuple, a list or a 1-D numpy array."""

GYROMAGNETIC_RATIO_HZ_PER_T = 42.577478e6
"""γ̄ of the proton (Hz/T); f_H1 = γ̄ · B0 when the header carries no resonance frequency."""


@dataclass(frozen=True)
class FatSpectrum:
    """A multi-peak fat spectrum.

    Attributes:
        shifts_ppm: chemical shift of each fat peak relative to water (ppm, negative below water), shape (P,).
        relative_amplitudes: relative peak areas α_p (dimensionless, ≥ 0, normalised to sum 1 on creation).
    """

    shifts_ppm: tuple[float, ...] = (-3.80, -3.40, -2.60, -1.94, -0.39, 0.60)
    relative_amplitudes: tuple[float, ...] = (0.087, 0.693, 0.128, 0.004, 0.039, 0.048)
    _normalised: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.shifts_ppm) != len(self.relative_amplitudes) or not self.shifts_ppm:
            raise ValueError("shifts_ppm and relative_amplitudes must be non-empty and of equal length")
        amplitudes = np.asarray(self.relative_amplitudes, dtype=np.float64)
        if np.any(amplitudes < 0) or amplitudes.sum() <= 0:
            raise ValueError(
                f"relative_amplitudes must be ≥ 0 with a positive sum, got {self.relative_amplitudes}"
            )
        object.__setattr__(self, "_normalised", tuple(float(a) for a in amplitudes / amplitudes.sum()))

    @property
    def amplitudes(self) -> np.ndarray:
        """α_p normalised to Σ α_p = 1, shape (P,), float64."""
        return np.asarray(self._normalised)


HAMILTON_LIVER_FAT = FatSpectrum()
"""Six-peak fat model (Hamilton et al., NMR Biomed 2011), the toolbox default."""

SINGLE_PEAK_FAT = FatSpectrum(shifts_ppm=(-3.40,), relative_amplitudes=(1.0,))
"""The classic single-peak model (main methylene peak at −3.4 ppm)."""


def larmor_frequency_hz(field_strength_t: float, h1_resonance_frequency_hz: float | None = None) -> float:
    """Proton resonance frequency f_H1 (Hz): the header's value when given, else γ̄·B0."""
    if h1_resonance_frequency_hz is not None and h1_resonance_frequency_hz > 0:
        return float(h1_resonance_frequency_hz)
    if field_strength_t <= 0:
        raise ValueError(f"field_strength_t must be > 0, got {field_strength_t}")
    return GYROMAGNETIC_RATIO_HZ_PER_T * float(field_strength_t)


def fat_frequencies_hz(spectrum: FatSpectrum, larmor_hz: float) -> np.ndarray:
    """Frequency offsets f_p of the fat peaks from water (Hz), shape (P,)."""
    return np.asarray(spectrum.shifts_ppm, dtype=np.float64) * 1e-6 * larmor_hz


def fat_signal_factors(echo_times_s: np.ndarray, spectrum: FatSpectrum, larmor_hz: float) -> np.ndarray:
    """c_n = Σ_p α_p exp(i 2π f_p t_n) for each echo time, shape (N,), complex128 (c_n = 1 at t = 0)."""
    t = np.asarray(echo_times_s, dtype=np.float64).reshape(-1, 1)
    f = fat_frequencies_hz(spectrum, larmor_hz).reshape(1, -1)
    return (spectrum.amplitudes.reshape(1, -1) * np.exp(2j * np.pi * f * t)).sum(axis=1)
