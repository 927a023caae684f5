"""Monte-Carlo scans (``hardware_sim.pet``) of small phantoms on the ``small`` scanner for the recon tests.

The full NEMA IEC body phantom (30 cm wide) does not fit the ``small`` scanner (ring radius 15 cm), so the
tests use a NEMA-like phantom scaled to it: a water cylinder Ø 200 mm × 90 mm with the six NEMA spheres
(10–37 mm, 4:1, centres on a 57.2 mm circle in the plane z = 0).  A uniform water cylinder scan serves
as the daily cross-calibration scan (its known activity gives the calibration factor, as on a clinical
scanner).  Only events, acquisition info and the μ-map reach the reconstruction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hardware_sim.pet.config import PETSimulationConfig
from hardware_sim.pet.phantoms import MU_WATER_PER_CM, PETPhantom, uniform_cylinder_phantom
from hardware_sim.pet.shapes import OpenGrid, assign_tissue, elliptic_cylinder, sphere
from hardware_sim.pet.simulator import PETListModeSimulator
from recon.tof.geometry import ImageGrid, small_test_scanner
from recon.tof.listmode import ListModeBatch, PETAcquisitionInfo, concatenate_batches

SPHERE_DIAMETERS_MM = (10.0, 13.0, 17.0, 22.0, 28.0, 37.0)
BACKGROUND_BQ_PER_ML = 5000.0
SPHERE_TO_BACKGROUND = 4.0
BODY_RADIUS_MM = 100.0
BODY_HALF_LENGTH_MM = 45.0


def sphere_centres_mm() -> list[tuple[float, float, float]]:
    """(x, y, z) of the spheres, smallest first (NEMA layout: 57.2 mm circle, 60° apart)."""
    angles = np.deg2rad(np.arange(6) * 60.0 + 180.0)
    return [(57.2 * float(np.cos(a)), 57.2 * float(np.sin(a)), 0.0) for a in angles]


def nema_like_phantom(voxel_size_mm: float = 2.0) -> PETPhantom:
    """The scaled NEMA-like phantom described in the module docstring."""
    n_xy = int(np.ceil((2 * BODY_RADIUS_MM + 8) / voxel_size_mm))
    n_z = int(np.ceil((2 * BODY_HALF_LENGTH_MM + 8) / voxel_size_mm))
    grid = ImageGrid.centred((n_z, n_xy, n_xy), (voxel_size_mm,) * 3)
    g = OpenGrid.of(grid)
    activity = np.zeros(grid.shape_zyx, np.float32)
    mu = np.zeros(grid.shape_zyx, np.float32)
    labels = np.zeros(grid.shape_zyx, np.uint8)
    ones = np.ones(grid.shape_zyx, np.float32)
    body = elliptic_cylinder(
        g, (0.0, 0.0), (BODY_RADIUS_MM, BODY_RADIUS_MM), (-BODY_HALF_LENGTH_MM, BODY_HALF_LENGTH_MM)
    )
    assign_tissue(mu, labels, body, 1, (MU_WATER_PER_CM, MU_WATER_PER_CM), ones)
    activity[body] = BACKGROUND_BQ_PER_ML
    names = ["air", "water"]
    for index, (diameter, centre) in enumerate(zip(SPHERE_DIAMETERS_MM, sphere_centres_mm(), strict=True)):
        inner = sphere(g, centre, diameter / 2.0)
        labels[inner] = 2 + index
        names.append(f"sphere_{diameter:.0f}mm")
        activity[inner] = BACKGROUND_BQ_PER_ML * SPHERE_TO_BACKGROUND
    weight_kg = float(body.sum() * grid.voxel_volume_ml / 1000.0)
    return PETPhantom("nema_small", grid, activity, mu, labels, tuple(names), weight_kg=weight_kg)


@dataclass(frozen=True)
class Scan:
    """What the scanner hands over (events, info) plus the μ-map and, for the test only, the phantom."""

    batch: ListModeBatch
    info: PETAcquisitionInfo
    phantom: PETPhantom


def simulate(phantom: PETPhantom, n_prompts: int, seed: int) -> Scan:
    """Simulate ``n_prompts`` prompts of ``phantom`` on the small scanner with scatter, randoms, attenuation and
    crystal efficiencies; the info carries the efficiencies the way a calibration would (see below)."""
    scanner = small_test_scanner()
    config = PETSimulationConfig(
        n_prompts=n_prompts, seed=seed, injected_dose_bq=3.0e8, patient_weight_kg=70.0
    )
    sim = PETListModeSimulator(phantom, scanner, config)
    batch = concatenate_batches(list(sim.batches()))
    # The normalisation scan of a real scanner measures the crystal efficiencies; the simulator's crystal
    # efficiencies stand in for that calibration result (they are a scanner property, not phantom truth).
    info = sim.acquisition_info(crystal_efficiencies=sim.true_efficiencies)
    return Scan(batch, info, phantom)


def calibration_phantom() -> PETPhantom:
    """Uniform water cylinder Ø 160 mm × 60 mm, 5 kBq/ml."""
    return uniform_cylinder_phantom(
        radius_mm=80.0, length_mm=60.0, activity_bq_per_ml=5000.0, voxel_size_mm=2.0
    )
