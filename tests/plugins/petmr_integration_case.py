"""The PET-MR attenuation-correction integration case (used by the slow test and the report script).

One torso in one frame of reference, as ``reconstream simulate petmr`` makes it: the MR simulator's Dixon
exam (3 T, 3 echoes, 32 axial slices of 8 mm, 450 mm readout field of view that cuts off the arms) and the
PET simulator's FDG torso, which derives its anatomy from the same MR thorax and adds the true μ-map
(within-tissue variation, bone, table, rigid anterior coil).  The Dixon exam goes through the chain's own
plugins (noise adjustment, oversampling removal, Dixon reconstruction); the μ-map is made from its
:class:`DixonVolume` with the table and the anterior-coil templates, with and without truncation completion
from a NAC reconstruction; the PET frame is reconstructed with the true and with the Dixon μ-maps.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from hardware_sim.mr.config import MRExamConfig
from hardware_sim.mr.exam import simulate_exam
from hardware_sim.pet.config import PETSimulationConfig
from hardware_sim.pet.simulator import PETListModeSimulator
from hardware_sim.pet.torso import TABLE_TOP_Y_MM, TORSO_LABELS, torso_phantom
from plugins.mr.cine_noise import CineNoiseAdjust, CineNoiseAdjustConfig
from plugins.mr.cine_oversampling import CineRemoveOversampling, CineRemoveOversamplingConfig
from plugins.mr.dixon_items import DixonVolume
from plugins.mr.dixon_recon import DixonReconConfig, DixonReconstruction
from plugins.runtime.plugin import ChainContext
from recon.petmr_ac.coil_templates import placed_coils
from recon.petmr_ac.grid import grid_from_pet_image_grid, resample
from recon.petmr_ac.lung_mu import estimate_lung_mu
from recon.petmr_ac.mumap import default_table, hardware_mumap
from recon.petmr_ac.nac import nac_image
from recon.petmr_ac.pipeline import MuMapSettings, lung_fraction, mumap_from_separation
from recon.tof.geometry import ImageGrid, scanner_by_name
from recon.tof.listmode import concatenate_batches
from recon.tof.reconstruct import ReconstructionParameters, reconstruct_frame

#: torch device of the PET simulation and reconstructions (``RECONSTREAM_TEST_DEVICE=cuda`` on a GPU machine).
DEVICE = os.environ.get("RECONSTREAM_TEST_DEVICE", "cpu")


def dixon_config(seed: int) -> MRExamConfig:
    """The Dixon exam of ``simulate petmr --coils 8 --matrix 128 96`` (3.5 mm pixels, 32 × 8 mm slices)."""
    return MRExamConfig(
        protocol="dixon",
        field_strength_t=3.0,
        n_echoes=3,
        n_slices=32,
        slice_thickness_mm=8.0,
        n_coils=8,
        n_readout=128,
        n_phase_encodes=96,
        seed=seed,
    )


def dixon_volume(seed: int) -> DixonVolume:
    """The simulated Dixon exam reconstructed by the ``petmr`` chain's MR plugins."""
    exam = simulate_exam(dixon_config(seed))
    ctx = ChainContext("petmr", header=exam.header)
    noise = CineNoiseAdjust(CineNoiseAdjustConfig(), ctx)
    oversampling = CineRemoveOversampling(CineRemoveOversamplingConfig(), ctx)
    dixon = DixonReconstruction(DixonReconConfig(emit_images=False), ctx)
    volumes = [o for o in dixon.run(oversampling.run(noise.run(exam.items()))) if isinstance(o, DixonVolume)]
    return volumes[0]


def simulate_pet(n_prompts: int, seed: int) -> tuple[Any, Any, Any]:
    """(phantom, list-mode batch, acquisition info) of the torso on the Signa-like scanner."""
    phantom = torso_phantom(voxel_size_mm=4.0, seed=seed)
    simulator = PETListModeSimulator(
        phantom,
        scanner_by_name("signa"),
        PETSimulationConfig(
            n_prompts=n_prompts,
            seed=seed,
            device="numba" if DEVICE == "cpu" else DEVICE,
            decays_per_chunk=1 << (17 if DEVICE == "cpu" else 22),
        ),
    )
    batch = concatenate_batches(list(simulator.batches()))
    return phantom, batch, simulator.acquisition_info()


def roi_bias(image: np.ndarray, reference: np.ndarray, regions: dict[str, np.ndarray]) -> dict[str, float]:
    """Relative bias of ``image`` against ``reference`` (same grid) in each region of more than 10 voxels:
    mean over the region of the image / mean of the reference − 1."""
    return {
        name: float(image[roi].mean() / reference[roi].mean() - 1.0)
        for name, roi in regions.items()
        if roi.sum() > 10
    }


def rois(phantom: Any, grid: ImageGrid) -> dict[str, np.ndarray]:
    """Region masks on ``grid`` (interiors of the torso labels, |z| < 90 mm): soft tissue (|x| < 150 mm),
    myocardium, liver, bone (the spine, |x| < 30 mm) and arms (soft tissue at |x| > 190 mm)."""
    labels = np.rint(
        resample(
            phantom.labels.astype(np.float32),
            grid_from_pet_image_grid(phantom.grid),  # type: ignore[attr-defined]
            grid_from_pet_image_grid(grid),
            order=0,
        )
    ).astype(int)
    x = grid.axis_centres_mm(2)[None, None, :]
    z = grid.axis_centres_mm(0)[:, None, None]
    axial = np.abs(z) < 90.0  # well inside the MR slab and the PET axial FOV
    names = {n: labels == TORSO_LABELS.index(n) for n in TORSO_LABELS}

    def interior(mask: np.ndarray) -> np.ndarray:
        return ndimage.binary_erosion(mask, iterations=1) & axial

    return {
        "soft_tissue": interior(names["soft_tissue"] & (np.abs(x) < 150.0)),
        "myocardium": interior(names["myocardium"]),
        "liver": interior(names["liver"]),
        "bone": interior(names["cancellous_bone"] & (np.abs(x) < 30.0)),
        "arms": interior(names["soft_tissue"] & (np.abs(x) > 190.0)),
    }


