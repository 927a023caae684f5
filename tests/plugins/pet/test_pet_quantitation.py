"""Issue 23: PET numbers you can put in a report, through the shipped ``pet-tof`` chain at its shipped settings.

Everything runs the shipped chain file (2.78 mm voxels, 3 iterations × 17 subsets — fewer subsets with as many
more iterations at low counts, as shipped —, TOF, 5 mm post-filter, scatter on) on the ``small`` scanner at
reduced counts; the only setting given is the calibration file.  Scans: :mod:`tests.plugins.pet.report_scans`.

Limits, fixed before the first run and not changed since.  The objects were redesigned once after the first run:
its Ø 160–260 mm objects left this ring almost no LORs outside the body for the scatter tail fit (the uniform
cylinder read −6 %, the lesion −23 %); they are now sized for the ring as clinical objects are for a 62 cm one.
- cross-calibration (``calibrate pet``'s code path on the simulator's cylinder and reading): statistical
  uncertainty ≤ 2 %; the file holds the chain's settings and later runs read ``CalibrationStatus = covered``;
- a different uniform cylinder (size, concentration, seed) reads within 3 % of its activity after calibration;
- NEMA-like spheres (six, full size, in a body scaled to the ring): RCmean (EARL A50 VOI, background-adapted
  50 % threshold) of every sphere inside the bands of one EARL standard, EARL1 (Boellaard et al., EJNMMI 2015,
  Table 9) or EARL2 (Kaalep et al., EJNMMI 2018); background variability (NEMA NU 2: SD/mean of 18 ROIs per
  size, 6 per slice on 3 slices) of the 37 mm ROIs ≤ 10 % and the 10 mm sphere's contrast ≥ 3 × the 10 mm
  ROIs' variability (reduced counts: the clinical NEMA figures, 2–8 %, need 50× more counts);
- SUVmean of a Ø 40 mm torso lesion (core VOI: radius 10 mm, 1.25 FWHM inside its edge) within 5 % of the
  truth (SUV 6) with the known dose and weight.

History (shared 2-core VM).  2026-12-04, former scatter model (scale ≈ 0 on this ring): uniform +2.3 %, lesion
−13 %.  2026-12-05, single scatter simulation, calibration and uniform scans of 4·10⁵ prompts, NEMA of 10⁶ at 4:1:
calibration factor 0.9005 ± 1.2 %, uniform −4.56 % and RCmean 0.71–0.94 (10 mm above EARL2): both were strict
expected failures.  Neither came mainly from the scatter model's size dependence, as believed then:
- Uniform: the same chain on Ø 96 (calibration-sized) and Ø 120 mm cylinders and the NEMA body, 10⁶ prompts, seeds
  1–4 (2026-12-05, true μ-maps): Ø 120 / Ø 96 = 0.997, 1.001, 0.990, 1.006 (mean 0.999), NEMA body / Ø 96 = 0.993,
  0.970, 0.977, 0.986 (mean 0.981).  Each scan reads ±0.6–0.8 % (SD over seeds) at 10⁶ prompts; ``calibrate pet``
  at 4·10⁵ prompts gave 0.9005, 0.9250, 0.9085 for seeds 11, 1, 2 and at 2·10⁶ 0.9257 and 0.9166 (seeds 1, 2).
  The −4.56 % was the seed-11 calibration scan reading ≈ 2 % high and the 4·10⁵-prompt uniform scan ≈ 2 % low.
  Hence 2·10⁶ prompts for both (the factory procedure's count).
- NEMA: the spheres were filled 4:1, the EARL bands are for 10:1 (:data:`report_scans.SPHERE_TO_BACKGROUND`).
  At 4:1 the 10 mm sphere read 0.71 at 10⁶ prompts and still 0.63 at 10⁷ (calibrated), above EARL2's 0.61.
Measured 2026-12-05 at the counts of :data:`N_CALIBRATION` etc. (VM otherwise idle, 249 s for this module):
calibration factor 0.9225 ± 0.54 % (statistical: VOI blocks 0.51 %, scatter scale 0.16 %); uniform Ø 120 mm cylinder 7952 Bq/ml of 8000 (−0.60 %); NEMA
background 4788 Bq/ml of 5000 (−4.2 %: the Ø 150 mm body's scatter is over-corrected by the tail-fitted single
scatter, see above), variability 12.7 % (10 mm ROIs) and 3.2 % (37 mm; the ROI slices at z 22–29 mm lie near the
end of the 66.7 mm axial FOV, where the sensitivity is a fifth of the centre's), 10 mm sphere contrast 4.53; RCmean
0.545, 0.657, 0.790, 0.827, 0.847, 0.901 (10–37 mm, all in EARL2; the 17–28 mm spheres 0.03 above its lower bounds,
which the background's −4 % lowers: seed 1 instead of 31 gives 0.590, 0.665, 0.763, 0.815, 0.853, 0.898, also in
EARL2); lesion SUVmean 5.905 of 6.0 (−1.6 %).
"""

