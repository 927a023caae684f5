"""The PET-MR attenuation-correction integration case (used by the slow test and the report script).

One torso in one frame of reference: the PET simulator's FDG torso (true μ-map with bone, table and coil)
gives the list-mode data; a 3-echo Dixon acquisition of the same torso is synthesised from the phantom's
labels on an axial MR grid whose 448 mm field of view cuts off the arms.  The chain's cores then make the
Dixon μ-map (with and without truncation completion from a NAC reconstruction) and the PET frame is
reconstructed with the true and with the Dixon μ-maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from hardware_sim.pet.config import PETSimulationConfig
from hardware_sim.pet.simulator import PETListModeSimulator
from hardware_sim.pet.torso import TORSO_LABELS, torso_phantom
from recon.petmr_ac.fat_model import HAMILTON_LIVER_FAT, fat_signal_factors, larmor_frequency_hz
from recon.petmr_ac.grid import VoxelGrid, axis_aligned_grid, grid_from_pet_image_grid, resample
from recon.petmr_ac.mumap import default_table, hardware_mumap
from recon.petmr_ac.nac import nac_image
from recon.petmr_ac.pipeline import MuMapSettings, mumap_from_dixon
from recon.tof.geometry import ImageGrid, scanner_by_name
from recon.tof.listmode import concatenate_batches
from recon.tof.reconstruct import ReconstructionParameters, reconstruct_frame

ECHO_TIMES_S = (1.2e-3, 2.4e-3, 3.6e-3)
FIELD_T = 1.5
#: relative (T1-weighted) water and fat signal per phantom label
SIGNAL = {
    "soft_tissue": (1.0, 0.03), "fat": (0.2, 2.2), "lung": (0.04, 0.0), "blood": (1.1, 0.0),
    "myocardium": (1.0, 0.0), "liver": (1.0, 0.05), "cancellous_bone": (0.5, 0.9), "cortical_bone": (0.0, 0.0),
    "lesion": (1.0, 0.0), "table": (0.0, 0.0), "coil": (0.0, 0.0), "air": (0.0, 0.0),
}  # fmt: skip


@dataclass(frozen=True)
class Case:
    activity_true: dict[str, np.ndarray]
    rois: dict[str, np.ndarray]
    mu_dixon: np.ndarray
    mu_true: np.ndarray
    completed: np.ndarray


def mr_grid() -> VoxelGrid:
    """Axial Dixon grid: 128 × 96 at 3.5 mm (448 × 336 mm), 60 slices of 4 mm (z ±118 mm)."""
    return axis_aligned_grid((60, 96, 128), (4.0, 3.5, 3.5), (-118.0, -168.0, -224.0))


def synthesize_dixon(labels_pet: np.ndarray, pet: ImageGrid, rng: np.random.Generator) -> np.ndarray:
    """3-echo images (N, z, y, x) of the phantom on the MR grid, six-peak fat, smooth B0, noise."""
    grid = mr_grid()
    labels = np.rint(
        resample(labels_pet.astype(np.float32), grid_from_pet_image_grid(pet), grid, order=0)
    ).astype(int)
    water = np.zeros(labels.shape, np.float32)
    fat = np.zeros(labels.shape, np.float32)
    for value, name in enumerate(TORSO_LABELS):
        water[labels == value], fat[labels == value] = SIGNAL[name]
    water, fat = (ndimage.gaussian_filter(a, (0.0, 0.6, 0.6)) for a in (water, fat))  # partial volume
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in labels.shape], indexing="ij")
    field_hz = 40.0 * x - 25.0 * y + 30.0 * z**2
    c = fat_signal_factors(np.array(ECHO_TIMES_S), HAMILTON_LIVER_FAT, larmor_frequency_hz(FIELD_T))
    echoes = np.empty((3, *labels.shape), np.complex64)
    for n, t in enumerate(ECHO_TIMES_S):
        noise = rng.normal(0, 0.03, labels.shape) + 1j * rng.normal(0, 0.03, labels.shape)
        echoes[n] = (water + c[n] * fat) * np.exp(2j * np.pi * field_hz * t) + noise
    return echoes


def simulate_pet(n_prompts: int, seed: int) -> tuple[Any, Any, Any]:
    """(phantom, list-mode batch, acquisition info) of the torso on the Signa-like scanner."""
    phantom = torso_phantom(voxel_size_mm=4.0, seed=seed)
    simulator = PETListModeSimulator(
        phantom, scanner_by_name("signa"), PETSimulationConfig(n_prompts=n_prompts, seed=seed)
    )
    batch = concatenate_batches(list(simulator.batches()))
    return phantom, batch, simulator.acquisition_info()


def _rois(phantom: Any, grid: ImageGrid) -> dict[str, np.ndarray]:
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


def run_case(
    phantom: Any, batch: Any, info: Any, seed: int = 0, n_iterations: int = 2, n_subsets: int = 8
) -> dict[str, dict[str, float]]:
    """Relative activity bias (Dixon μ vs true μ) per region, with and without truncation completion."""
    import torch

    scanner = scanner_by_name("signa")
    grid = ImageGrid.for_scanner(scanner, (4.0, 4.0, 4.0))
    pet = grid_from_pet_image_grid(grid)
    echoes = synthesize_dixon(phantom.labels, phantom.grid, np.random.default_rng(seed))  # type: ignore[attr-defined]
    nac = nac_image(batch, info, scanner, ImageGrid.for_scanner(scanner, (8.0, 8.0, 8.0)))  # type: ignore[arg-type]
    nac_pet = resample(nac, grid_from_pet_image_grid(ImageGrid.for_scanner(scanner, (8.0, 8.0, 8.0))), pet)
    table = hardware_mumap(pet, [default_table(table_top_y_mm=116.0)])
    larmor = larmor_frequency_hz(FIELD_T)
    settings = MuMapSettings(pet_fwhm_mm=5.0)
    with_completion = mumap_from_dixon(
        echoes, ECHO_TIMES_S, larmor, mr_grid(), pet, settings, nac_pet=nac_pet, hardware_mu_per_cm=table
    )
    without = mumap_from_dixon(
        echoes, ECHO_TIMES_S, larmor, mr_grid(), pet, settings, hardware_mu_per_cm=table
    )
    mu_true = resample(phantom.mu_per_cm, grid_from_pet_image_grid(phantom.grid), pet)  # type: ignore[attr-defined]
    params = ReconstructionParameters(
        n_iterations=n_iterations, n_subsets=n_subsets, max_sensitivity_pairs=5_000_000
    )
    images = {}
    for name, mu in (
        ("true", mu_true),
        ("dixon", with_completion.mu_per_cm),
        ("dixon_no_completion", without.mu_per_cm),
    ):
        result = reconstruct_frame(
            batch, info, scanner, grid, torch.from_numpy(np.ascontiguousarray(mu)), params
        )  # type: ignore[arg-type]
        images[name] = result.activity_bq_per_ml.numpy()
    rois = _rois(phantom, grid)
    out: dict[str, dict[str, float]] = {}
    for variant in ("dixon", "dixon_no_completion"):
        out[variant] = {
            name: float(images[variant][roi].mean() / images["true"][roi].mean() - 1.0)
            for name, roi in rois.items()
            if roi.sum() > 10
        }
    out["n_voxels"] = {name: float(roi.sum()) for name, roi in rois.items()}
    out["mu"] = {
        "completed_voxels": float(with_completion.completed_mask.sum()),
        "mean_abs_mu_error_body": float(np.abs(with_completion.mu_per_cm - mu_true)[mu_true > 0.05].mean()),
    }
    return out
