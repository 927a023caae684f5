"""Factory cross-calibrations of the simulated scanners: Bq/ml at a first contact, before any site calibration.

A vendor ships a scanner calibrated; the site re-calibrates it (``reconstream calibrate pet``, quarterly for EARL)
and its file, in the calibration folder, then takes precedence.  The simulated scanners of ``simulate pet`` come
with this file's factory calibration so that ``run --chain pet-tof`` on a first simulated scan reads in Bq/ml
(``CalibrationSource = factory``; ``CalibrationStatus`` ``covered`` or ``not covered`` as for any file).

Provenance: each entry is the verbatim output of the shipped procedure on the 2-core VM, 2026-12-05, 2·10⁶
prompts each, run again in session 11 when the statistical uncertainty came to include the scatter scale's
Poisson error (:mod:`recon.tof.cross_calibration`): factors unchanged (``small`` 1.2796, ``signa`` 1.3482, ``mmr``
1.4312), statistical uncertainty 0.53 → 0.56 %, 0.38 → 0.43 %, 0.36 → 0.41 %:

    reconstream simulate pet --phantom cylinder --scanner SCANNER --counts 2000000 --seed 2026 --out cyl.petsird
    reconstream calibrate pet --input cyl.petsird --reading cyl.petsird.dose_calibrator.json --out pet_SCANNER.json

``simulate pet`` writes no crystal efficiencies by default (no normalisation scan), so the factor also holds the
simulated crystals' mean efficiency² (``normalised: false``): data that come with a normalisation are flagged
``not covered`` by it.
"""

from __future__ import annotations

from plugins.pet.calibration_file import PETCalibration

#: Scanner name → the ``calibrate pet`` file (JSON text), see the module docstring.
FACTORY_CALIBRATIONS: dict[str, str] = {
    "small": """\
{
  "format_version": 1,
  "scanner": "small",
  "factor": 1.279552639935165,
  "uncertainty_relative": 0.0207633537750172,
  "statistical_uncertainty_relative": 0.0055782488279495996,
  "dose_calibrator_uncertainty_relative": 0.02,
  "scan_date": "2026-12-05T13:00:31Z",
  "created": "2026-12-05T13:01:42.182310Z",
  "settings": {
    "scanner": "small",
    "voxel_size_mm": 2.78,
    "n_iterations": 3,
    "n_subsets": 17,
    "use_tof": true,
    "post_filter_fwhm_mm": 5.0,
    "scatter": true,
    "normalised": false
  },
  "measurement": {
    "known_concentration_bq_per_ml": 5000.78393061354,
    "image_concentration_bq_per_ml": 3908.2283718057347,
    "voi_volume_ml": 75.97079027199999,
    "n_prompts": 2000000,
    "chain": "pet-tof",
    "scan_file": "cyl.petsird",
    "quality_warnings": []
  }
}
""",
    "signa": """\
{
  "format_version": 1,
  "scanner": "signa",
  "factor": 1.3481911622121598,
  "uncertainty_relative": 0.02044904726127642,
  "statistical_uncertainty_relative": 0.0042618697650112,
  "dose_calibrator_uncertainty_relative": 0.02,
  "scan_date": "2026-12-05T13:02:31Z",
  "created": "2026-12-05T13:04:59.962021Z",
  "settings": {
    "scanner": "signa",
    "voxel_size_mm": 2.78,
    "n_iterations": 3,
    "n_subsets": 17,
    "use_tof": true,
    "post_filter_fwhm_mm": 5.0,
    "scatter": true,
    "normalised": false
  },
  "measurement": {
    "known_concentration_bq_per_ml": 5000.298915783862,
    "image_concentration_bq_per_ml": 3708.8945959111575,
    "voi_volume_ml": 3151.584638975999,
    "n_prompts": 2000000,
    "chain": "pet-tof",
    "scan_file": "cyl.petsird",
    "quality_warnings": []
  }
}
""",
    "mmr": """\
{
  "format_version": 1,
  "scanner": "mmr",
  "factor": 1.4311502646802716,
  "uncertainty_relative": 0.0204181784224591,
  "statistical_uncertainty_relative": 0.004111205430451565,
  "dose_calibrator_uncertainty_relative": 0.02,
  "scan_date": "2026-12-05T13:05:52Z",
  "created": "2026-12-05T13:08:51.834654Z",
  "settings": {
    "scanner": "mmr",
    "voxel_size_mm": 2.78,
    "n_iterations": 3,
    "n_subsets": 17,
    "use_tof": true,
    "post_filter_fwhm_mm": 5.0,
    "scatter": true,
    "normalised": false
  },
  "measurement": {
    "known_concentration_bq_per_ml": 5000.298915783862,
    "image_concentration_bq_per_ml": 3493.9021004205742,
    "voi_volume_ml": 3191.052495799999,
    "n_prompts": 2000000,
    "chain": "pet-tof",
    "scan_file": "cyl.petsird",
    "quality_warnings": []
  }
}
""",
}


def factory_calibration(scanner: str) -> PETCalibration | None:
    """The factory calibration of ``scanner``, or ``None`` when it has none."""
    text = FACTORY_CALIBRATIONS.get(scanner)
    return None if text is None else PETCalibration.model_validate_json(text)
