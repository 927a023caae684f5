"""μ coefficients, PET-resolution smoothing (closed-form erf edge) and the hardware μ-map."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import erf

from recon.petmr_ac.grid import VoxelGrid, axis_aligned_grid
from recon.petmr_ac.mumap import (
    HardwareBox,
    MuCoefficients,
    default_table,
    hardware_mumap,
    labels_to_mu,
    smooth_to_resolution,
)
from recon.petmr_ac.tissue import TissueClass


def test_default_coefficients_at_511_kev() -> None:
    labels = np.array(
        [TissueClass.AIR, TissueClass.LUNG, TissueClass.FAT, TissueClass.SOFT_TISSUE, TissueClass.BONE]
    )
    np.testing.assert_allclose(labels_to_mu(labels), [0.0, 0.018, 0.086, 0.100, 0.172], atol=1e-7)
    custom = labels_to_mu(labels, MuCoefficients(soft_tissue_mu_per_cm=0.096))
    assert custom[3] == pytest.approx(0.096)
    with pytest.raises(ValueError):
        MuCoefficients(lung_mu_per_cm=-0.1)
    with pytest.raises(ValueError):
        labels_to_mu(np.array([7]))


def test_edge_smoothing_follows_the_erf_of_the_pet_resolution() -> None:
    voxel_mm, fwhm_mm = 2.0, 6.0
    mu = np.zeros((1, 1, 101), dtype=np.float32)
    mu[..., 50:] = 0.1  # edge between voxel 49 and 50, at x = 49.5 voxels
    out = smooth_to_resolution(mu, (voxel_mm,) * 3, fwhm_mm)[0, 0]
    sigma_mm = fwhm_mm / (2 * np.sqrt(2 * np.log(2)))
    x_mm = (np.arange(101) - 49.5) * voxel_mm
    expected = 0.05 * (1 + erf(x_mm / (np.sqrt(2) * sigma_mm)))
    # sampled (discrete) Gaussian vs the continuous erf: within 1 % of the step height
    np.testing.assert_allclose(out[20:80], expected[20:80], atol=0.01 * 0.1)
    assert out.sum() == pytest.approx(mu.sum(), rel=1e-5)


def test_no_smoothing_is_identity() -> None:
    mu = np.random.default_rng(0).random((2, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(smooth_to_resolution(mu, (1, 1, 1), 0.0), mu)


def test_table_line_integral_equals_mu_times_thickness() -> None:
    grid = axis_aligned_grid((4, 80, 60), (4.0, 2.5, 5.0), (-6.0, -100.0, -150.0))
    table = default_table(table_top_y_mm=20.3, mu_per_cm=0.03, thickness_mm=31.0, width_mm=200.0)
    mu = hardware_mumap(grid, [table])
    line_integral = mu[:, :, 30].sum(axis=1) * 0.25  # Σ μ·Δy, Δy = 0.25 cm
    np.testing.assert_allclose(line_integral, 0.03 * 3.1, rtol=1e-5)
    assert mu[:, :, 0].max() == 0.0  # outside the 200 mm width (x = −150 mm)


def test_general_affine_hardware_matches_the_exact_overlap() -> None:
    box = HardwareBox("coil", (0.0, -40.0, 0.0), (30.0, 12.0, 80.0), 0.05)
    aligned = axis_aligned_grid((10, 40, 40), (4.0, 3.0, 3.0), (-18.0, -60.0, -58.5))
    flipped_affine = aligned.affine_zyx.copy()
    flipped_affine[2, 2] = -3.0  # x axis reversed: goes through the sub-sampled path
    flipped_affine[2, 3] = 58.5
    flipped = VoxelGrid(aligned.shape_zyx, flipped_affine)
    exact = hardware_mumap(aligned, [box])
    sampled = hardware_mumap(flipped, [box], n_subsamples=5)
    assert sampled.sum() == pytest.approx(exact.sum(), rel=0.03)
    assert exact.sum() * 4.0 * 3.0 * 3.0 == pytest.approx(0.05 * 30 * 12 * 80, rel=1e-6)
