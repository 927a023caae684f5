"""Normalisation scan: the estimated crystal efficiencies recover the true ones to counting precision."""

from __future__ import annotations

import numpy as np

from hardware_sim.pet.calibration import run_calibration_scan
from hardware_sim.pet.config import PETSimulationConfig
from hardware_sim.pet.detector import true_crystal_efficiencies
from recon.tof.geometry import small_test_scanner


def test_calibration_scan_recovers_crystal_efficiencies() -> None:
    scanner = small_test_scanner()
    n_prompts = 300_000
    estimate = run_calibration_scan(scanner, n_prompts, seed=3, model_prompts=100_000)
    truth = true_crystal_efficiencies(
        scanner, np.random.default_rng(PETSimulationConfig().scanner_seed), 0.08
    )
    truth = truth / truth.mean()
    assert (estimate.shape == (scanner.n_crystals,) and estimate.mean() == np.float32(1.0)) or abs(
        estimate.mean() - 1
    ) < 1e-6
    relative_error = estimate / truth - 1.0
    # counting noise: each prompt hits two crystals; the ring-averaged model adds little
    counts_per_crystal = 2 * n_prompts / scanner.n_crystals
    expected_noise = 1.0 / np.sqrt(counts_per_crystal)
    assert abs(relative_error.mean()) < 0.01
    assert relative_error.std() < 1.3 * expected_noise
    # normalising with the estimate removes most of the crystal-to-crystal variation
    assert relative_error.std() < 0.85 * truth.std()