from __future__ import annotations

import logging
from pathlib import Path

import ismrmrd
import numpy as np
import pytest

from hardware_sim.pet.cli import PETSimulationJob, write_dose_calibrator_reading
from hardware_sim.pet.config import PETSimulationConfig
from plugins.pet.calibration_file import PETCalibration, write_calibration
from plugins.pet.cross_calibration import cross_calibrate, read_reading
from plugins.pet.tof_recon import image_grid_for
from plugins.runtime.chain import load_chain
from plugins.runtime.pipeline import run_chain
from plugins.runtime.plugin import ChainContext
from recon.tof.cross_calibration import central_cylinder_voi
from recon.tof.geometry import ImageGrid, small_test_scanner
from recon.tof.quantitation import a50_voi_mean
from tests.plugins.pet.report_scans import (
    BACKGROUND_BQ_PER_ML,
    DOSE_BQ,
    LESION_CENTRE_XYZ_MM,
    LESION_RADIUS_MM,
    LESION_SUV,
    SPHERE_DIAMETERS_MM,
    SPHERE_TO_BACKGROUND,
    UNIFORM_BQ_PER_ML,
    UNIFORM_LENGTH_MM,
    UNIFORM_RADIUS_MM,
    WEIGHT_KG,
    Scan,
    nema_small_phantom,
    simulate,
    small_torso_phantom,
    sphere_centres_mm,
    uniform_phantom,
)

log = logging.getLogger(__name__)
#: EARL RCmean bands (A50 VOI) by sphere diameter 10, 13, 17, 22, 28, 37 mm.
EARL_RC_MEAN = {
    "EARL1": ((0.27, 0.43), (0.44, 0.60), (0.57, 0.73), (0.63, 0.78), (0.72, 0.85), (0.76, 0.89)),
    "EARL2": ((0.39, 0.61), (0.63, 0.86), (0.76, 0.97), (0.80, 0.99), (0.82, 0.97), (0.85, 1.00)),
}
#: Prompts of each scan.  The calibration scan has the 2·10⁶ prompts of the documented factory procedure
#: (``plugins.pet.factory_calibration``); the uniform cylinder as many (see the module docstring: at 4·10⁵ each
#: scan reads ±1.2 %, too much of the 3 % limit); the NEMA phantom 4·10⁶ (at 10⁶ the A50 VOIs follow noise: the
#: 17 mm sphere read 0.71 in one of two seeds, 0.81 in the other).
N_CALIBRATION, N_UNIFORM, N_NEMA, N_TORSO = 2_000_000, 2_000_000, 4_000_000, 400_000


def _grid() -> ImageGrid:
    chain = load_chain("pet-tof")
    config = chain.stages[-1].config
    return image_grid_for(small_test_scanner(), config.voxel_size_mm, config.transaxial_fov_mm)  # type: ignore[attr-defined]


