"""Which cross-calibration factor a PET reconstruction applies, and what its image metadata say about it.

``CalibrationStatus`` of the image: ``covered`` (a calibration file whose settings and age cover the run),
``not covered`` (a calibration file applied although its settings or age do not cover the run: the reasons are
in ``CalibrationNotCovered`` and in a ``QualityWarning``), ``manual`` (``calibration_factor`` given by hand),
``none`` (no calibration: factor 1, the geometric model's absolute scale).  ``CalibrationSource`` says where the
factor came from: ``site`` (the scanner's file in the calibration folder), ``file`` (a file given by path),
``factory`` (no site file: :mod:`plugins.pet.factory_calibration`, the simulated scanners only), ``manual``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from plugins.pet.calibration_file import (
    CalibratedSettings,
    coverage_problems,
    default_calibration_path,
    read_calibration,
)
from plugins.pet.factory_calibration import factory_calibration


@dataclass(frozen=True)
class AppliedCalibration:
    """The calibration of one frame.

    Attributes:
        factor: the factor applied to the activity (dimensionless, > 0).
        status: ``covered``, ``not covered``, ``manual`` or ``none`` (see the module docstring).
        meta: ISMRMRD metadata describing it (``Calibration*`` keys).
        warnings: one line per reason not to trust it (for ``QualityWarning``).
    """

    factor: float
    status: str
    meta: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def resolve_calibration(
    manual_factor: float | None,
    calibration_file: str,
    run: CalibratedSettings,
    now: datetime,
    max_age_days: float,
) -> AppliedCalibration:
    """The calibration a run with settings ``run`` applies: ``manual_factor`` when given, else the file
    (``"auto"``: the scanner's file in the calibration folder, if any; ``"none"``: no calibration)."""
    if manual_factor is not None:
        meta = {"CalibrationStatus": "manual", "CalibrationFactor": f"{manual_factor:.6g}"}
        return AppliedCalibration(manual_factor, "manual", meta)
    if calibration_file == "none":
        return _uncalibrated("calibration_file = none")
    path = default_calibration_path(run.scanner) if calibration_file == "auto" else Path(calibration_file)
    source = "site" if calibration_file == "auto" else "file"
    if calibration_file == "auto" and not path.is_file():
        factory = factory_calibration(run.scanner)
        if factory is None:
            return _uncalibrated(f"no {path}")
        calibration, source, path = factory, "factory", Path(f"factory:{run.scanner}")
    else:
        calibration = read_calibration(path)
    if calibration.scanner != run.scanner:
        raise ValueError(
            f"PET calibration file {path} is for scanner {calibration.scanner!r}, the data come from {run.scanner!r}"
        )
    problems = coverage_problems(calibration, run, now, max_age_days)
    meta = {
        "CalibrationStatus": "not covered" if problems else "covered",
        "CalibrationFactor": f"{calibration.factor:.6g}",
        "CalibrationUncertainty_percent": f"{100.0 * calibration.uncertainty_relative:.2f}",
        "CalibrationDate": calibration.scan_date.isoformat(),
        "CalibrationFile": str(path),
        "CalibrationSource": source,
    }
    warnings: tuple[str, ...] = ()
    if problems:
        meta["CalibrationNotCovered"] = "; ".join(problems)
        warnings = (
            f"the PET calibration {path} does not cover this run ({'; '.join(problems)}): its factor "
            f"{calibration.factor:.4g} is applied but activity values may be off; recalibrate with these settings",
        )
    return AppliedCalibration(calibration.factor, meta["CalibrationStatus"], meta, warnings)


def _uncalibrated(why: str) -> AppliedCalibration:
    meta = {"CalibrationStatus": "none", "CalibrationFactor": "1", "CalibrationNone": why}
    return AppliedCalibration(1.0, "none", meta)
