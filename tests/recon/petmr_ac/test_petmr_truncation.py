"""Truncation completion of arms outside the MR field of view from a NAC PET outline."""

from __future__ import annotations

import numpy as np
from conftest import ellipse
from scipy import ndimage

from recon.petmr_ac.grid import axis_aligned_grid
from recon.petmr_ac.tissue import dice
from recon.petmr_ac.truncation import (
    TruncationSettings,
    complete_truncation,
    nac_body_mask,
    trusted_mr_region,
)


def _torso_with_arms(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    ny, nx = shape
    trunk = ellipse(shape, (ny / 2, nx / 2), (0.25 * ny, 0.3 * nx))
    arms = ellipse(shape, (ny / 2, nx / 2 - 0.42 * nx), (0.08 * ny, 0.06 * nx)) | ellipse(
        shape, (ny / 2, nx / 2 + 0.42 * nx), (0.08 * ny, 0.06 * nx)
    )
    return trunk, arms & ~trunk


def test_completion_recovers_truncated_arms_and_leaves_the_trunk() -> None:
    n_z, ny, nx = 4, 60, 100
    pet = axis_aligned_grid((n_z, ny, nx), (4.0, 4.0, 4.0), (-6.0, -118.0, -198.0))
    mr = axis_aligned_grid((n_z, 50, 70), (4.0, 4.0, 4.0), (-6.0, -98.0, -138.0))  # 280 mm wide: arms cut off
    trunk, arms = _torso_with_arms((ny, nx))
    trunk3, arms3 = np.repeat(trunk[None], n_z, 0), np.repeat(arms[None], n_z, 0)
    mu_mr = np.where(trunk3, 0.1, 0.0).astype(np.float32)  # what the MR-based map sees on the PET grid
    activity = np.where(trunk3 | arms3, 1.0, 0.0)
    nac = ndimage.gaussian_filter(
        activity * np.where(arms3, 0.6, 1.0), (0, 1.5, 1.5)
    )  # NAC: blurred, arms dimmer
    settings = TruncationSettings(fov_margin_mm=8.0)
    body = nac_body_mask(nac, pet.voxel_size_mm, settings)
    trusted = trusted_mr_region(mr, pet, settings.fov_margin_mm)
    completed_mu, completed = complete_truncation(mu_mr, body, trusted, settings.fill_mu_per_cm)
    assert dice(completed & arms3, arms3) >= 0.8
    assert not np.any(completed & trunk3 & trusted)
    true_mu = np.where(trunk3 | arms3, 0.1, 0.0)
    arm_error_before = np.abs(mu_mr - true_mu)[arms3].mean()
    arm_error_after = np.abs(completed_mu - true_mu)[arms3].mean()
    assert arm_error_after < 0.25 * arm_error_before
    np.testing.assert_array_equal(completed_mu[trusted], mu_mr[trusted])


def test_no_completion_inside_the_mr_field_of_view() -> None:
    pet = axis_aligned_grid((2, 20, 20), (4.0, 4.0, 4.0), (-2.0, -38.0, -38.0))
    trusted = trusted_mr_region(pet, pet, 0.0)
    assert trusted.all()
    mu, completed = complete_truncation(
        np.zeros((2, 20, 20), np.float32), np.ones((2, 20, 20), bool), trusted
    )
    assert not completed.any() and not mu.any()


def test_completed_outline_sits_at_the_half_plateau_of_low_uptake_arms() -> None:
    """NAC with a hot organ in the trunk, dim arms and a broad scatter pedestal around the body: a threshold
    relative to the hottest voxels falls in the arms' halo; the per-slice half-plateau edge outside the
    trusted MR region keeps their size."""
    n_z, ny, nx = 2, 60, 100
    pet = axis_aligned_grid((n_z, ny, nx), (4.0, 4.0, 4.0), (-2.0, -118.0, -198.0))
    mr = axis_aligned_grid((n_z, 50, 70), (4.0, 4.0, 4.0), (-2.0, -98.0, -138.0))
    trunk, arms = _torso_with_arms((ny, nx))
    hot = ellipse((ny, nx), (ny / 2, nx / 2), (4, 4))
    activity = np.where(hot, 2.0, np.where(trunk, 1.0, np.where(arms, 0.8, 0.0)))
    scatter = 0.3 * ndimage.gaussian_filter((trunk | arms).astype(float), 8.0)
    nac = np.repeat((ndimage.gaussian_filter(activity, 1.5) + scatter)[None], n_z, 0)
    settings = TruncationSettings(fov_margin_mm=8.0)
    trusted = trusted_mr_region(mr, pet, settings.fov_margin_mm)
    true_arms = np.repeat(arms[None], n_z, 0) & ~trusted
    halo = nac_body_mask(nac, pet.voxel_size_mm, settings) & ~trusted
    refined = nac_body_mask(nac, pet.voxel_size_mm, settings, trusted) & ~trusted
    assert halo.sum() > 1.3 * true_arms.sum()  # the global threshold oversizes the arms
    assert abs(int(refined.sum()) - int(true_arms.sum())) < 0.15 * true_arms.sum()
    assert dice(refined, true_arms) >= 0.85
