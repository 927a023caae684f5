"""Cross-calibration scan → :class:`~plugins.pet.calibration_file.PETCalibration` (``reconstream calibrate pet``).

Inputs, as at a site: the list-mode scan of a uniform cylinder and the phantom's log sheet (a
:class:`DoseCalibratorReading`: the activity filled in, measured in the dose calibrator at the assay time, the
scan start, the phantom's inner dimensions).  The cylinder is reconstructed with the PET stages of a chain
(``pet_frame_buffer`` and ``pet_tof_osem`` with every setting of the chain, calibration off) and attenuation
corrected with the phantom's nominal geometry (water, μ = 0.096 /cm: a phantom template, as vendors ship for
their calibration phantoms; MR does not see a phantom's plastic).  The factor is the known concentration at
the scan start over the image mean in the central VOI (:mod:`recon.tof.cross_calibration`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import ismrmrd
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from plugins.pet.calibration_file import (
    CrossCalibrationMeasurement,
    PETCalibration,
    utc_now,
)
from plugins.pet.items import PETMuMap
from plugins.pet.tof_recon import PETTOFReconstructionConfig, image_grid_for
from plugins.runtime.chain import ChainSpec
from plugins.runtime.pipeline import run_chain
from plugins.runtime.plugin import ChainContext
from recon.common.device import resolve_device
from recon.tof.cross_calibration import calibration_factor, central_cylinder_voi, scatter_scale_term
from recon.tof.geometry import ImageGrid, scanner_by_name
from recon.tof.listmode import ListModeBatch, PETAcquisitionInfo

log = logging.getLogger(__name__)

#: Water at 511 keV, 1/cm (NIST).
MU_WATER_PER_CM = 0.096
#: Voxel size of the phantom template μ-map, mm.
TEMPLATE_VOXEL_MM = 2.0


class CylinderPhantom(BaseModel):
    """Inner dimensions of the calibration cylinder (axis along z), mm."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inner_radius_mm: float = Field(gt=0, le=400)
    inner_length_mm: float = Field(gt=0, le=1000)
    centre_xyz_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def volume_ml(self) -> float:
        """Inner volume, ml."""
        return math.pi * self.inner_radius_mm**2 * self.inner_length_mm / 1000.0


class DoseCalibratorReading(BaseModel):
    """The phantom's log sheet: what was filled in and when (JSON, written by hand or by the simulator)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field("pet_cross_calibration_reading", pattern="^pet_cross_calibration_reading$")
    isotope: str = Field(min_length=1)
    half_life_s: float = Field(gt=0)
    activity_bq: float = Field(
        gt=0, description="net activity filled into the phantom, at the assay time, Bq"
    )
    assay_time: datetime = Field(description="time of the dose-calibrator measurement (timezone-aware)")
    scan_start: datetime = Field(description="start of the calibration scan (timezone-aware)")
    phantom: CylinderPhantom

    def concentration_at_scan_start_bq_per_ml(self) -> float:
        """Activity / volume, decayed from the assay time to the scan start, Bq/ml."""
        elapsed_s = (self.scan_start - self.assay_time).total_seconds()
        return self.activity_bq * 2.0 ** (-elapsed_s / self.half_life_s) / self.phantom.volume_ml


def read_reading(path: str | Path) -> DoseCalibratorReading:
    """The reading in ``path``; a ``ValueError`` naming the file and the first bad field."""
    path = Path(path)
    try:
        return DoseCalibratorReading.model_validate_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"dose calibrator reading {path}: cannot read it ({exc.strerror})") from None
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "file"
        raise ValueError(f"dose calibrator reading {path}: {where}: {first.get('msg')}") from None


def template_mu_map(phantom: CylinderPhantom, axial_fov_mm: float) -> PETMuMap:
    """The phantom template μ-map: water in the nominal inner cylinder, on a grid covering it and the FOV."""
    half_xy = (
        phantom.inner_radius_mm + 10.0 + max(abs(phantom.centre_xyz_mm[0]), abs(phantom.centre_xyz_mm[1]))
    )
    half_z = max(phantom.inner_length_mm, axial_fov_mm) / 2.0 + 10.0 + abs(phantom.centre_xyz_mm[2])
    n_xy, n_z = (math.ceil(2 * h / TEMPLATE_VOXEL_MM) for h in (half_xy, half_z))
    grid = ImageGrid.centred((n_z, n_xy, n_xy), (TEMPLATE_VOXEL_MM,) * 3)
    z, y, x = grid.voxel_centres_mm()
    cx, cy, cz = phantom.centre_xyz_mm
    inside = (np.hypot(x - cx, y - cy) <= phantom.inner_radius_mm) & (
        np.abs(z - cz) <= phantom.inner_length_mm / 2.0
    )
    return PETMuMap(
        np.where(inside, MU_WATER_PER_CM, 0.0).astype(np.float32), grid, "calibration phantom template"
    )


def calibration_stages(chain: ChainSpec) -> ChainSpec:
    """The chain's ``pet_frame_buffer`` and its one ``pet_tof_osem`` stage, the latter with calibration off."""
    osem = [s for s in chain.stages if s.plugin == "pet_tof_osem"]
    if len(osem) != 1:
        raise ValueError(
            f"chain {chain.name!r} has {len(osem)} pet_tof_osem stages; calibration needs exactly one"
        )
    off = osem[0].config.model_copy(update={"calibration_file": "none", "calibration_factor": None})
    stages = tuple(
        dataclasses.replace(s, config=off) if s is osem[0] else s
        for s in chain.stages
        if s.plugin in ("pet_frame_buffer", "pet_tof_osem")
    )
    return dataclasses.replace(chain, stages=stages)


