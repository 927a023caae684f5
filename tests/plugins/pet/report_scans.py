"""Monte-Carlo scans (``hardware_sim.pet``, never the reconstruction's projectors) for the issue-23 tests.

All on the ``small`` scanner (ring radius 150 mm, transaxial FOV radius 142.5 mm, axial FOV 66.7 mm), one
``scanner_seed`` (same crystals).  Objects are sized for this ring as clinical ones are for a 62 cm ring, so that
LORs outside the body remain for the scatter tail fit (a Ø 200 mm object in this ring leaves only 115–142 mm:
there the simulator puts 0.3 % of its scatter, and no tail fit can see it):
- the cross-calibration cylinder of ``simulate pet --phantom cylinder`` (Ø 96 × 96 mm here, 5 kBq/ml) and its
  dose-calibrator reading, written by the simulator's own writer;
- a different uniform cylinder (Ø 120 × 120 mm, 8 kBq/ml): the accuracy check;
- a NEMA-like phantom scaled to the ring (body Ø 150 × 90 mm, sphere circle 40 mm at z = −8 mm) with the six
  full-size NEMA spheres (10–37 mm, 10:1 as EARL fills them, 5 kBq/ml background);
- a small torso (elliptic body 170 × 120 mm, lungs, spine, a Ø 40 mm lesion of SUV 6 in soft tissue) with a
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
LESION_SUV, LESION_RADIUS_MM, LESION_CENTRE_XYZ_MM = 6.0, 20.0, (0.0, -28.0, 0.0)
UNIFORM_BQ_PER_ML, UNIFORM_RADIUS_MM, UNIFORM_LENGTH_MM = 8000.0, 60.0, 120.0


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
    """The small torso of the module docstring (SUV 1 soft tissue, 0.4 lung, 1.5 spine), 2 mm voxels."""
    grid = ImageGrid.centred((70, 66, 92), (voxel_size_mm,) * 3)
    g = OpenGrid.of(grid)
    activity = np.zeros(grid.shape_zyx, np.float32)
    mu = np.zeros(grid.shape_zyx, np.float32)
    labels = np.zeros(grid.shape_zyx, np.uint8)
    ones = np.ones(grid.shape_zyx, np.float32)
    unit = suv_unit_bq_per_ml()
    regions = [
        ("soft_tissue", elliptic_cylinder(g, (0.0, 0.0), (85.0, 60.0), (-65.0, 65.0)), 0.099, 1.0),
        ("lung", elliptic_cylinder(g, (-42.0, -5.0), (22.0, 30.0), (-65.0, 65.0)), 0.026, 0.4),
        ("lung", elliptic_cylinder(g, (42.0, -5.0), (22.0, 30.0), (-65.0, 65.0)), 0.026, 0.4),
        ("spine", elliptic_cylinder(g, (0.0, 40.0), (9.0, 9.0), (-65.0, 65.0)), 0.13, 1.5),
        ("lesion", sphere(g, LESION_CENTRE_XYZ_MM, LESION_RADIUS_MM), 0.099, LESION_SUV),
    ]  # fmt: skip
    names = ["air"]
    for name, mask, mu_value, suv in regions:
        if name not in names:
            names.append(name)
        assign_tissue(mu, labels, mask, names.index(name), (mu_value, mu_value), ones)
        activity[mask] = suv * unit
    return PETPhantom("small_torso", grid, activity, mu, labels, tuple(names), weight_kg=WEIGHT_KG)


#: NEMA-like phantom scaled to the small ring: background concentration, sphere:background, body and circle.
#: 10:1 as the EARL accreditation fills the spheres (20 kBq/ml in a 2 kBq/ml background; Boellaard et al., EJNMMI
#: 2015; Kaalep et al., EJNMMI 2018): the EARL RCmean bands hold for that ratio only, since an A50 VOI's mean holds
#: the background spilled into the sphere (at 4:1 the 10 mm sphere read 0.63 at 10⁷ prompts,
#: above EARL2; at 10:1 0.55 and 0.59 at 4·10⁶, two seeds).
BACKGROUND_BQ_PER_ML, SPHERE_TO_BACKGROUND = 5000.0, 10.0
SPHERE_DIAMETERS_MM = (10.0, 13.0, 17.0, 22.0, 28.0, 37.0)
NEMA_BODY_RADIUS_MM, NEMA_HALF_LENGTH_MM, SPHERE_CIRCLE_MM = 75.0, 45.0, 40.0
#: The sphere plane sits below the centre so that background slices (z ≥ 22 mm) stay ≥ 11.5 mm (1.4 FWHM) above
#: the largest sphere inside the 66.7 mm axial FOV.
SPHERE_PLANE_Z_MM = -8.0


def sphere_centres_mm() -> list[tuple[float, float, float]]:
    """(x, y, z) of the spheres, smallest first, 60° apart on the sphere circle in the sphere plane."""
    angles = np.deg2rad(np.arange(6) * 60.0 + 180.0)
    r = SPHERE_CIRCLE_MM
    return [(r * float(np.cos(a)), r * float(np.sin(a)), SPHERE_PLANE_Z_MM) for a in angles]


def nema_small_phantom(voxel_size_mm: float = 2.0) -> PETPhantom:
    """Water body Ø 150 × 90 mm with the six NEMA spheres at 10:1 (module docstring)."""
    n_xy = int(np.ceil((2 * NEMA_BODY_RADIUS_MM + 8) / voxel_size_mm))
    n_z = int(np.ceil((2 * NEMA_HALF_LENGTH_MM + 8) / voxel_size_mm))
    grid = ImageGrid.centred((n_z, n_xy, n_xy), (voxel_size_mm,) * 3)
    g = OpenGrid.of(grid)
    activity = np.zeros(grid.shape_zyx, np.float32)
    mu = np.zeros(grid.shape_zyx, np.float32)
    labels = np.zeros(grid.shape_zyx, np.uint8)
    body = elliptic_cylinder(
        g, (0.0, 0.0), (NEMA_BODY_RADIUS_MM,) * 2, (-NEMA_HALF_LENGTH_MM, NEMA_HALF_LENGTH_MM)
    )
    assign_tissue(mu, labels, body, 1, (0.096, 0.096), np.ones(grid.shape_zyx, np.float32))
    activity[body] = BACKGROUND_BQ_PER_ML
    for index, (diameter, centre) in enumerate(zip(SPHERE_DIAMETERS_MM, sphere_centres_mm(), strict=True)):
        inner = sphere(g, centre, diameter / 2.0)
        labels[inner] = 2 + index
        activity[inner] = BACKGROUND_BQ_PER_ML * SPHERE_TO_BACKGROUND
    names = ("air", "water", *(f"sphere_{d:.0f}mm" for d in SPHERE_DIAMETERS_MM))
    weight_kg = float(body.sum() * grid.voxel_volume_ml / 1000.0)
    return PETPhantom("nema_small_ring", grid, activity, mu, labels, names, weight_kg=weight_kg)
