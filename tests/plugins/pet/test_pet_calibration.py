"""Issue 23: ``reconstream calibrate pet`` writes the scanner's calibration file, the chains read it, and a run
whose settings (or date) the calibration does not cover says so in its metadata.

The command-line case is the smallest that runs every step (a 60 k-prompt cylinder scan on the ``small``
scanner, shipped ``pet-tof`` settings); the accuracy of the calibrated activity is tested in
``test_pet_quantitation``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h5py
import ismrmrd
import pytest

from plugins.cli import main
from plugins.pet.calibration_file import (
    CALIBRATION_DIR_ENV,
    CalibratedSettings,
    CrossCalibrationMeasurement,
    PETCalibration,
    read_calibration,
    write_calibration,
)
from plugins.pet.calibration_use import resolve_calibration

SHIPPED = CalibratedSettings(
    scanner="small", voxel_size_mm=2.78, n_iterations=3, n_subsets=17, use_tof=True,
    post_filter_fwhm_mm=5.0, scatter=True,
)  # fmt: skip
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _calibration(scan_date: datetime = NOW, scanner: str = "small") -> PETCalibration:
    measurement = CrossCalibrationMeasurement(
        known_concentration_bq_per_ml=5000.0, image_concentration_bq_per_ml=5500.0, voi_volume_ml=800.0,
        n_prompts=1, chain="pet-tof", scan_file="cyl.petsird",
    )  # fmt: skip
    return PETCalibration(
        scanner=scanner, factor=0.909, uncertainty_relative=0.021, statistical_uncertainty_relative=0.005,
        dose_calibrator_uncertainty_relative=0.02, scan_date=scan_date, created=NOW,
        settings=SHIPPED.model_copy(update={"scanner": scanner}), measurement=measurement,
    )  # fmt: skip


def test_a_calibration_covers_runs_with_its_settings_only(tmp_path: Path) -> None:
    path = write_calibration(_calibration(), tmp_path / "cal.json")
    covered = resolve_calibration(None, str(path), SHIPPED, NOW, 92.0)
    assert covered.status == "covered" and covered.factor == pytest.approx(0.909) and not covered.warnings
    # low counts reduce the subsets with as many more iterations: same updates, still covered
    same_updates = SHIPPED.model_copy(update={"n_iterations": 51, "n_subsets": 1})
    assert resolve_calibration(None, str(path), same_updates, NOW, 92.0).status == "covered"
    for change in (
        {"post_filter_fwhm_mm": 6.0},
        {"n_iterations": 4},
        {"voxel_size_mm": 4.0},
        {"use_tof": False},
    ):
        other = resolve_calibration(None, str(path), SHIPPED.model_copy(update=change), NOW, 92.0)
        assert other.status == "not covered" and other.meta["CalibrationNotCovered"], change
        assert other.factor == pytest.approx(0.909) and "does not cover" in other.warnings[0]
    unnormalised = _calibration().model_copy(
        update={"settings": SHIPPED.model_copy(update={"normalised": False})}
    )
    write_calibration(unnormalised, tmp_path / "unnormalised.json")
    normalised_run = SHIPPED.model_copy(update={"normalised": True})
    other = resolve_calibration(None, str(tmp_path / "unnormalised.json"), normalised_run, NOW, 92.0)
    assert (
        other.status == "not covered" and "normalisation applied True" in other.meta["CalibrationNotCovered"]
    )
    old = resolve_calibration(None, str(path), SHIPPED, NOW + timedelta(days=100), 92.0)
    assert old.status == "not covered" and "days ago" in old.meta["CalibrationNotCovered"]


def test_auto_finds_the_scanners_file_none_and_manual_do_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CALIBRATION_DIR_ENV, str(tmp_path))
    elsewhere = SHIPPED.model_copy(update={"scanner": "vision600"})  # a scanner without a factory calibration
    assert resolve_calibration(None, "auto", elsewhere, NOW, 92.0).status == "none"
    for scanner, factor in (("signa", 1.3482), ("mmr", 1.4312)):
        shipped = resolve_calibration(
            None, "auto", SHIPPED.model_copy(update={"scanner": scanner}), NOW, 92.0
        )
        assert shipped.meta["CalibrationSource"] == "factory" and shipped.factor == pytest.approx(
            factor, abs=1e-4
        )
    factory = resolve_calibration(None, "auto", SHIPPED, NOW + timedelta(days=2), 92.0)
    assert factory.meta["CalibrationSource"] == "factory" and factory.status == "covered"
    assert factory.factor == pytest.approx(1.2796, abs=1e-4)
    write_calibration(_calibration(), tmp_path / "pet_small.json")
    site = resolve_calibration(None, "auto", SHIPPED, NOW, 92.0)
    assert site.status == "covered" and site.meta["CalibrationSource"] == "site"
    assert resolve_calibration(None, "none", SHIPPED, NOW, 92.0).factor == 1.0
    manual = resolve_calibration(1.1, "auto", SHIPPED, NOW, 92.0)
    assert manual.status == "manual" and manual.factor == 1.1


def test_another_scanners_calibration_is_refused(tmp_path: Path) -> None:
    path = write_calibration(_calibration(scanner="signa"), tmp_path / "cal.json")
    with pytest.raises(ValueError, match="is for scanner 'signa'"):
        resolve_calibration(None, str(path), SHIPPED, NOW, 92.0)


def test_calibrate_pet_cli_writes_the_file_the_chain_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scan = tmp_path / "cyl.petsird"
    simulate = ["simulate", "pet", "--phantom", "cylinder", "--scanner", "small", "--counts", "60000"]
    assert main([*simulate, "--voxel-mm", "4", "--out", str(scan)]) == 0
    reading = Path(f"{scan}.dose_calibrator.json")
    # the clinical Ø 200 × 200 mm cylinder, scaled with the ring (150 / 312 mm) like the other phantoms
    assert json.loads(reading.read_text())["phantom"]["inner_radius_mm"] == pytest.approx(
        100.0 * 150.0 / 312.0
    )
    cal = tmp_path / "cal" / "pet_small.json"
    calibrate = ["calibrate", "pet", "--input", str(scan), "--reading", str(reading), "--device", "cpu"]
    assert main([*calibrate, "--out", str(cal)]) == 0
    printed = capsys.readouterr().out
    calibration = read_calibration(cal)
    assert "factor" in printed  # and every reason not to trust the calibration image, as run prints them
    assert all(
        f"warning: calibration image: {w}" in printed for w in calibration.measurement.quality_warnings
    )
    # simulate pet writes no crystal efficiencies: the factor also holds their mean², and says so
    assert (
        calibration.settings == SHIPPED.model_copy(update={"normalised": False})
        and 0.3 < calibration.factor < 3.0
    )
    assert calibration.uncertainty_relative >= calibration.dose_calibrator_uncertainty_relative == 0.02
    sets = ["--set", f"pet_tof_osem.calibration_file={cal}", "--set", "pet_tof_osem.post_filter_fwhm_mm=6"]
    assert (
        main(
            [
                "run",
                "--chain",
                "pet-tof",
                "--input",
                str(scan),
                *sets,
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 0
    )
    with h5py.File(tmp_path / "run" / "images.h5", "r") as f:
        meta = ismrmrd.Meta.deserialize(f["dataset/image_100/attributes"][0])
    assert meta["CalibrationStatus"] == "not covered" and "post-filter 6 mm" in meta["CalibrationNotCovered"]
    assert float(meta["CalibrationFactor"]) == pytest.approx(calibration.factor, rel=1e-5)
    assert "does not cover this run" in capsys.readouterr().out  # run prints each QualityWarning


def test_calibrate_pet_with_a_bad_reading_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reading = tmp_path / "reading.json"
    reading.write_text(json.dumps({"kind": "pet_cross_calibration_reading", "isotope": "F-18"}))
    argv = ["calibrate", "pet", "--input", str(tmp_path / "x.petsird"), "--reading", str(reading)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reconstream calibrate: error: dose calibrator reading") and "\n" not in err
    assert "Traceback" not in err


def test_calibrate_pet_with_a_file_that_is_not_list_mode_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reading = tmp_path / "reading.json"
    reading.write_text(
        json.dumps(
            {
                "kind": "pet_cross_calibration_reading", "isotope": "F-18", "half_life_s": 6586.2,
                "activity_bq": 3.0e7, "assay_time": "2026-12-04T09:00:00+00:00",
                "scan_start": "2026-12-04T10:00:00+00:00",
                "phantom": {"inner_radius_mm": 48.0, "inner_length_mm": 96.0},
            }
        )
    )  # fmt: skip
    notes = tmp_path / "notes.txt"
    notes.write_text("not list-mode\n")
    assert main(["calibrate", "pet", "--input", str(notes), "--reading", str(reading)]) == 2
    err = capsys.readouterr().err.strip()
    assert "notes.txt is not a PETSIRD list-mode file" in err and "\n" not in err
