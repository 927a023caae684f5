"""Tissue labels and relaxation properties at 1.5 T and 3 T, and the multi-peak fat spectrum.

Values are literature figures (Stanisz et al. MRM 2005; Lu et al. MRM 2005 for blood; de Bazelaire
et al. Radiology 2004 for liver/fat; Hamilton et al. NMR Biomed 2011 for the fat spectrum), rounded.
Venous blood (right heart, venae cavae) has the shorter T2 of deoxygenated blood; the fibrous
pericardium is a thin low-signal layer (dense connective tissue: short T2, low proton density).
Proton density is relative to pure water (1.0).  A tissue is a mixture of water and fat protons with
the given proton-density fat fraction; the fat part carries the fat relaxation times.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

GYROMAGNETIC_RATIO_HZ_PER_T = 42.577478518e6
"""γ/2π of ¹H in Hz/T."""
GYROMAGNETIC_RATIO_RAD_PER_S_PER_T = 2.0 * np.pi * GYROMAGNETIC_RATIO_HZ_PER_T

FAT_PEAKS_PPM = np.array([-3.80, -3.40, -2.60, -1.94, -0.39, 0.60])
"""Chemical shift of the six fat peaks relative to water, ppm (Hamilton 2011, liver)."""
FAT_PEAK_AMPLITUDES = np.array([0.087, 0.693, 0.128, 0.004, 0.039, 0.048])
"""Relative amplitudes of the fat peaks (sum 0.999)."""


class Tissue(IntEnum):
    """Tissue labels of the phantom (uint8 in label maps)."""

    AIR = 0
    LUNG = 1
    FAT = 2
    MUSCLE = 3
    MYOCARDIUM = 4
    LV_BLOOD = 5
    RV_BLOOD = 6
    AORTA_BLOOD = 7
    PA_BLOOD = 8
    LIVER = 9
    CORTICAL_BONE = 10
    BONE_MARROW = 11
    DESC_AORTA_BLOOD = 12
    LA_BLOOD = 13
    RA_BLOOD = 14
    LVOT_BLOOD = 15
    RVOT_BLOOD = 16
    CAVA_BLOOD = 17
    PERICARDIUM = 18


N_TISSUES = len(Tissue)


@dataclass(frozen=True)
class TissueProperties:
    """Relaxation properties of one tissue at one field strength.

    Fields: ``t1_ms``/``t2_ms``/``t2star_ms`` of the water component (ms), ``proton_density``
    (relative to water, 0..1), ``fat_fraction`` (proton-density fat fraction, 0..1); the fat component
    uses :data:`FAT_RELAXATION_MS`.
    """

    t1_ms: float
    t2_ms: float
    t2star_ms: float
    proton_density: float
    fat_fraction: float

    def __post_init__(self) -> None:
        if min(self.t1_ms, self.t2_ms, self.t2star_ms) <= 0.0:
            raise ValueError("relaxation times must be positive")
        if not (0.0 <= self.proton_density <= 1.0 and 0.0 <= self.fat_fraction <= 1.0):
            raise ValueError("proton_density and fat_fraction must lie in [0, 1]")


# (T1, T2, T2*) in ms of the fat component per field strength
FAT_RELAXATION_MS: dict[float, tuple[float, float, float]] = {
    1.5: (290.0, 165.0, 60.0),
    3.0: (370.0, 130.0, 40.0),
}

_TABLE: dict[float, dict[Tissue, tuple[float, float, float, float, float]]] = {
    1.5: {
        Tissue.AIR: (1000.0, 1.0, 1.0, 0.0, 0.0),
        Tissue.LUNG: (1200.0, 40.0, 2.0, 0.15, 0.0),
        Tissue.FAT: (290.0, 165.0, 60.0, 0.95, 0.95),
        Tissue.MUSCLE: (1010.0, 44.0, 30.0, 0.75, 0.02),
        Tissue.MYOCARDIUM: (1030.0, 45.0, 33.0, 0.8, 0.0),
        Tissue.LV_BLOOD: (1550.0, 250.0, 180.0, 0.95, 0.0),
        Tissue.RV_BLOOD: (1550.0, 230.0, 150.0, 0.95, 0.0),
        Tissue.AORTA_BLOOD: (1550.0, 250.0, 180.0, 0.95, 0.0),
        Tissue.PA_BLOOD: (1550.0, 230.0, 150.0, 0.95, 0.0),
        Tissue.LIVER: (590.0, 46.0, 28.0, 0.8, 0.05),
        Tissue.CORTICAL_BONE: (1000.0, 1.0, 0.5, 0.05, 0.0),
        Tissue.BONE_MARROW: (550.0, 50.0, 10.0, 0.8, 0.5),
        Tissue.DESC_AORTA_BLOOD: (1550.0, 250.0, 180.0, 0.95, 0.0),
        Tissue.LA_BLOOD: (1550.0, 250.0, 180.0, 0.95, 0.0),
        Tissue.RA_BLOOD: (1550.0, 230.0, 150.0, 0.95, 0.0),
        Tissue.LVOT_BLOOD: (1550.0, 250.0, 180.0, 0.95, 0.0),
        Tissue.RVOT_BLOOD: (1550.0, 230.0, 150.0, 0.95, 0.0),
        Tissue.CAVA_BLOOD: (1550.0, 230.0, 150.0, 0.95, 0.0),
        Tissue.PERICARDIUM: (800.0, 20.0, 10.0, 0.4, 0.0),
    },
    3.0: {
        Tissue.AIR: (1000.0, 1.0, 1.0, 0.0, 0.0),
        Tissue.LUNG: (1400.0, 35.0, 1.0, 0.15, 0.0),
        Tissue.FAT: (370.0, 130.0, 40.0, 0.95, 0.95),
        Tissue.MUSCLE: (1410.0, 50.0, 25.0, 0.75, 0.02),
        Tissue.MYOCARDIUM: (1470.0, 47.0, 25.0, 0.8, 0.0),
        Tissue.LV_BLOOD: (1930.0, 275.0, 90.0, 0.95, 0.0),
        Tissue.RV_BLOOD: (1930.0, 250.0, 80.0, 0.95, 0.0),
        Tissue.AORTA_BLOOD: (1930.0, 275.0, 90.0, 0.95, 0.0),
        Tissue.PA_BLOOD: (1930.0, 250.0, 80.0, 0.95, 0.0),
        Tissue.LIVER: (810.0, 34.0, 18.0, 0.8, 0.05),
        Tissue.CORTICAL_BONE: (1000.0, 1.0, 0.5, 0.05, 0.0),
        Tissue.BONE_MARROW: (750.0, 45.0, 6.0, 0.8, 0.5),
        Tissue.DESC_AORTA_BLOOD: (1930.0, 275.0, 90.0, 0.95, 0.0),
        Tissue.LA_BLOOD: (1930.0, 275.0, 90.0, 0.95, 0.0),
        Tissue.RA_BLOOD: (1930.0, 250.0, 80.0, 0.95, 0.0),
        Tissue.LVOT_BLOOD: (1930.0, 275.0, 90.0, 0.95, 0.0),
        Tissue.RVOT_BLOOD: (1930.0, 250.0, 80.0, 0.95, 0.0),
        Tissue.CAVA_BLOOD: (1930.0, 250.0, 80.0, 0.95, 0.0),
        Tissue.PERICARDIUM: (1000.0, 18.0, 8.0, 0.4, 0.0),
    },
}


def tissue_properties(field_strength_t: float) -> dict[Tissue, TissueProperties]:
    """Properties of every tissue at 1.5 T or 3 T."""
    if field_strength_t not in _TABLE:
        raise ValueError(f"field strength {field_strength_t} T not tabulated; allowed: 1.5, 3.0")
    return {tissue: TissueProperties(*values) for tissue, values in _TABLE[field_strength_t].items()}


def fat_peak_frequencies_hz(field_strength_t: float) -> npt.NDArray[np.float64]:
    """Frequencies of the fat peaks relative to water in Hz: γ·B0·Δppm (negative: lower than water)."""
    return GYROMAGNETIC_RATIO_HZ_PER_T * field_strength_t * FAT_PEAKS_PPM * 1e-6


def larmor_frequency_hz(field_strength_t: float) -> float:
    """¹H resonance frequency γ·B0 in Hz."""
    return GYROMAGNETIC_RATIO_HZ_PER_T * field_strength_t
