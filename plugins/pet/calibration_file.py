"""The scanner's PET cross-calibration file: what ``reconstream calibrate pet`` writes and ``pet_tof_osem`` reads.

A site fills a uniform cylinder with an activity measured in its dose calibrator, scans it and reconstructs it
with the clinical protocol; the ratio of the known concentration to the image's mean in a central volume is
the cross-calibration factor (Bq/ml of the dose calibrator per Bq/ml of the uncalibrated reconstruction).
It holds for the reconstruction settings it was measured with (voxel size, iterations × subsets, TOF,
post-filter, scatter correction) and for a while (EARL asks for a quarterly cross-calibration): a run with
other settings, or later, is flagged in the image metadata (``CalibrationStatus``).

File: JSON, one per scanner, by default ``<calibration dir>/pet_<scanner>.json`` where the calibration dir is
``$RECONSTREAM_CALIBRATION_DIR`` or ``~/.local/share/reconstream/calibration``.
"""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

#: Environment variable naming the folder of the site's calibration files.
CALIBRATION_DIR_ENV = "RECONSTREAM_CALIBRATION_DIR"
#: Relative tolerance on voxel size and post-filter width for a calibration to cover a run.
SETTINGS_RTOL = 0.01


class CalibratedSettings(BaseModel):
    """Reconstruction settings a calibration was measured with (and holds for)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scanner: str = Field(description="scanner name (recon.tof.geometry)")
    voxel_size_mm: float = Field(gt=0, description="isotropic voxel size, mm")
    n_iterations: int = Field(ge=1, description="OSEM iterations of the protocol")
    n_subsets: int = Field(ge=1, description="OSEM subsets of the protocol")
    use_tof: bool = Field(description="TOF reconstruction")
    post_filter_fwhm_mm: float = Field(ge=0, description="Gaussian post-filter FWHM, mm")
    scatter: bool = Field(description="scatter correction on")
    normalised: bool | None = Field(
        None,
        description="crystal efficiencies (normalisation) came with the data and were applied; None: not recorded "
        "(files before 2026-12-05). Without normalisation the factor also holds the mean crystal efficiency²",
    )

    @property
    def n_subset_updates(self) -> int:
        """Iterations × subsets: the convergence of the protocol (kept when low counts reduce the subsets)."""
        return self.n_iterations * self.n_subsets


class CrossCalibrationMeasurement(BaseModel):
    """What the calibration scan measured (for the record; not used by the chains)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    known_concentration_bq_per_ml: float = Field(
        gt=0, description="dose calibrator / volume, at the scan start"
    )
    image_concentration_bq_per_ml: float = Field(gt=0, description="uncalibrated image mean in the VOI")
    voi_volume_ml: float = Field(gt=0, description="volume of the central VOI, ml")
    n_prompts: int = Field(ge=0, description="prompts of the calibration scan")
    chain: str = Field(description="chain whose reconstruction stage was used")
    scan_file: str = Field(description="list-mode file of the calibration scan")
    quality_warnings: tuple[str, ...] = Field(
        (), description="the calibration image's QualityWarning lines (e.g. scatter not corrected)"
    )


class PETCalibration(BaseModel):
    """A scanner's cross-calibration (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: Literal[1] = 1
    scanner: str = Field(description="scanner name")
    factor: float = Field(gt=0.0, le=100.0, description="Bq/ml (dose calibrator) per Bq/ml of the image")
    uncertainty_relative: float = Field(ge=0, description="1σ relative uncertainty of the factor, combined")
    statistical_uncertainty_relative: float = Field(ge=0, description="1σ, from the VOI's block means")
    dose_calibrator_uncertainty_relative: float = Field(
        ge=0, description="1σ, stated for the dose calibrator"
    )
    scan_date: datetime = Field(description="start of the calibration scan (timezone-aware)")
    created: datetime = Field(description="when the file was written (timezone-aware)")
    settings: CalibratedSettings
    measurement: CrossCalibrationMeasurement


def calibration_dir() -> Path:
    """The folder of the site's calibration files (``$RECONSTREAM_CALIBRATION_DIR`` or the user default)."""
    configured = os.environ.get(CALIBRATION_DIR_ENV)
    if configured:
        return Path(configured)
    return Path.home() / ".local" / "share" / "reconstream" / "calibration"


def default_calibration_path(scanner: str) -> Path:
    """Where ``calibrate pet`` writes, and the chains look for, the calibration of ``scanner``."""
    return calibration_dir() / f"pet_{scanner}.json"


def read_calibration(path: str | Path) -> PETCalibration:
    """The calibration in ``path``; a ``ValueError`` naming the file when it is missing or invalid."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"PET calibration file {path}: cannot read it ({exc.strerror})") from None
    try:
        return PETCalibration.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "file"
        raise ValueError(f"PET calibration file {path}: {where}: {first.get('msg')}") from None


def write_calibration(calibration: PETCalibration, path: str | Path) -> Path:
    """Write ``calibration`` to ``path`` (its folder created) under a temporary name, then put it in place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".partial")
    temp.write_text(calibration.model_dump_json(indent=2) + "\n", encoding="utf-8")
    temp.replace(path)
    return path


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=SETTINGS_RTOL, abs_tol=1e-9)


def coverage_problems(
    calibration: PETCalibration, run: CalibratedSettings, now: datetime, max_age_days: float
) -> list[str]:
    """Why ``calibration`` does not cover a run with settings ``run`` at ``now`` (empty: it does)."""
    held, problems = calibration.settings, []
    if not _close(run.voxel_size_mm, held.voxel_size_mm):
        problems.append(f"voxel size {run.voxel_size_mm:g} mm (calibrated: {held.voxel_size_mm:g} mm)")
    if run.n_subset_updates != held.n_subset_updates:
        problems.append(
            f"{run.n_iterations} iterations × {run.n_subsets} subsets (calibrated: "
            f"{held.n_iterations} × {held.n_subsets})"
        )
    if run.use_tof != held.use_tof:
        problems.append(f"TOF {run.use_tof} (calibrated: {held.use_tof})")
    if not _close(run.post_filter_fwhm_mm, held.post_filter_fwhm_mm):
        problems.append(
            f"post-filter {run.post_filter_fwhm_mm:g} mm (calibrated: {held.post_filter_fwhm_mm:g} mm)"
        )
    if run.scatter != held.scatter:
        problems.append(f"scatter correction {run.scatter} (calibrated: {held.scatter})")
    if held.normalised is not None and run.normalised is not None and run.normalised != held.normalised:
        problems.append(f"normalisation applied {run.normalised} (calibrated: {held.normalised})")
    age_days = (now - calibration.scan_date).total_seconds() / 86400.0
    if age_days > max_age_days:
        problems.append(f"calibrated {age_days:.0f} days ago (more than {max_age_days:g})")
    elif age_days < -1.0:
        problems.append(f"calibration dated {-age_days:.0f} days in the future")
    return problems


def utc_now() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)
