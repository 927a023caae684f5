"""Dixon echoes → μ-map on the PET grid, against the μ-map of the true tissue labels."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_torso, simulate_echoes
from scipy import ndimage

from recon.petmr_ac.fat_model import larmor_frequency_hz
from recon.petmr_ac.grid import axis_aligned_grid, resample
from recon.petmr_ac.mumap import default_table, hardware_mumap, labels_to_mu, smooth_to_resolution
from recon.petmr_ac.pipeline import MuMapSettings, mumap_from_dixon


@pytest.mark.parametrize("echo_times_s", [(1.2e-3, 2.4e-3, 3.6e-3), (2.3e-3, 4.6e-3)])
def test_mumap_on_pet_grid_matches_the_true_labels(echo_times_s: tuple[float, ...]) -> None:
    torso = make_torso(n_z=6, n_y=64, n_x=80, b0_scale_hz=100.0)
    mr = axis_aligned_grid(torso.labels.shape, torso.voxel_size_mm, (-15.0, -157.5, -197.5))
    pet = axis_aligned_grid((8, 48, 60), (4.0, 6.0, 6.0), (-14.0, -141.0, -177.0))
    echoes = simulate_echoes(torso, np.array(echo_times_s), 1.5, 0.02, np.random.default_rng(11))
    settings = MuMapSettings(pet_fwhm_mm=6.0)
    result = mumap_from_dixon(echoes, echo_times_s, larmor_frequency_hz(1.5), mr, pet, settings)
    truth = smooth_to_resolution(resample(labels_to_mu(torso.labels), mr, pet), pet.voxel_size_mm, 6.0)
    assert result.mu_per_cm.shape == pet.shape_zyx
    body = resample((torso.labels > 0).astype(np.float32), mr, pet, order=0) > 0.5
    core = ndimage.binary_erosion(
        resample((torso.labels == 3).astype(np.float32), mr, pet, order=0) > 0.5, iterations=2
    )
    assert core.sum() > 100
    assert abs(result.mu_per_cm[core].mean() / truth[core].mean() - 1) <= 0.01
    assert np.abs(result.mu_per_cm - truth)[body].mean() <= 0.002  # /cm, 2 % of soft tissue
    assert result.metadata["bone_source"] == "none" and "absent" in result.metadata["bone_class"]
    assert result.metadata["n_echoes"] == len(echo_times_s)


def test_hardware_is_added_and_truncation_runs_with_nac() -> None:
    torso = make_torso(n_z=4, n_y=48, n_x=64)
    mr = axis_aligned_grid(torso.labels.shape, torso.voxel_size_mm, (-9.0, -117.5, -157.5))
    pet = axis_aligned_grid((6, 50, 70), (4.0, 6.0, 6.0), (-10.0, -147.0, -207.0))
    t = (1.2e-3, 2.4e-3, 3.6e-3)
    echoes = simulate_echoes(torso, np.array(t), 1.5, 0.01, np.random.default_rng(1))
    table = hardware_mumap(pet, [default_table(table_top_y_mm=100.0)])
    body_pet = resample((torso.labels > 0).astype(np.float32), mr, pet, order=0)
    result = mumap_from_dixon(
        echoes, t, larmor_frequency_hz(1.5), mr, pet, nac_pet=body_pet, hardware_mu_per_cm=table
    )
    assert np.all(result.mu_per_cm >= table - 1e-7)
    assert result.completed_mask.shape == pet.shape_zyx
    assert result.metadata["n_truncation_completed_voxels"] == int(result.completed_mask.sum())


def test_mismatched_grid_rejected() -> None:
    grid = axis_aligned_grid((2, 8, 8), (1, 1, 1), (0, 0, 0))
    with pytest.raises(ValueError):
        mumap_from_dixon(np.zeros((3, 2, 8, 9), np.complex64), (1e-3, 2e-3, 3e-3), 6e7, grid, grid)
