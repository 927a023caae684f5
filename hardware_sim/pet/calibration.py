"""Normalisation (calibration) scan: crystal efficiencies as the scanner's calibration software reports them.

The calibration source is a uniform cylinder of activity in air (no attenuating body, so almost no
scatter), measured on the same scanner (same ``scanner_seed``, hence the same crystals) as the patient.
The expected counts of crystal ``i`` are ``c_i = e_i · Σ_j e_j G_ij``; the geometric factor of a centred
cylinder is the same for every crystal of a ring, so a second, unit-efficiency simulation of the same
source averaged over each ring gives ``G_ring`` with little noise, and ``e_i ∝ c_i / G_ring(i)``
(normalised to mean 1).  Prompts minus delayeds are counted, i.e. randoms are subtracted.
The statistical error is ``1/sqrt(c_i)`` per crystal: clinical quality needs 10⁷–10⁸ counts.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hardware_sim.pet.config import PETSimulationConfig
from hardware_sim.pet.phantoms import PETPhantom, uniform_cylinder_phantom
from hardware_sim.pet.simulator import PETListModeSimulator
from recon.tof.geometry import ScannerGeometry


def calibration_phantom(scanner: ScannerGeometry, activity_bq_per_ml: float = 2000.0) -> PETPhantom:
    """A uniform cylinder in air (radius ≈ 0.45 × ring radius, covering the axial FOV + 2 cm)."""
    radius_mm = min(150.0, 0.45 * scanner.ring_radius_mm)
    voxel_mm = max(2.0, round(radius_mm / 40.0))
    phantom = uniform_cylinder_phantom(
        radius_mm=radius_mm,
        length_mm=scanner.axial_fov_mm + 20.0,
        activity_bq_per_ml=activity_bq_per_ml,
        voxel_size_mm=voxel_mm,
    )
    return dataclasses.replace(phantom, name="calibration", mu_per_cm=np.zeros_like(phantom.mu_per_cm))


def crystal_counts(simulator: PETListModeSimulator) -> np.ndarray:
    """Net (prompts − delayeds) coincidence counts per crystal of a simulation, float64 ``(n_crystals,)``."""
    counts = np.zeros(simulator.scanner.n_crystals)
    for batch in simulator.batches():
        sign = np.where(batch.is_prompt, 1.0, -1.0)
        counts += np.bincount(batch.crystal_id_1, weights=sign, minlength=counts.size)
        counts += np.bincount(batch.crystal_id_2, weights=sign, minlength=counts.size)
    return counts


def estimate_crystal_efficiencies(
    counts: np.ndarray, model_counts: np.ndarray, scanner: ScannerGeometry
) -> np.ndarray:
    """``e_i ∝ counts_i / G_ring(i)`` with ``G_ring`` the ring average of ``model_counts``; mean 1, float32."""
    ring_model = model_counts.reshape(scanner.n_rings, scanner.n_crystals_per_ring).mean(axis=1)
    if np.any(ring_model <= 0):
        raise ValueError("the geometric model has rings without counts; simulate more model counts")
    ratio = counts.reshape(scanner.n_rings, scanner.n_crystals_per_ring) / ring_model[:, None]
    ratio = np.clip(ratio, 0.0, None).ravel()
    return (ratio / ratio.mean()).astype(np.float32)


def calibration_simulator(
    scanner: ScannerGeometry, n_prompts: int, seed: int = 1, scanner_seed: int | None = None
) -> PETListModeSimulator:
    """The normalisation scan of ``scanner`` (its list-mode is what a reconstruction may calibrate from)."""
    config = PETSimulationConfig(
        n_prompts=n_prompts, seed=seed, scatter=False, attenuation=False,
        scanner_seed=PETSimulationConfig().scanner_seed if scanner_seed is None else scanner_seed,
    )  # fmt: skip
    return PETListModeSimulator(calibration_phantom(scanner), scanner, config)


def run_calibration_scan(
    scanner: ScannerGeometry,
    n_prompts: int,
    seed: int = 1,
    scanner_seed: int | None = None,
    model_prompts: int | None = None,
) -> np.ndarray:
    """Simulate a normalisation scan and return the estimated crystal efficiencies (mean 1, float32)."""
    scan = calibration_simulator(scanner, n_prompts, seed, scanner_seed)
    counts = crystal_counts(scan)
    model_config = dataclasses.replace(
        scan.config, seed=seed + 1, unit_efficiencies=True, n_prompts=model_prompts or n_prompts
    )
    model = crystal_counts(PETListModeSimulator(scan.phantom, scanner, model_config))
    return estimate_crystal_efficiencies(counts, model, scanner)