def mumaps(
    phantom: Any, batch: Any, info: Any, seed: int, params: ReconstructionParameters
) -> dict[str, Any]:
    """μ-maps on the 4 mm PET grid: true, Dixon (with/without completion), Dixon without the coil template, and
    Dixon with the lung coefficient estimated from the TOF data (:mod:`recon.petmr_ac.lung_mu`)."""
    scanner = scanner_by_name("signa")
    grid = ImageGrid.for_scanner(scanner, (4.0, 4.0, 4.0))
    pet = grid_from_pet_image_grid(grid)
    coarse = ImageGrid.for_scanner(scanner, (8.0, 8.0, 8.0))
    nac = nac_image(batch, info, scanner, coarse)  # type: ignore[arg-type]
    nac_pet = resample(nac, grid_from_pet_image_grid(coarse), pet)
    table = default_table(table_top_y_mm=TABLE_TOP_Y_MM)
    hardware = hardware_mumap(pet, [table, *placed_coils(["anterior_array"], TABLE_TOP_Y_MM)])
    volume = dixon_volume(seed)
    settings = MuMapSettings(pet_fwhm_mm=5.0)

    def dixon(nac: np.ndarray | None, hw: np.ndarray) -> Any:
        return mumap_from_separation(
            volume.result,
            volume.grid,
            pet,
            settings,
            nac_pet=nac,
            hardware_mu_per_cm=hw,
        )

    with_completion = dixon(nac_pet, hardware)
    # μ = μ_rest + c·L: the chain's lung estimate (plugins/pet/petmr_mumap.py)
    fraction = lung_fraction(with_completion, volume.grid, pet, settings, hardware)
    mu_rest = with_completion.mu_per_cm - settings.coefficients.lung_mu_per_cm * fraction
    estimate = estimate_lung_mu(
        batch, info, scanner, grid, torch.from_numpy(mu_rest), torch.from_numpy(fraction), params,
        device=DEVICE,
    )  # fmt: skip
    mu_true = resample(phantom.mu_per_cm, grid_from_pet_image_grid(phantom.grid), pet)  # type: ignore[attr-defined]
    return {
        "grid": grid,
        "true": mu_true,
        "dixon": with_completion.mu_per_cm,
        "dixon_no_completion": dixon(None, hardware).mu_per_cm,
        "dixon_no_coil_template": dixon(nac_pet, hardware_mumap(pet, [table])).mu_per_cm,
        "dixon_lung_estimated": mu_rest + estimate.lung_mu_per_cm * fraction,
        "lung_mu_per_cm": estimate.lung_mu_per_cm,
        "result": with_completion,
    }


def run_case(
    phantom: Any,
    batch: Any,
    info: Any,
    seed: int = 0,
    n_iterations: int = 2,
    n_subsets: int = 8,
    scatter: bool = True,
) -> dict[str, dict[str, float]]:
    """Relative activity bias (Dixon μ vs true μ) per region: with and without truncation completion,
    and without the anterior-coil template (the decomposition of the coil's share).  ``scatter=False``
    reconstructs without scatter correction (the same uncorrected scatter in both images): the attenuation
    correction's share alone, free of the scatter tail fit, whose scale each μ-map refits on its own tails."""
    scanner = scanner_by_name("signa")
    params = ReconstructionParameters(
        n_iterations=n_iterations, n_subsets=n_subsets, max_sensitivity_pairs=5_000_000, scatter=scatter
    )
    maps = mumaps(phantom, batch, info, seed, params)
    grid = maps["grid"]
    variants = ("dixon", "dixon_lung_estimated", "dixon_no_completion", "dixon_no_coil_template")
    images, tail_fits = {}, {}
    for name in ("true", *variants):
        mu = torch.from_numpy(np.ascontiguousarray(maps[name]))
        result = reconstruct_frame(batch, info, scanner, grid, mu, params, device=DEVICE)  # type: ignore[arg-type]
        images[name] = result.activity_bq_per_ml.cpu().numpy()
        if result.tail_fit is not None:
            tail_fits[name] = result.tail_fit
    regions = rois(phantom, grid)
    out: dict[str, dict[str, float]] = {}
    for variant in variants:
        out[variant] = roi_bias(images[variant], images["true"], regions)
    out["n_voxels"] = {name: float(roi.sum()) for name, roi in regions.items()}
    result, mu_true = maps["result"], maps["true"]
    out["mu"] = {
        "completed_voxels": float(result.completed_mask.sum()),
        "mean_abs_mu_error_body": float(np.abs(result.mu_per_cm - mu_true)[mu_true > 0.05].mean()),
        "n_prompts": float(batch.n_prompts),
    }
    out["metadata"] = {"bone_class_present": float(result.metadata["bone_source"] != "none")}
    out["lung"] = {"estimated_mu_per_cm": float(maps["lung_mu_per_cm"])}
    out["scatter_scale"] = {name: fit.scale for name, fit in tail_fits.items()}
    out["tail_prompts"] = {name: float(fit.n_prompts_tail) for name, fit in tail_fits.items()}
    return out