def _distance_mm(grid: ImageGrid, centre_xyz: tuple[float, float, float]) -> np.ndarray:
    z, y, x = grid.voxel_centres_mm()
    return np.sqrt((x - centre_xyz[0]) ** 2 + (y - centre_xyz[1]) ** 2 + (z - centre_xyz[2]) ** 2)


@pytest.fixture(scope="module")
def calibration(tmp_path_factory: pytest.TempPathFactory) -> tuple[PETCalibration, Path]:
    """``calibrate pet``'s code path on the simulator's cross-calibration cylinder and its reading."""
    folder = tmp_path_factory.mktemp("calibration")
    config = PETSimulationConfig(n_prompts=N_CALIBRATION, seed=11)
    job = PETSimulationJob(
        "cylinder", "small", 2.0, 1.0, config, folder / "cyl.petsird", None, folder / "t.h5"
    )
    sim = job.simulator()
    batches = list(sim.batches())
    write_dose_calibrator_reading(folder / "reading.json", job, 1.0)
    info = sim.acquisition_info(crystal_efficiencies=sim.true_efficiencies)
    result = cross_calibrate(
        batches, info, read_reading(folder / "reading.json"), load_chain("pet-tof"), 0.02
    )
    return result, write_calibration(result, folder / "pet_small.json")


def _reconstruct(scan: Scan, calibration_file: Path) -> tuple[np.ndarray, ismrmrd.Meta]:
    chain = load_chain("pet-tof", {"pet_tof_osem.calibration_file": str(calibration_file)})
    out = run_chain(chain, [scan.info, scan.mu_map(), scan.batch], ChainContext("pet-tof"))
    image = next(o for o in out if isinstance(o, ismrmrd.Image))
    return np.asarray(image.data[0], np.float64), ismrmrd.Meta.deserialize(image.attribute_string)


def test_cross_calibration_holds_the_chain_settings(calibration: tuple[PETCalibration, Path]) -> None:
    result, _ = calibration
    log.info(
        "calibration factor %.4f, statistical ±%.2f %%",
        result.factor,
        100 * result.statistical_uncertainty_relative,
    )
    assert result.statistical_uncertainty_relative <= 0.02
    assert result.settings.voxel_size_mm == 2.78 and result.settings.n_subset_updates == 51
    assert result.settings.use_tof and result.settings.scatter and result.settings.post_filter_fwhm_mm == 5.0


def test_uniform_cylinder_within_3_percent_after_calibration(
    calibration: tuple[PETCalibration, Path], record_property
) -> None:
    scan = simulate(uniform_phantom(), N_UNIFORM, seed=23)
    volume, meta = _reconstruct(scan, calibration[1])
    grid = _grid()
    voi = central_cylinder_voi(grid, UNIFORM_RADIUS_MM, UNIFORM_LENGTH_MM, small_test_scanner().axial_fov_mm)
    ratio = float(volume[voi].mean()) / UNIFORM_BQ_PER_ML
    record_property("uniform_ratio", ratio)
    log.info(
        "uniform cylinder: %.1f Bq/ml of %.0f (%+.2f %%)",
        ratio * UNIFORM_BQ_PER_ML,
        UNIFORM_BQ_PER_ML,
        100 * (ratio - 1),
    )
    assert meta["CalibrationStatus"] == "covered" and meta["Quantitative"] == "true"
    assert abs(ratio - 1.0) <= 0.03


@pytest.fixture(scope="module")
def nema(calibration: tuple[PETCalibration, Path]) -> np.ndarray:
    return _reconstruct(simulate(nema_small_phantom(), N_NEMA, seed=31), calibration[1])[0]


