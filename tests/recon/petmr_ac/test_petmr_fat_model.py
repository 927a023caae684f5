"""Fat spectrum and signal factors against closed-form values."""

from __future__ import annotations

import numpy as np
import pytest

from recon.petmr_ac.fat_model import (
    HAMILTON_LIVER_FAT,
    SINGLE_PEAK_FAT,
    FatSpectrum,
    fat_frequencies_hz,
    fat_signal_factors,
    larmor_frequency_hz,
)


@pytest.mark.parametrize(("field_t", "expected_hz"), [(1.5, -217.2), (3.0, -434.3)])
def test_main_fat_peak_frequency_matches_3p4_ppm(field_t: float, expected_hz: float) -> None:
    f = fat_frequencies_hz(SINGLE_PEAK_FAT, larmor_frequency_hz(field_t))
    assert f[0] == pytest.approx(expected_hz, abs=0.5)


def test_header_resonance_frequency_takes_precedence() -> None:
    assert larmor_frequency_hz(1.5, 63_600_000.0) == 63_600_000.0
    assert larmor_frequency_hz(1.5, None) == pytest.approx(63.866e6, rel=1e-4)
    with pytest.raises(ValueError):
        larmor_frequency_hz(0.0)


def test_single_peak_in_and_opposed_phase_factors() -> None:
    larmor = larmor_frequency_hz(1.5)
    period_s = 1.0 / abs(fat_frequencies_hz(SINGLE_PEAK_FAT, larmor)[0])
    c = fat_signal_factors(np.array([0.0, period_s / 2, period_s]), SINGLE_PEAK_FAT, larmor)
    np.testing.assert_allclose(c, [1.0, -1.0, 1.0], atol=1e-12)


def test_multi_peak_amplitudes_normalised_and_factor_is_one_at_zero() -> None:
    assert HAMILTON_LIVER_FAT.amplitudes.sum() == pytest.approx(1.0)
    c = fat_signal_factors(np.array([0.0, 1e-3]), HAMILTON_LIVER_FAT, larmor_frequency_hz(3.0))
    assert c[0] == pytest.approx(1.0)
    assert abs(c[1]) < 1.0  # peaks dephase: the multi-peak fat never fully refocuses at 1 ms


def test_invalid_spectrum_rejected() -> None:
    with pytest.raises(ValueError):
        FatSpectrum(shifts_ppm=(-3.4, -2.6), relative_amplitudes=(1.0,))
    with pytest.raises(ValueError):
        FatSpectrum(shifts_ppm=(-3.4,), relative_amplitudes=(-1.0,))
