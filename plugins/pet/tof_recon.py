"""TOF list-mode OSEM of each PET frame → an ``ismrmrd.Image`` in Bq/ml (or SUV) with its geometry.

Inputs (in stream order): ``PETAcquisitionInfo`` (frame timing, dose, weight, crystal efficiencies of the
calibration scan, singles rates), optionally a :class:`~plugins.pet.items.PETMuMap`, then
:class:`~plugins.pet.items.PETFrame` items (from ``pet_frame_buffer``).  Both may instead come through
``context.extras["pet_acquisition_info"]`` / ``["pet_mu_map"]``.  Without acquisition info the frame
duration is taken from the event time stamps and no SUV is possible; without a μ-map there is no
attenuation or scatter correction (a warning says so).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from plugins.pet.calibration_file import CalibratedSettings, utc_now
from plugins.pet.calibration_use import AppliedCalibration, resolve_calibration
from plugins.pet.corrections import correction_metadata, correction_states
from plugins.pet.items import PETFrame, PETMuMap
from plugins.pet.pet_images import axial_coverage_warning, image_grid_for, info_from_time_stamps, volume_image
from plugins.pet.resample import resample_to_grid
from plugins.runtime.config import PluginConfig
from plugins.runtime.executor import UnitJob
from plugins.runtime.items import Report
from plugins.runtime.plugin import Plugin
from recon.tof.geometry import ImageGrid, ScannerGeometry, scanner_by_name
from recon.tof.listmode import PETAcquisitionInfo, validate_batch_for_scanner
from recon.tof.quantitation import suv_scale_factor
from recon.tof.reconstruct import ReconstructionParameters, ReconstructionResult, reconstruct_frame
from recon.tof.scatter import RANDOMS_SYSTEMATIC, TailFit, axially_extended


class PETTOFReconstructionConfig(PluginConfig):
    n_iterations: int = Field(3, ge=1, le=100, description="OSEM iterations (full passes over the events)")
    n_subsets: int = Field(17, ge=1, le=128, description="OSEM subsets per iteration")
    use_tof: bool = Field(True, description="use the TOF bins (false = non-TOF reconstruction)")
    voxel_size_mm: float = Field(2.78, gt=0.5, le=10.0, description="isotropic voxel size of the image, mm")
    transaxial_fov_mm: float | None = Field(
        None, gt=10.0, le=1000.0, description="transaxial image width, mm (default: 1.9 × ring radius)"
    )
    post_filter_fwhm_mm: float = Field(
        5.0, ge=0.0, le=30.0, description="Gaussian post-filter FWHM, mm (0 = none)"
    )
    chunk_size: int = Field(
        1 << 20, ge=1024, le=1 << 27, description="events per projector call (memory bound), events"
    )
    kernel: Literal["auto", "torch", "numba", "cuda"] = Field("auto", description="projector kernel")
    max_sensitivity_pairs: int = Field(
        1_000_000,
        ge=10_000,
        description="crystal pairs sampled for the sensitivity's attenuation/normalisation ratio and the "
        "scatter tail sums (all pairs when there are fewer), pairs",
    )
    scatter: bool = Field(
        True, description="estimate scatter: single scatter simulation scaled on the tails (needs a μ-map)"
    )
    scatter_tail_margin_mm: float = Field(
        8.0, ge=0.0, le=100.0, description="margin around the μ-map support, mm"
    )
    scatter_tail_width_mm: float = Field(
        20.0,
        ge=0.0,
        le=500.0,
        description="width of the band of tail LORs beyond the margin (0: every LOR beyond it), mm",
    )
    scatter_passes: int = Field(
        2, ge=1, le=5, description="scatter estimates, each from an image corrected with the previous one"
    )
    scatter_axial_extension_mm: float = Field(
        100.0,
        ge=0.0,
        le=1000.0,
        description="the scatter simulation reaches this far beyond each end of the axial FOV where the μ-map does, mm",
    )
    calibration_factor: float | None = Field(
        None,
        gt=0.0,
        le=100.0,
        description="cross-calibration factor given by hand (overrides calibration_file; default: from the file)",
    )
    calibration_file: str = Field(
        "auto",
        min_length=1,
        description="the scanner's cross-calibration (reconstream calibrate pet): a file, 'auto' "
        "(<calibration dir>/pet_<scanner>.json when present, $RECONSTREAM_CALIBRATION_DIR) or 'none'",
    )
    calibration_max_age_days: float = Field(
        92.0, gt=0.0, le=3650.0, description="older calibrations are flagged as not covering the run, days"
    )
    scatter_max_fraction: float = Field(
        0.6,
        ge=0.05,
        le=0.95,
        description="largest scatter fraction of the frame's trues + scatter the tail-fitted scale may imply "
        "(3D whole-body PET: 0.3–0.5, NEMA NU 2 Signa 0.44, mMR 0.38; large patients ≈ 0.6); above it the "
        "scale is bounded and the image flagged",
    )
    min_subset_prompts_per_voxel: float = Field(
        0.05,
        ge=0.0,
        le=10.0,
        description="fewer subsets when one would hold fewer prompts than this × image voxels (low counts: "
        "a voxel no event of a subset passes is zeroed for good); 0 = always n_subsets",
    )
    mumap_file: str | None = Field(
        None,
        description="attenuation map from an image file (ISMRMRD images.h5 with a μ-map series, NIfTI), "
        "resampled to the PET grid; used when no μ-map arrives in the stream",
    )
    mumap_scale: float = Field(
        1.0, gt=0.0, le=10.0, description="factor bringing mumap_file's values to 1/cm (1e-4 for 10⁻⁴/cm)"
    )
    output: Literal["bq_per_ml", "suv"] = Field("bq_per_ml", description="pixel unit of the emitted image")
    image_series_index: int = Field(
        100, ge=0, le=65535, description="ISMRMRD image_series_index of the output"
    )
    seed: int = Field(0, ge=0, description="seed of the sensitivity LOR sampling")

    @field_validator("mumap_file")
    @classmethod
    def _existing_file(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"no such μ-map file {value!r}")
        return value

    @field_validator("calibration_file")
    @classmethod
    def _existing_calibration(cls, value: str) -> str:
        if value not in ("auto", "none") and not Path(value).is_file():
            raise ValueError(f"no such calibration file {value!r} (or 'auto', 'none')")
        return value

    def calibrated_settings(self, scanner: str, normalised: bool | None = None) -> CalibratedSettings:
        """The settings a calibration must have been measured with to cover this stage on ``scanner``
        (``normalised``: the data come with crystal efficiencies)."""
        return CalibratedSettings(
            scanner=scanner,
            voxel_size_mm=self.voxel_size_mm,
            n_iterations=self.n_iterations,
            n_subsets=self.n_subsets,
            use_tof=self.use_tof,
            post_filter_fwhm_mm=self.post_filter_fwhm_mm,
            scatter=self.scatter,
            normalised=normalised,
        )


def tail_fit_status(fit: TailFit) -> str:
    """``ok``, ``bounded`` (scale limited by the scatter-fraction bound) or ``not identifiable``."""
    if fit.bounded:
        return "bounded"
    return "ok" if fit.identifiable else "not identifiable"


class PETTOFReconstruction(Plugin):
    """TOF list-mode OSEM of each PET frame with randoms, scatter, attenuation and normalisation corrections."""

    Config: ClassVar[type[PluginConfig]] = PETTOFReconstructionConfig
    accepts: ClassVar[tuple[type, ...]] = (PETFrame, PETAcquisitionInfo, PETMuMap)
    unit_kind = "PET frame"

    def __init__(self, config: PluginConfig, context: Any) -> None:
        super().__init__(config, context)
        self._info: PETAcquisitionInfo | None = context.extras.get("pet_acquisition_info")
        self._mu: PETMuMap | None = context.extras.get("pet_mu_map")
        self._coverage = ""
        c = self.config
        assert isinstance(c, PETTOFReconstructionConfig)
        if self._mu is None and c.mumap_file is not None:
            from plugins.io.mumap_files import read_mumap

            self._mu = read_mumap(c.mumap_file, c.mumap_scale)

    def process(self, item: Any) -> Iterable[Any]:
        if isinstance(item, PETAcquisitionInfo):
            self._info = item
            return ()
        if isinstance(item, PETMuMap):
            self._mu = item
            return ()
        return self._frame_job(item)

    def _parameters(self, chunk_size: int, calibration_factor: float) -> ReconstructionParameters:
        c = self.config
        assert isinstance(c, PETTOFReconstructionConfig)
        return ReconstructionParameters(
            n_iterations=c.n_iterations,
            n_subsets=c.n_subsets,
            use_tof=c.use_tof,
            post_filter_fwhm_mm=c.post_filter_fwhm_mm,
            chunk_size=chunk_size,
            kernel=c.kernel,
            max_sensitivity_pairs=c.max_sensitivity_pairs,
            scatter=c.scatter,
            scatter_tail_margin_mm=c.scatter_tail_margin_mm,
            scatter_tail_width_mm=c.scatter_tail_width_mm,
            scatter_passes=c.scatter_passes,
            scatter_axial_extension_mm=c.scatter_axial_extension_mm,
            scatter_max_fraction=c.scatter_max_fraction,
            min_subset_prompts_per_voxel=c.min_subset_prompts_per_voxel,
            calibration_factor=calibration_factor,
            seed=c.seed,
        )

    def _frame_info(self, frame: PETFrame) -> PETAcquisitionInfo:
        if self._info is not None:
            return self._info
        info = info_from_time_stamps(frame)
        self.log.warning(
            "no PETAcquisitionInfo: frame duration %.3f s from the time stamps, no dose (no SUV), "
            "no crystal efficiencies, randoms from the delayeds",
            info.frame_duration_s,
        )
        return info

    def _run(
        self,
        frame: PETFrame,
        scanner: ScannerGeometry,
        grid: ImageGrid,
        info: PETAcquisitionInfo,
        mu: torch.Tensor | None,
        calibration_factor: float,
        scatter_mu: torch.Tensor | None,
    ) -> ReconstructionResult:
        """Reconstruct; on GPU memory exhaustion retry with a 4× smaller chunk, then on the CPU."""
        c = self.config
        assert isinstance(c, PETTOFReconstructionConfig)
        chunk, device = c.chunk_size, self.context.device
        while True:
            try:
                parameters = self._parameters(chunk, calibration_factor)
                return reconstruct_frame(
                    frame.events, info, scanner, grid, mu, parameters, device, scatter_mu
                )
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                if chunk > 4096:
                    chunk //= 4
                    self.log.warning("GPU out of memory: retrying with chunk_size=%d", chunk)
                elif device.type == "cuda":
                    self.log.warning("GPU out of memory even with small chunks: falling back to the CPU")
                    device = torch.device("cpu")
                else:
                    raise

    def _frame_job(self, frame: PETFrame) -> tuple[UnitJob]:
        """One frame as a unit for the chain's executor: everything the frame needs that came from earlier
        items or from this machine's files (acquisition info, μ-map, the calibration) travels with it."""
        c = self.config
        assert isinstance(c, PETTOFReconstructionConfig)
        scanner = self.context.extras.get("pet_scanner") or scanner_by_name(frame.events.scanner)
        validate_batch_for_scanner(frame.events, scanner.n_crystals, scanner.n_tof_bins)
        info = self._frame_info(frame)
        calibration = resolve_calibration(
            c.calibration_factor,
            c.calibration_file,
            c.calibrated_settings(scanner.name, info.crystal_efficiencies is not None),
            utc_now(),
            c.calibration_max_age_days,
        )
        args = (frame, info, self._mu, calibration)
        return (UnitJob(self.unit_kind or "", frame.frame_index, "frame_unit", args),)

    def frame_unit(
        self,
        frame: PETFrame,
        info: PETAcquisitionInfo,
        mu_map: PETMuMap | None,
        calibration: AppliedCalibration,
    ) -> Iterator[Any]:
        """Reconstruct one frame (its image, then its report) wherever the executor runs it; the μ-map and
        acquisition info are the unit's own, whatever an earlier frame left in this (possibly remote) copy."""
        c = self.config
        assert isinstance(c, PETTOFReconstructionConfig)
        self._mu, self._info, self._coverage = mu_map, info, ""
        scanner = self.context.extras.get("pet_scanner") or scanner_by_name(frame.events.scanner)
        grid = image_grid_for(scanner, c.voxel_size_mm, c.transaxial_fov_mm)
        mu = scatter_mu = None
        if self._mu is None:
            self.log.warning(
                "no μ-map: no attenuation or scatter correction (mumap_file or a μ-map input adds it)"
            )
        else:
            mu = torch.from_numpy(resample_to_grid(self._mu.mu_per_cm, self._mu.grid, grid))
            extended, _ = axially_extended(grid, c.scatter_axial_extension_mm)
            scatter_mu = torch.from_numpy(resample_to_grid(self._mu.mu_per_cm, self._mu.grid, extended))
            self._coverage = axial_coverage_warning(self._mu.grid, grid)
        started = time.perf_counter()
        result = self._run(frame, scanner, grid, info, mu, calibration.factor, scatter_mu)
        elapsed_s = time.perf_counter() - started
        yield from self._outputs(frame, grid, info, result, elapsed_s, calibration)

    def _quality_warnings(self, fit: TailFit | None) -> list[str]:
        """One line per reason not to trust the image's values (also in the run's summary)."""
        c = self.config
        assert isinstance(c, PETTOFReconstructionConfig)
        if self._mu is None:
            return [
                "no attenuation correction (no μ-map): activity values are not quantitative (a torso reads "
                "≈ 10× low); give a μ-map input or mumap_file"
            ]
        warnings = list(self._mu.warnings) + ([self._coverage] if self._coverage else [])
        if fit is None:
            return warnings
        if fit.bounded:
            warnings.append(
                f"scatter tail fit asked for scale {fit.fitted_scale:.3g} (tails: {fit.n_prompts_tail} prompts, "
                f"{fit.randoms_tail:.0f} randoms, {fit.trues_tail:.0f} trues, net {fit.net_scatter_tail:.0f}), "
                f"more than the frame can hold (scatter fraction above {c.scatter_max_fraction:g}, "
                f"scatter_max_fraction, at scale {fit.max_scale:.3g}): no scatter subtracted, activity values high "
                f"by the scatter fraction"
            )
        elif not fit.identifiable:
            warnings.append(
                f"scatter tail fit not identifiable ({fit.n_prompts_tail} tail prompts, {fit.randoms_tail:.0f} "
                f"expected randoms, {fit.trues_tail:.0f} trues: net {fit.net_scatter_tail:.0f}, below 3 sigma of "
                f"the prompts and the randoms' {100 * RANDOMS_SYSTEMATIC:g} % systematic error): no scatter subtracted, "
                f"activity values high by the scatter fraction"
            )
        return warnings

    def _correction_metadata(
        self, frame: PETFrame, info: PETAcquisitionInfo, fit: TailFit | None
    ) -> tuple[dict[str, str], dict[str, list[str]]]:
        """``Correction*``, ``Quantitative`` and ``CorrectedImage`` metadata (:mod:`plugins.pet.corrections`)."""
        c = self.config
        assert isinstance(c, PETTOFReconstructionConfig)
        states = correction_states(
            mu_source=None if self._mu is None else (self._mu.source or "μ-map in the stream"),
            scatter_requested=c.scatter,
            tail_fit=fit,
            fit_status="" if fit is None else tail_fit_status(fit),
            n_delayeds=frame.events.n_delayeds,
            has_singles=info.singles_rate_per_crystal_cps is not None,
            has_crystal_efficiencies=info.crystal_efficiencies is not None,
            isotope=info.isotope,
        )
        return correction_metadata(states)

    def _outputs(
        self,
        frame: PETFrame,
        grid: ImageGrid,
        info: PETAcquisitionInfo,
        result: ReconstructionResult,
        elapsed_s: float,
        calibration: AppliedCalibration,
    ) -> Iterator[Any]:
        c = self.config
        assert isinstance(c, PETTOFReconstructionConfig)
        bq = result.activity_bq_per_ml.cpu().numpy()
        suv_factor = suv_scale_factor(info) if result.suv is not None else None
        if c.output == "suv" and result.suv is None:
            raise ValueError("output='suv' needs the injected dose and weight (PETAcquisitionInfo)")
        volume = result.suv.cpu().numpy() if c.output == "suv" and result.suv is not None else bq
        meta = {
            "Modality": "PT",
            "Units": "SUVbw" if c.output == "suv" else "Bq/ml",
            "DecayCorrection": "START",
            "FrameIndex": str(frame.frame_index),
            "FrameStart_s": f"{info.frame_start_s:.6f}",
            "FrameDuration_s": f"{info.frame_duration_s:.6f}",
            "Isotope": info.isotope,
            "Scanner": frame.events.scanner,
            "Iterations": str(c.n_iterations),
            "Subsets": str(result.n_subsets or c.n_subsets),
            "TOF": str(c.use_tof),
            "PostFilterFWHM_mm": f"{c.post_filter_fwhm_mm:g}",
        }
        if suv_factor is not None:
            meta["SUVbwScaleFactor"] = f"{suv_factor:.9g}"
        fit = result.tail_fit
        meta["AttenuationCorrection"] = (
            "none" if self._mu is None else (self._mu.source or "μ-map in the stream")
        )
        if fit is not None:
            meta["ScatterScale"] = f"{fit.scale:.6g}"
            meta["ScatterTailFit"] = tail_fit_status(fit)
            if fit.scatter_fraction is not None:
                meta["ScatterFraction"] = f"{fit.scatter_fraction:.3f}"
            if fit.scale > 0:
                meta["ScatterScaleRelativeUncertainty"] = f"{fit.scale_relative_uncertainty:.4f}"
        corrections, correction_lists = self._correction_metadata(frame, info, fit)
        meta.update(corrections)
        meta.update(calibration.meta)
        warnings = self._quality_warnings(fit) + list(calibration.warnings)
        for warning in warnings:
            self.log.warning("frame %d: %s", frame.frame_index, warning)
        meta_lists = {**correction_lists, **({"QualityWarning": warnings} if warnings else {})}
        yield volume_image(volume, grid, meta, c.image_series_index, frame.frame_index, meta_lists)
        summary = {
            "frame_index": frame.frame_index,
            "n_prompts": result.n_prompts,
            "n_delayeds": result.n_delayeds,
            "n_subsets": result.n_subsets,
            "reconstruction_s": elapsed_s,
            "sensitivity_s": result.sensitivity_s,
            "grid": {"shape_zyx": grid.shape_zyx, "voxel_size_mm": grid.voxel_size_mm},
            "scatter_tail_fit": None
            if fit is None
            else {
                **asdict(fit),
                "net_scatter_tail": fit.net_scatter_tail,
                "identifiable": fit.identifiable,
                "bounded": fit.bounded,
            },
            "attenuation_correction": meta["AttenuationCorrection"],
            "corrections": {k: v for k, v in meta.items() if k.startswith("Correction")},
            "corrected_image": correction_lists["CorrectedImage"],
            "quantitative": meta["Quantitative"] == "true",
            "calibration": calibration.meta,
            "quality_warnings": warnings,
            "mean_bq_per_ml": float(bq.mean()),
            "total_activity_bq": float(bq.sum(dtype=np.float64) * grid.voxel_volume_ml),
        }
        yield Report(
            f"pet_frame_{frame.frame_index:03d}.json",
            json.dumps(summary, indent=2).encode(),
            "application/json",
            "pet_tof_osem",
        )