def _background_rois(grid: ImageGrid, diameter_mm: float) -> list[np.ndarray]:
    """NEMA-style background ROIs: 6 circles (r 45 mm, between the sphere angles) on the slices nearest z = 22,
    25, 28 mm, ≥ 11.5 mm above the largest sphere and clear of the FOV's last slice."""
    z, y, x = grid.voxel_centres_mm()
    axis_z = grid.axis_centres_mm(0)
    rois = []
    for z0 in (22.0, 25.0, 28.0):
        plane = np.abs(z - axis_z[np.argmin(np.abs(axis_z - z0))]) < 1e-6
        for angle in np.deg2rad(np.arange(6) * 60.0 + 30.0):
            centre = (45.0 * np.cos(angle), 45.0 * np.sin(angle))
            rois.append(plane & (np.hypot(x - centre[0], y - centre[1]) <= diameter_mm / 2.0))
    return rois


def _rc_mean_a50(image: np.ndarray, grid: ImageGrid, diameter_mm: float, centre, background: float) -> float:
    near = _distance_mm(grid, centre) <= diameter_mm / 2.0 + 8.0
    return a50_voi_mean(image, near, background) / (BACKGROUND_BQ_PER_ML * SPHERE_TO_BACKGROUND)


def test_nema_sphere_recovery_in_earl_bands(nema: np.ndarray, record_property) -> None:
    grid = _grid()
    background = float(np.mean([nema[roi].mean() for roi in _background_rois(grid, 37.0)]))
    rc = [
        _rc_mean_a50(nema, grid, d, c, background)
        for d, c in zip(SPHERE_DIAMETERS_MM, sphere_centres_mm(), strict=True)
    ]
    record_property("rc_mean_a50", rc)
    inside = {
        name: [lo <= r <= hi for r, (lo, hi) in zip(rc, bands, strict=True)]
        for name, bands in EARL_RC_MEAN.items()
    }
    log.info("RCmean by sphere %s: %s; inside EARL1 %s, EARL2 %s", SPHERE_DIAMETERS_MM, np.round(rc, 3),
             inside["EARL1"], inside["EARL2"])  # fmt: skip
    assert any(all(flags) for flags in inside.values()), (np.round(rc, 3), inside)


def test_nema_background_variability(nema: np.ndarray, record_property) -> None:
    grid = _grid()
    variability = {}
    for diameter in (10.0, 37.0):
        means = np.array([nema[roi].mean() for roi in _background_rois(grid, diameter)])
        variability[diameter] = float(means.std(ddof=1) / means.mean())
    background = float(np.mean([nema[roi].mean() for roi in _background_rois(grid, 37.0)]))
    sphere_10 = _distance_mm(grid, sphere_centres_mm()[0]) <= 5.0
    contrast_10 = float(nema[sphere_10].mean()) / background - 1.0
    record_property("background_variability", variability)
    log.info("background %.0f Bq/ml; variability 10 mm %.3f, 37 mm %.3f; 10 mm sphere contrast %.2f",
             background, variability[10.0], variability[37.0], contrast_10)  # fmt: skip
    assert variability[37.0] <= 0.10
    assert contrast_10 >= 3.0 * variability[10.0]


def test_torso_lesion_suv_within_5_percent(calibration: tuple[PETCalibration, Path], record_property) -> None:
    scan = simulate(small_torso_phantom(), N_TORSO, seed=41, dose_bq=DOSE_BQ, weight_kg=WEIGHT_KG)
    volume, meta = _reconstruct(scan, calibration[1])
    suv = volume * float(meta["SUVbwScaleFactor"])
    grid = _grid()
    core = _distance_mm(grid, LESION_CENTRE_XYZ_MM) <= LESION_RADIUS_MM - 10.0
    whole = _distance_mm(grid, LESION_CENTRE_XYZ_MM) <= LESION_RADIUS_MM
    suv_mean = float(suv[core].mean())
    record_property("lesion_suv_mean", suv_mean)
    log.info("lesion SUVmean (core) %.3f, SUVmax %.3f of %.1f", suv_mean, float(suv[whole].max()), LESION_SUV)
    assert meta["Quantitative"] == "true" and meta["CalibrationStatus"] == "covered"
    assert abs(suv_mean / LESION_SUV - 1.0) <= 0.05
