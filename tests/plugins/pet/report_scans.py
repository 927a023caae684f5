"""Monte-Carlo scans (``hardware_sim.pet``, never the reconstruction's projectors) for the issue-23 tests.

All on the ``small`` scanner (ring radius 150 mm, axial FOV 66.7 mm), one ``scanner_seed`` (same crystals):
- the cross-calibration cylinder of ``simulate pet --phantom cylinder`` (Ø 200 × 200 mm, 5 kBq/ml) and its
  dose-calibrator reading, written by the simulator's own writer;
- a different uniform cylinder (Ø 160 × 150 mm, 8 kBq/ml): the uniformity/accuracy check;
- the NEMA-like phantom of ``tests/recon/tof/phantom_scans`` (Ø 200 × 90 mm, six spheres 10–37 mm at 4:1);
- a small torso (elliptic body 260 × 190 mm, lungs, spine, a Ø 40 mm lesion of SUV 6 in soft tissue) with a
  known injected dose and weight.
The normalisation of a real scanner comes from its normalisation scan; here the simulator's crystal
efficiencies stand in for it, the same for every scan (a scanner property, not phantom truth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hardware_sim.pet.config import PETSimulationConfig
from hardware_sim.pet.phantoms import PETPhantom, uniform_cylinder_phantom
from hardware_sim.pet.shapes import OpenGrid, assign_tissue, elliptic_cylinder, sphere
from hardware_sim.pet.simulator import PETListModeSimulator
from plugins.pet.items import PETMuMap
from recon.tof.geometry import ImageGrid, small_test_scanner
from recon.tof.listmode import ListModeBatch, PETAcquisitionInfo, concatenate_batches

#: Torso dose (Bq at injection), weight (kg) and uptake time (s) of the SUV check.
DOSE_BQ, WEIGHT_KG, UPTAKE_S = 370e6, 75.0, 3600.0
LESION_SUV, LESION_RADIUS_MM, LESION_CENTRE_XYZ_MM = 6.0, 20.0, (0.0, -50.0, 0.0)
UNIFORM_BQ_PER_ML, UNIFORM_RADIUS_MM, UNIFORM_LENGTH_MM = 8000.0, 80.0, 150.0


@dataclass(frozen=True)
class Scan:
    """What the scanner hands over (one frame of events, the acquisition info) and, for the test, the phantom."""

    batch: ListModeBatch
    info: PETAcquisitionInfo
    phantom: PETPhantom

    def mu_map(self) -> PETMuMap:
        """The phantom's μ-map as an attenuation input (a CT-based AC stand-in)."""
        return PETMuMap(self.phantom.mu_per_cm, self.phantom.grid, "phantom μ-map (CT stand-in)")


def simulate(
    phantom: PETPhantom, n_prompts: int, seed: int, dose_bq: float = 0.0, weight_kg: float = 1.0
) -> Scan:
    """``n_prompts`` prompts of ``phantom`` with scatter, randoms and attenuation; injection 1 h before."""
    config = PETSimulationConfig(
        n_prompts=n_prompts, seed=seed, injected_dose_bq=dose_bq or None, patient_weight_kg=weight_kg,
        injection_time_s=-UPTAKE_S,
    )  # fmt: skip
    sim = PETListModeSimulator(phantom, small_test_scanner(), config)
    batch = concatenate_batches(list(sim.batches()))
    info = sim.acquisition_info(crystal_efficiencies=sim.true_efficiencies)
    return Scan(batch, info, phantom)


def uniform_phantom() -> PETPhantom:
    """The uniformity check's cylinder (other size and concentration than the calibration cylinder)."""
    return uniform_cylinder_phantom(
        UNIFORM_RADIUS_MM, UNIFORM_LENGTH_MM, UNIFORM_BQ_PER_ML, voxel_size_mm=2.0
    )


def suv_unit_bq_per_ml() -> float:
    """Concentration of SUV 1 at the scan start: dose decayed over the uptake time per gram of weight."""
    return DOSE_BQ * 2.0 ** (-UPTAKE_S / 6586.2) / (WEIGHT_KG * 1000.0)


def small_torso_phantom(voxel_size_mm: float = 2.0) -> PETPhantom:
    """The small torso described in the module docstring (SUV 1 soft tissue, 0.4 lung, 1.5 spine)."""
    grid = ImageGrid.centred((70, 100, 136), (voxel_size_mm,) * 3)
    g = OpenGrid.of(grid)
    activity = np.zeros(grid.shape_zyx, np.float32)
    mu = np.zeros(grid.shape_zyx, np.float32)
    labels = np.zeros(grid.shape_zyx, np.uint8)
    ones = np.ones(grid.shape_zyx, np.float32)
    unit = suv_unit_bq_per_ml()
    regions = [
        ("soft_tissue", elliptic_cylinder(g, (0.0, 0.0), (130.0, 95.0), (-65.0, 65.0)), 0.099, 1.0),
        ("lung", elliptic_cylinder(g, (-65.0, -10.0), (40.0, 55.0), (-65.0, 65.0)), 0.026, 0.4),
        ("lung", elliptic_cylinder(g, (65.0, -10.0), (40.0, 55.0), (-65.0, 65.0)), 0.026, 0.4),
        ("spine", elliptic_cylinder(g, (0.0, 60.0), (15.0, 15.0), (-65.0, 65.0)), 0.13, 1.5),
        ("lesion", sphere(g, LESION_CENTRE_XYZ_MM, LESION_RADIUS_MM), 0.099, LESION_SUV),
    ]  # fmt: skip
    names = ["air"]
    for name, mask, mu_value, suv in regions:
        if name not in names:
            names.append(name)
        assign_tissue(mu, labels, mask, names.index(name), (mu_value, mu_value), ones)
        activity[mask] = suv * unit
    return PETPhantom("small_torso", grid, activity, mu, labels, tuple(names), weight_kg=WEIGHT_KG)
