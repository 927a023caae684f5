"""Dixon echoes → μ-map on the PET grid, in one call (the core of the PET-MR attenuation-correction chain).

Steps: water/fat separation (2-point for two echoes, multi-echo with a B0 estimate for three or more),
swap detection and correction (multi-echo), tissue classes, μ per class on the MR grid, resampling to the
PET grid through the patient coordinates of both grids, truncation completion from the NAC PET (when
given), smoothing to the PET resolution, and the hardware μ-map (when given).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recon.petmr_ac.dixon_common import DixonResult
from recon.petmr_ac.dixon_multi_echo import separate_multi_echo
from recon.petmr_ac.dixon_two_point import separate_two_point
from recon.petmr_ac.fat_model import HAMILTON_LIVER_FAT, FatSpectrum, Floats
from recon.petmr_ac.grid import VoxelGrid, resample
from recon.petmr_ac.mumap import MuCoefficients, labels_to_mu, smooth_to_resolution
from recon.petmr_ac.tissue import SegmentationSettings, TissueClass, TissueSegmentation, segment_tissues
from recon.petmr_ac.truncation import (
    TruncationSettings,
    complete_truncation,
    nac_body_mask,
    trusted_mr_region,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MuMapSettings:
    """Everything a physicist tunes in the Dixon → μ-map step.

    Attributes:
        coefficients: μ per tissue class at 511 keV (1/cm).
        segmentation: tissue-class thresholds.
        truncation: truncation-completion parameters (used when a NAC PET image is given).
        pet_fwhm_mm: boundary smoothing of the μ-map on the PET grid, matched to the PET resolution (mm, ≥ 0).
        spectrum: fat spectrum model.
        correct_swaps: run swap detection/correction after multi-echo separation.
        field_map_downsample: in-plane block size of the multi-echo field-map estimate (≥ 1; 0 = about 7 mm).
    """

    coefficients: MuCoefficients = field(default_factory=MuCoefficients)
    segmentation: SegmentationSettings = field(default_factory=SegmentationSettings)
    truncation: TruncationSettings = field(default_factory=TruncationSettings)
    pet_fwhm_mm: float = 5.0
    spectrum: FatSpectrum = HAMILTON_LIVER_FAT
    correct_swaps: bool = True
    field_map_downsample: int = 0

    def __post_init__(self) -> None:
        if self.pet_fwhm_mm < 0 or self.field_map_downsample < 0:
            raise ValueError("pet_fwhm_mm and field_map_downsample must be ≥ 0")


@dataclass(frozen=True)
class MuMapResult:
    """Outcome of :func:`mumap_from_dixon`.

    Attributes:
        mu_per_cm: μ-map on the PET grid, shape PET (z, y, x), float32 (1/cm).
        dixon: the water/fat separation on the MR grid.
        segmentation: tissue classes on the MR grid.
        completed_mask: PET voxels filled by truncation completion, shape PET (z, y, x), bool.
        metadata: facts for the output image header (bone source, coefficients, swap count, ...).
    """

    mu_per_cm: np.ndarray
    dixon: DixonResult
    segmentation: TissueSegmentation
    completed_mask: np.ndarray
    metadata: dict[str, Any]

    def __post_init__(self) -> None:
        if self.mu_per_cm.shape != self.completed_mask.shape:
            raise ValueError("mu_per_cm and completed_mask must share the PET grid shape")


def separate(
    echoes: np.ndarray,
    echo_times_s: Floats,
    larmor_hz: float,
    voxel_size_mm: Sequence[float],
    settings: MuMapSettings,
) -> DixonResult:
    """Water/fat separation: 2-point for two echoes, multi-echo (with swap correction) for three or more."""
    if len(echo_times_s) == 2:
        return separate_two_point(echoes, echo_times_s, larmor_hz, voxel_size_mm, settings.spectrum)
    return separate_multi_echo(
        echoes,
        echo_times_s,
        larmor_hz,
        voxel_size_mm,
        settings.spectrum,
        downsample_factor=settings.field_map_downsample,
        correct_swaps=settings.correct_swaps,
    )


def mumap_from_dixon(
    echoes: np.ndarray,
    echo_times_s: Floats,
    larmor_hz: float,
    mr_grid: VoxelGrid,
    pet_grid: VoxelGrid,
    settings: MuMapSettings | None = None,
    bone_mask: np.ndarray | None = None,
    bone_source: str = "atlas",
    nac_pet: np.ndarray | None = None,
    hardware_mu_per_cm: np.ndarray | None = None,
) -> MuMapResult:
    """The μ-map on the PET grid from coil-combined Dixon echoes (N, z, y, x) on ``mr_grid``.

    ``bone_mask`` (MR grid) adds a bone class; ``nac_pet`` (PET grid) enables truncation completion;
    ``hardware_mu_per_cm`` (PET grid, from :func:`recon.petmr_ac.mumap.hardware_mumap`) is added unsmoothed.
    """
    settings = settings or MuMapSettings()
    if tuple(echoes.shape[1:]) != mr_grid.shape_zyx:
        raise ValueError(f"echoes {echoes.shape} do not match the MR grid {mr_grid.shape_zyx}")
    dixon = separate(echoes, echo_times_s, larmor_hz, mr_grid.voxel_size_mm, settings)
    result = mumap_from_separation(
        dixon,
        mr_grid,
        pet_grid,
        settings,
        bone_mask,
        bone_source,
        nac_pet,
        hardware_mu_per_cm,
    )
    result.metadata["n_echoes"] = len(echo_times_s)
    result.metadata["dixon_method"] = "two-point" if len(echo_times_s) == 2 else "multi-echo"
    return result


def mumap_from_separation(
    dixon: DixonResult,
    mr_grid: VoxelGrid,
    pet_grid: VoxelGrid,
    settings: MuMapSettings | None = None,
    bone_mask: np.ndarray | None = None,
    bone_source: str = "atlas",
    nac_pet: np.ndarray | None = None,
    hardware_mu_per_cm: np.ndarray | None = None,
) -> MuMapResult:
    """The μ-map on the PET grid from separated water and fat on ``mr_grid`` (see :func:`mumap_from_dixon`)."""
    settings = settings or MuMapSettings()
    seg = segment_tissues(
        dixon.water,
        dixon.fat,
        mr_grid.voxel_size_mm,
        settings.segmentation,
        bone_mask,
        bone_source,
    )
    mu = resample(labels_to_mu(seg.labels, settings.coefficients), mr_grid, pet_grid, order=1)
    completed = np.zeros(pet_grid.shape_zyx, dtype=bool)
    if nac_pet is not None:
        trusted = trusted_mr_region(mr_grid, pet_grid, settings.truncation.fov_margin_mm)
        body = nac_body_mask(nac_pet, pet_grid.voxel_size_mm, settings.truncation, trusted)
        mu, completed = complete_truncation(mu, body, trusted, settings.truncation.fill_mu_per_cm)
    mu = smooth_to_resolution(mu, pet_grid.voxel_size_mm, settings.pet_fwhm_mm)
    if hardware_mu_per_cm is not None:
        mu = np.maximum(mu, hardware_mu_per_cm.astype(np.float32))
    metadata = {
        "bone_source": seg.bone_source,
        "bone_class": "present"
        if seg.bone_source != "none"
        else "absent: no atlas or UTE input, bone scored as soft tissue",
        "n_swap_corrected_voxels": dixon.n_swap_corrected_voxels,
        "n_truncation_completed_voxels": int(completed.sum()),
        "pet_fwhm_mm": settings.pet_fwhm_mm,
        "mu_per_cm": {c.name.lower(): float(settings.coefficients.lookup_table()[c]) for c in TissueClass},
    }
    return MuMapResult(
        mu_per_cm=mu, dixon=dixon, segmentation=seg, completed_mask=completed, metadata=metadata
    )


def lung_fraction(
    result: MuMapResult,
    mr_grid: VoxelGrid,
    pet_grid: VoxelGrid,
    settings: MuMapSettings | None = None,
    hardware_mu_per_cm: np.ndarray | None = None,
) -> np.ndarray:
    """L = ∂μ/∂(lung coefficient) of ``result.mu_per_cm`` on the PET grid, float32 in [0, 1] (dimensionless).

    The lung class of ``result.segmentation`` taken through the same linear steps as the μ-map (resampling,
    boundary smoothing), 0 where truncation completion filled soft tissue and where the hardware μ-map is the
    larger, so that ``result.mu_per_cm = μ_rest + c·L`` with c the lung coefficient used (see
    :mod:`recon.petmr_ac.lung_mu`).  ``settings`` and ``hardware_mu_per_cm`` must be those of ``result``.
    """
    settings = settings or MuMapSettings()
    lung = (result.segmentation.labels == TissueClass.LUNG).astype(np.float32)
    fraction = resample(lung, mr_grid, pet_grid, order=1)
    fraction[result.completed_mask] = 0.0
    fraction = smooth_to_resolution(fraction, pet_grid.voxel_size_mm, settings.pet_fwhm_mm)
    if hardware_mu_per_cm is not None:
        fraction[hardware_mu_per_cm >= result.mu_per_cm] = 0.0
    return fraction