def osem_config(chain: ChainSpec) -> PETTOFReconstructionConfig:
    """The configuration of the chain's ``pet_tof_osem`` stage."""
    config = next(s.config for s in chain.stages if s.plugin == "pet_tof_osem")
    assert isinstance(config, PETTOFReconstructionConfig)
    return config


def cross_calibrate(
    batches: Iterable[ListModeBatch],
    info: PETAcquisitionInfo,
    reading: DoseCalibratorReading,
    chain: ChainSpec,
    dose_calibrator_uncertainty_relative: float,
    scan_file: str = "",
    device: str = "cpu",
    now: datetime | None = None,
) -> PETCalibration:
    """Reconstruct the cylinder scan with ``chain``'s PET settings and derive the scanner's calibration."""
    config = osem_config(chain)
    scanner = scanner_by_name(info.scanner)
    mu = template_mu_map(reading.phantom, scanner.axial_fov_mm)
    context = ChainContext(
        chain.name, device=resolve_device(device), extras={"pet_acquisition_info": info, "pet_mu_map": mu}
    )
    batch_list = list(batches)
    outputs = run_chain(calibration_stages(chain), batch_list, context)
    images = [o for o in outputs if isinstance(o, ismrmrd.Image)]
    if len(images) != 1:
        raise ValueError(f"the calibration scan gave {len(images)} PET images; it must be one frame")
    grid = image_grid_for(scanner, config.voxel_size_mm, config.transaxial_fov_mm)
    volume = np.asarray(images[0].data[0], dtype=np.float64)  # (z, y, x)
    p = reading.phantom
    voi = central_cylinder_voi(
        grid, p.inner_radius_mm, p.inner_length_mm, scanner.axial_fov_mm, centre_xyz_mm=p.centre_xyz_mm
    )
    known = reading.concentration_at_scan_start_bq_per_ml()
    factor, blocks, mean = calibration_factor(volume, voi, grid, known)
    scatter = _scatter_scale_term(images[0])
    statistical = math.hypot(blocks, scatter)
    log.info("cross-calibration: known %.1f Bq/ml, image %.1f Bq/ml, factor %.4f ± %.2f %% (stat.: blocks %.2f %%, "
             "scatter scale %.2f %%)", known, mean, factor, 100 * statistical, 100 * blocks, 100 * scatter)  # fmt: skip
    return PETCalibration(
        scanner=scanner.name,
        factor=factor,
        uncertainty_relative=math.hypot(statistical, dose_calibrator_uncertainty_relative),
        statistical_uncertainty_relative=statistical,
        dose_calibrator_uncertainty_relative=dose_calibrator_uncertainty_relative,
        scan_date=reading.scan_start,
        created=now or utc_now(),
        settings=config.calibrated_settings(scanner.name, info.crystal_efficiencies is not None),
        measurement=CrossCalibrationMeasurement(
            known_concentration_bq_per_ml=known,
            image_concentration_bq_per_ml=mean,
            voi_volume_ml=float(voi.sum() * grid.voxel_volume_ml),
            n_prompts=sum(b.n_prompts for b in batch_list),
            chain=chain.name,
            scan_file=scan_file,
            quality_warnings=_quality_warnings(images[0]),
        ),
    )


def _scatter_scale_term(image: ismrmrd.Image) -> float:
    """The calibration image's share of uncertainty from its scatter scale (:func:`scatter_scale_term`), from its
    ``ScatterFraction`` and ``ScatterScaleRelativeUncertainty`` metadata (both absent or 0 when no scatter was
    subtracted: the term is then 0)."""
    meta = ismrmrd.Meta.deserialize(image.attribute_string)
    return scatter_scale_term(
        float(meta.get("ScatterFraction", 0.0)), float(meta.get("ScatterScaleRelativeUncertainty", 0.0))
    )


def _quality_warnings(image: ismrmrd.Image) -> tuple[str, ...]:
    """The image's ``QualityWarning`` metadata lines."""
    values = ismrmrd.Meta.deserialize(image.attribute_string).get("QualityWarning")
    if values is None:
        return ()
    return (values,) if isinstance(values, str) else tuple(values)
