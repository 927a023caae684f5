"""Rigid-coil hardware templates: geometry of the rasterised housing, placement relative to the table, names."""

from __future__ import annotations

import numpy as np
import pytest

from recon.petmr_ac.coil_templates import (
    PlacedCoil,
    RigidCoilTemplate,
    coil_fraction,
    coil_template,
    placed_coils,
)
from recon.petmr_ac.grid import VoxelGrid, axis_aligned_grid
from recon.petmr_ac.mumap import hardware_mumap


def _plate(thickness_mm: float = 6.0) -> RigidCoilTemplate:
    """A flat plate 200 mm wide, 100 mm above the table top, 120 mm long."""
    return RigidCoilTemplate("plate", ((-100.0, 100.0), (100.0, 100.0)), thickness_mm, 120.0, 0.1)


def test_flat_plate_line_integral_and_extent() -> None:
    grid = axis_aligned_grid((20, 100, 80), (8.0, 2.0, 4.0), (-76.0, -99.0, -158.0))
    assert placed_coils([], 0.0) == []  # no connected coils, no hardware
    placed = PlacedCoil(_plate(), table_top_y_mm=50.3, z_centre_mm=4.0)  # plate mid-plane at y = -49.7
    mu = hardware_mumap(grid, [placed])
    y = -99.0 + 2.0 * np.arange(100)
    line = mu[:, :, 40].sum(axis=1) * 0.2  # Σ μ·Δy (cm) through the plate at x = 2 mm
    inside_z = np.abs(-76.0 + 8.0 * np.arange(20) - 4.0) < 60.0 - 4.0
    # 5 transverse sub-samples per 2 mm voxel: each face is placed to ± 0.2 mm of the 6 mm wall
    np.testing.assert_allclose(line[inside_z], 0.1 * 0.6, rtol=0.4 / 6.0)
    assert abs(y[mu[10, :, 40].argmax()] + 49.7) <= 3.0
    assert mu[:, :, 0].max() == 0.0  # x = -158 mm lies beyond the 200 mm width
    # exact overlap along z: the plate's 120 mm over 8 mm slices
    assert mu[:, :, 40].sum() * 0.2 * 0.8 == pytest.approx(0.1 * 0.6 * 12.0, rel=0.4 / 6.0)


def test_template_follows_the_table_and_matches_a_sub_sampled_general_grid() -> None:
    aligned = axis_aligned_grid((6, 60, 60), (10.0, 5.0, 6.0), (-25.0, -270.0, -177.0))
    low, high = (placed_coils(["anterior_array"], top) for top in (116.0, 126.0))
    mu_low, mu_high = hardware_mumap(aligned, low), hardware_mumap(aligned, high)
    assert mu_low.sum() > 0 and mu_high.sum() == pytest.approx(mu_low.sum(), rel=0.02)
    # moving the table 10 mm posterior moves the coil 10 mm (2 voxels) with it
    np.testing.assert_allclose(np.roll(mu_low, 2, axis=1)[:, 4:], mu_high[:, 4:], atol=1e-6)
    flipped_affine = aligned.affine_zyx.copy()
    flipped_affine[2, 2], flipped_affine[2, 3] = -6.0, 177.0
    flipped = VoxelGrid(aligned.shape_zyx, flipped_affine)
    sampled = hardware_mumap(flipped, low, n_subsamples=5)
    assert sampled.sum() == pytest.approx(mu_low.sum(), rel=0.05)


def test_anterior_array_volume_and_mean_mu() -> None:
    (coil,) = placed_coils(["anterior_array"], 116.0)
    grid = axis_aligned_grid((1, 200, 200), (300.0, 2.0, 2.0), (0.0, -199.0, -199.0))
    fraction = coil_fraction(grid, coil)
    cross_section_mm2 = float(fraction.sum()) * 4.0
    assert cross_section_mm2 == pytest.approx(6.0 * 420.0, rel=0.05)  # 6 mm wall × ≈ 420 mm arc
    assert coil.mu_per_cm == pytest.approx(0.101)
    with pytest.raises(ValueError, match="anterior_array"):
        coil_template("posterior_spine")
