"""Fat-water swap detection and correction on a case built with a swap."""

from __future__ import annotations

import numpy as np
from conftest import ellipse, make_torso, simulate_echoes

from recon.petmr_ac.dixon_multi_echo import DixonResult, fat_fraction_map, solve_water_fat
from recon.petmr_ac.fat_model import (
    HAMILTON_LIVER_FAT,
    fat_frequencies_hz,
    fat_signal_factors,
    larmor_frequency_hz,
)
from recon.petmr_ac.swaps import correct_swaps, detect_swaps
from recon.petmr_ac.tissue import dice

TES = np.array((1.1e-3, 2.2e-3, 3.3e-3))
FIELD_T = 3.0


def _swapped_case() -> tuple[np.ndarray, DixonResult, np.ndarray, object]:
    torso = make_torso(b0_scale_hz=80.0)
    larmor = larmor_frequency_hz(FIELD_T)
    echoes = simulate_echoes(torso, TES, FIELD_T, 0.01, np.random.default_rng(5))
    fat_hz = float(fat_frequencies_hz(HAMILTON_LIVER_FAT, larmor)[1])  # main peak, −434 Hz
    blob = np.repeat(ellipse(torso.labels.shape[1:], (40, 52), (8, 9))[None], torso.labels.shape[0], axis=0)
    blob &= torso.labels >= 2
    psi = torso.field_map_hz + np.where(blob, fat_hz, 0.0)  # the alias a separation can fall into
    c = fat_signal_factors(TES, HAMILTON_LIVER_FAT, larmor)
    water, fat = solve_water_fat(echoes, TES, psi, c)
    result = DixonResult(water, fat, psi.astype(np.float32), fat_fraction_map(water, fat, 0.05))
    return echoes, result, blob, torso


def test_swap_is_detected_and_corrected() -> None:
    echoes, swapped, blob, torso = _swapped_case()
    err_before = np.abs(swapped.fat_fraction - torso.fat_fraction)[blob]  # type: ignore[attr-defined]
    assert np.mean(err_before > 0.3) > 0.8  # the case really is swapped
    weights = np.abs(swapped.water) + np.abs(swapped.fat)
    weights[torso.labels < 2] = 0.0  # type: ignore[attr-defined]
    larmor = larmor_frequency_hz(FIELD_T)
    fat_hz = float(fat_frequencies_hz(HAMILTON_LIVER_FAT, larmor)[1])
    shift = detect_swaps(swapped.field_map_hz, weights, torso.voxel_size_mm, fat_hz)  # type: ignore[attr-defined]
    assert dice(shift != 0, blob) >= 0.95
    detected = shift != 0
    assert np.mean(detected[blob]) >= 0.98
    np.testing.assert_allclose(shift[detected], -fat_hz)
    fixed = correct_swaps(swapped, echoes, TES, larmor, shift)
    err_after = np.abs(fixed.fat_fraction - torso.fat_fraction)[blob]  # type: ignore[attr-defined]
    assert err_after.mean() <= 0.03
    truth = torso.field_map_hz[detected]  # type: ignore[attr-defined]
    np.testing.assert_allclose(fixed.field_map_hz[detected], truth, atol=1e-3)


def test_no_false_detection_without_swap() -> None:
    torso = make_torso(b0_scale_hz=150.0)
    weights = (torso.water + torso.fat) * (torso.labels >= 2)
    shift = detect_swaps(torso.field_map_hz, weights, torso.voxel_size_mm, -434.0)
    assert np.count_nonzero(shift) == 0
