"""MR-based attenuation correction: a Dixon volume → the 511 keV μ-map for the PET reconstruction.

Consumes the :class:`~plugins.mr.dixon_items.DixonVolume` of ``dixon_recon`` and emits a
:class:`~plugins.pet.items.PETMuMap` (on the PET reconstruction grid of ``scanner``, in the shared patient /
scanner coordinates) and the μ-map as images.  With ``truncation_completion`` the μ-map waits for the
first :class:`~plugins.pet.items.PETFrame`: a quick non-attenuation-corrected reconstruction of it gives
the body outline, and body parts outside the MR field of view (the arms) are filled with soft tissue.
With ``estimate_lung_mu`` the lung class gets a patient-specific coefficient estimated from that frame's TOF
data (:mod:`recon.petmr_ac.lung_mu`) instead of the constant ``lung_mu_per_cm``.
PET frames that arrive before the μ-map is ready are held back and released after it, so the TOF
reconstruction downstream always receives the μ-map first.  Place between ``pet_frame_buffer`` and
``pet_tof_osem``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import Field, field_validator

from plugins.mr.dixon_images import volume_to_images
from plugins.mr.dixon_items import DixonVolume
from plugins.pet.items import PETFrame, PETMuMap
from plugins.pet.tof_recon import image_grid_for, info_from_time_stamps
from plugins.runtime.config import PluginConfig
from plugins.runtime.plugin import Plugin
from recon.petmr_ac.coil_templates import COIL_TEMPLATES, placed_coils
from recon.petmr_ac.grid import field_of_view_mask, grid_from_pet_image_grid, resample
from recon.petmr_ac.lung_mu import LungMuSettings, estimate_lung_mu
from recon.petmr_ac.mumap import HardwareComponent, MuCoefficients, default_table, hardware_mumap
from recon.petmr_ac.nac import nac_image
from recon.petmr_ac.pipeline import MuMapResult, MuMapSettings, lung_fraction, mumap_from_separation
from recon.petmr_ac.tissue import TISSUE_THRESHOLD, SegmentationSettings
from recon.petmr_ac.truncation import TruncationSettings
from recon.tof.geometry import ImageGrid, scanner_by_name, scanner_names
from recon.tof.listmode import PETAcquisitionInfo
from recon.tof.reconstruct import ReconstructionParameters


class PetMrMuMapConfig(PluginConfig):
    """Parameters of the MR-based μ-map (511 keV coefficients per class after Martinez-Möller 2009)."""

    scanner: str = Field("signa", description="PET scanner whose reconstruction grid the μ-map is made on")
    voxel_size_mm: float = Field(2.78, gt=0.5, le=10.0, description="isotropic μ-map voxel size, mm")
    transaxial_fov_mm: float | None = Field(
        None, gt=10.0, le=1000.0, description="μ-map width, mm (None: scanner)"
    )
    air_mu_per_cm: float = Field(0.0, ge=0.0, le=0.5, description="μ of air, 1/cm")
    lung_mu_per_cm: float = Field(0.018, ge=0.0, le=0.5, description="μ of lung, 1/cm")
    fat_mu_per_cm: float = Field(0.086, ge=0.0, le=0.5, description="μ of fat, 1/cm")
    soft_tissue_mu_per_cm: float = Field(0.100, ge=0.0, le=0.5, description="μ of soft tissue, 1/cm")
    bone_mu_per_cm: float = Field(
        0.172, ge=0.0, le=0.5, description="μ of bone (only with a bone input), 1/cm"
    )
    pet_fwhm_mm: float = Field(
        5.0, ge=0.0, le=20.0, description="boundary smoothing matched to PET resolution, mm"
    )
    signal_threshold_fraction: float = Field(
        TISSUE_THRESHOLD,
        gt=0.0,
        lt=1.0,
        description="tissue (vs lung/air) threshold, × the slice's 99th percentile signal (1.5 and 3 T)",
    )
    outline_threshold_fraction: float = Field(
        0.3, gt=0.0, lt=1.0, description="body outline threshold, × the slice's 99th percentile signal"
    )
    fat_occupancy_threshold: float = Field(
        0.5, gt=0.0, lt=1.0, description="fat class where |F| exceeds this × the pure-fat signal"
    )
    min_lung_volume_ml: float = Field(
        20.0, ge=0.0, le=5000.0, description="smaller signal voids are soft tissue, ml"
    )
    truncation_completion: bool = Field(
        True, description="complete arms outside the MR FOV from a NAC PET image"
    )
    nac_voxel_size_mm: float = Field(6.0, gt=1.0, le=20.0, description="voxel size of the NAC image, mm")
    nac_max_events: int = Field(2_000_000, ge=10_000, description="events used for the NAC image, events")
    nac_threshold_fraction: float = Field(0.15, gt=0.0, lt=1.0, description="NAC body threshold, × 99th pct")
    fov_margin_mm: float = Field(10.0, ge=0.0, le=100.0, description="MR FOV edge band not trusted, mm")
    estimate_lung_mu: bool = Field(
        False,
        description=(
            "estimate the lung coefficient from the first PET frame's TOF data (MLAA restricted to one scalar; "
            "3–5 extra OSEM reconstructions) instead of the constant lung_mu_per_cm, which is its start value"
        ),
    )
    lung_mu_iterations: int = Field(
        4, ge=1, le=50, description="OSEM iterations of each trial reconstruction of the lung estimate"
    )
    lung_mu_subsets: int = Field(
        8, ge=1, le=64, description="OSEM subsets of the lung-estimate reconstructions"
    )
    lung_mu_max_sensitivity_pairs: int = Field(
        5_000_000, ge=10_000, description="crystal pairs sampled for the lung estimate's all-LOR sums, pairs"
    )
    lung_mu_bounds_per_cm: tuple[float, float] = Field(
        (0.005, 0.06),
        description="range of the estimated lung coefficient, 1/cm (physiological, with margin; 0 ≤ low < high ≤ 0.5)",
    )
    table: bool = Field(True, description="add the patient-table hardware μ-map")
    table_top_y_mm: float = Field(
        116.0, ge=-300.0, le=300.0, description="table top, patient y (posterior +), mm"
    )
    coils: list[str] = Field(
        default_factory=lambda: ["anterior_array"],
        description="connected rigid coils whose hardware templates join the μ-map (known: anterior_array)",
    )
    coil_z_centre_mm: float = Field(
        0.0, ge=-1000.0, le=1000.0, description="patient z of the coils' centre (landmark), mm"
    )
    image_series_index: int = Field(20, ge=0, le=65535, description="ISMRMRD series of the μ-map images")

    @field_validator("scanner")
    @classmethod
    def _known_scanner(cls, value: str) -> str:
        if value not in scanner_names():
            raise ValueError(f"unknown scanner {value!r}; allowed: {', '.join(scanner_names())}")
        return value

    @field_validator("lung_mu_bounds_per_cm")
    @classmethod
    def _ordered_bounds(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0.0 <= low < high <= 0.5:
            raise ValueError(f"lung_mu_bounds_per_cm must satisfy 0 <= low < high <= 0.5 /cm, got {value}")
        return value

    @field_validator("coils")
    @classmethod
    def _known_coils(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in COIL_TEMPLATES]
        if unknown:
            raise ValueError(
                f"no hardware template for coils {unknown}; known: {', '.join(sorted(COIL_TEMPLATES))}"
            )
        return value


def hardware_components(cfg: PetMrMuMapConfig) -> list[HardwareComponent]:
    """The table (when enabled) and the connected coils, placed relative to the table top."""
    components: list[HardwareComponent] = [default_table(cfg.table_top_y_mm)] if cfg.table else []
    components.extend(placed_coils(cfg.coils, cfg.table_top_y_mm, cfg.coil_z_centre_mm))
    return components


def settings_of(cfg: PetMrMuMapConfig) -> MuMapSettings:
    """The recon-level settings of a plugin configuration."""
    return MuMapSettings(
        coefficients=MuCoefficients(
            cfg.air_mu_per_cm,
            cfg.lung_mu_per_cm,
            cfg.fat_mu_per_cm,
            cfg.soft_tissue_mu_per_cm,
            cfg.bone_mu_per_cm,
        ),
        segmentation=SegmentationSettings(
            signal_threshold_fraction=cfg.signal_threshold_fraction,
            outline_threshold_fraction=cfg.outline_threshold_fraction,
            fat_occupancy_threshold=cfg.fat_occupancy_threshold,
            min_lung_volume_ml=cfg.min_lung_volume_ml,
        ),
        truncation=TruncationSettings(
            nac_threshold_fraction=cfg.nac_threshold_fraction,
            fov_margin_mm=cfg.fov_margin_mm,
            fill_mu_per_cm=cfg.soft_tissue_mu_per_cm,
        ),
        pet_fwhm_mm=cfg.pet_fwhm_mm,
    )


class PetMrMuMap(Plugin):
    """Dixon volume → 511 keV μ-map on the PET grid (with truncation completion), handed to the TOF recon."""

    Config: ClassVar[type[PluginConfig]] = PetMrMuMapConfig
    accepts: ClassVar[tuple[type, ...]] = (DixonVolume, PETFrame, PETAcquisitionInfo)

    def __init__(self, config: PetMrMuMapConfig, context: Any) -> None:  # type: ignore[override]
        super().__init__(config, context)
        self.cfg = config
        self.grid: ImageGrid = image_grid_for(
            scanner_by_name(config.scanner), config.voxel_size_mm, config.transaxial_fov_mm
        )
        self._volume: DixonVolume | None = None
        self._held: list[Any] = []
        self._info: PETAcquisitionInfo | None = (
            context.extras.get("pet_acquisition_info") if context.extras else None
        )
        self._done = False
        self._lung_source = f"constant {config.lung_mu_per_cm:g}"
        components = hardware_components(config)  # depends only on the grid: computed once
        self._hardware = (
            hardware_mumap(grid_from_pet_image_grid(self.grid), components) if components else None
        )

    def process(self, item: Any) -> Iterable[Any]:
        if isinstance(item, PETAcquisitionInfo):
            self._info = item
            return (item,)
        if isinstance(item, DixonVolume):
            self._volume = item
            held_frames = [h for h in self._held if isinstance(h, PETFrame)]
            if not self.cfg.truncation_completion or held_frames:
                return self._emit(None)
            return ()
        if self._done:
            return (item,)
        if self._volume is None:
            self._held.append(item)
            return ()
        return self._emit(item)

    def _emit(self, frame: PETFrame | None) -> Iterator[Any]:
        """μ-map (NAC outline from ``frame`` or the first held frame, when completion is on), then held items."""
        assert self._volume is not None
        source = frame or next((h for h in self._held if isinstance(h, PETFrame)), None)
        nac = self._nac(source) if source is not None and self.cfg.truncation_completion else None
        result = self._mumap(self._volume, nac)
        self._lung_source = f"constant {self.cfg.lung_mu_per_cm:g}"
        if source is not None and self.cfg.estimate_lung_mu:
            result = self._with_estimated_lung(result, self._volume, nac, source)
        self._done = True
        yield from self._outputs(result)
        yield from self._held
        self._held = []
        if frame is not None:
            yield frame

    def _with_estimated_lung(
        self, result: MuMapResult, volume: DixonVolume, nac: np.ndarray | None, frame: PETFrame
    ) -> MuMapResult:
        """``result`` with the lung coefficient c estimated from ``frame``: μ = μ_rest + c·L, with L the
        lung fraction of the μ-map (:func:`recon.petmr_ac.pipeline.lung_fraction`)."""
        c0 = self.cfg.lung_mu_per_cm
        fraction = lung_fraction(
            result, volume.grid, grid_from_pet_image_grid(self.grid), settings_of(self.cfg), self._hardware
        )
        mu_rest = result.mu_per_cm - c0 * fraction
        low, high = self.cfg.lung_mu_bounds_per_cm
        settings = LungMuSettings(
            initial_lung_mu_per_cm=min(max(c0, low), high),
            min_lung_mu_per_cm=low,
            max_lung_mu_per_cm=high,
            n_iterations=self.cfg.lung_mu_iterations,
        )
        params = ReconstructionParameters(
            n_subsets=self.cfg.lung_mu_subsets,
            max_sensitivity_pairs=self.cfg.lung_mu_max_sensitivity_pairs,
            scatter=False,  # the tail-fitted scatter is not identifiable on large patients (see recon.tof.scatter)
        )
        estimate = estimate_lung_mu(
            frame.events,
            self._frame_info(frame),
            scanner_by_name(frame.events.scanner),
            self.grid,
            torch.from_numpy(np.ascontiguousarray(mu_rest)),
            torch.from_numpy(np.ascontiguousarray(fraction)),
            params,
            settings,
            device=self.context.device,
        )
        c = estimate.lung_mu_per_cm
        self._lung_source = (
            f"TOF estimate {c:.4f} (trials {', '.join(f'{t:.4f}' for t in estimate.trials_per_cm)})"
        )
        self.log.info("lung coefficient from the TOF data: %.4f /cm (start %.4f)", c, c0)
        mu = (mu_rest + c * fraction).astype(np.float32)
        return replace(result, mu_per_cm=mu, metadata={**result.metadata, "lung_mu_per_cm": c})

    def _frame_info(self, frame: PETFrame) -> PETAcquisitionInfo:
        return self._info or info_from_time_stamps(frame)

    def _nac(self, frame: PETFrame) -> np.ndarray:
        scanner = scanner_by_name(frame.events.scanner)
        coarse = image_grid_for(scanner, self.cfg.nac_voxel_size_mm, self.cfg.transaxial_fov_mm)
        image = nac_image(
            frame.events,
            self._frame_info(frame),
            scanner,
            coarse,
            max_events=self.cfg.nac_max_events,
            device=self.context.device,
        )
        return resample(image, grid_from_pet_image_grid(coarse), grid_from_pet_image_grid(self.grid), order=1)

    def _mumap(self, volume: DixonVolume, nac: np.ndarray | None) -> MuMapResult:
        result = mumap_from_separation(
            volume.result,
            volume.grid,
            grid_from_pet_image_grid(self.grid),
            settings_of(self.cfg),
            nac_pet=nac,
            hardware_mu_per_cm=self._hardware,
        )
        self.log.info(
            "μ-map: bone %s, %d voxels completed from NAC PET",
            result.metadata["bone_class"],
            result.metadata["n_truncation_completed_voxels"],
        )
        return result

    def _coverage(self) -> tuple[dict[str, str], list[str]]:
        """Axial MR coverage of the PET field of view: metadata and, when short, a warning (see the module)."""
        assert self._volume is not None
        pet = grid_from_pet_image_grid(self.grid)
        covered = field_of_view_mask(self._volume.grid, pet).any(axis=(1, 2))
        z = self.grid.axis_centres_mm(0)
        half = self.grid.voxel_size_mm[0] / 2.0
        fov = f"{z[0] - half:.0f}..{z[-1] + half:.0f}"
        if not covered.any():
            mr = "none"
        else:
            mr = f"{z[covered][0] - half:.0f}..{z[covered][-1] + half:.0f}"
        meta = {"MRAxialCoverage_mm": mr, "PETAxialFOV_mm": fov}
        if covered.all():
            return meta, []
        outside = (
            "filled with soft tissue "
            f"{self.cfg.soft_tissue_mu_per_cm:g} /cm inside the NAC PET outline (no lungs, fat or bone; the "
            "outline of a noisy NAC image at low counts): PET values there are biased"
            if self.cfg.truncation_completion
            else "without attenuation (truncation_completion off): PET values there read far too low"
        )
        warning = (
            f"MR covers z {mr} mm of the PET axial FOV {fov} mm ({covered.mean():.0%} of its slices); "
            f"outside it the μ-map is {outside}; quantify only within z {mr} mm"
        )
        return meta, [warning]

    def _outputs(self, result: MuMapResult) -> Iterator[Any]:
        coverage, warnings = self._coverage()
        for warning in warnings:
            self.log.warning("%s", warning)
        meta = {
            "Unit": "1/cm",
            "Role": "mu_map_511keV",
            "BoneClass": str(result.metadata["bone_class"]),
            "TruncationCompletedVoxels": str(result.metadata["n_truncation_completed_voxels"]),
            "HardwareTemplates": ",".join(c.name for c in hardware_components(self.cfg)) or "none",
            "LungMu": self._lung_source,
            **coverage,
        }
        if warnings:
            meta["QualityWarning"] = warnings[0]
        uid = self._volume.measurement_uid if self._volume else 0
        yield from volume_to_images(
            result.mu_per_cm, grid_from_pet_image_grid(self.grid), self.cfg.image_series_index, meta, uid
        )
        yield PETMuMap(
            mu_per_cm=result.mu_per_cm.astype(np.float32),
            grid=self.grid,
            source=f"MR Dixon (z {coverage['MRAxialCoverage_mm']} mm)",
            warnings=tuple(warnings),
        )

    def finish(self) -> Iterable[Any]:
        if self._done:
            return
        if self._volume is not None:
            yield from self._emit(None)
            return
        if self._held:
            self.log.warning(
                "no Dixon volume reached the μ-map stage: PET frames pass without attenuation map"
            )
        yield from self._held
        self._held = []
