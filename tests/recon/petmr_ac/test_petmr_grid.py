"""Voxel grids from patient coordinates and affine resampling: exact for known affines."""

from __future__ import annotations

import numpy as np
import pytest

from recon.petmr_ac.grid import (
    VoxelGrid,
    axis_aligned_grid,
    field_of_view_mask,
    grid_from_ismrmrd,
    grid_from_pet_image_grid,
    resample,
)


def _rotation(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle_rad) * k + (1 - np.cos(angle_rad)) * k @ k


def test_integer_permutation_flip_and_shift_is_exact() -> None:
    rng = np.random.default_rng(0)
    volume = rng.normal(size=(5, 6, 7)).astype(np.float32)
    source = axis_aligned_grid((5, 6, 7), (3.0, 2.0, 2.0), (-6.0, -5.0, -6.0))
    # target: x flipped, shifted by one voxel in y
    a = np.eye(4)
    a[:3, :3] = np.diag([3.0, 2.0, -2.0])
    a[:3, 3] = [-6.0, -3.0, 6.0]
    target = VoxelGrid((5, 5, 7), a)
    out = resample(volume, source, target, order=1)
    np.testing.assert_array_equal(out, volume[:, 1:, ::-1])


def test_linear_field_is_reproduced_under_a_general_affine() -> None:
    """Trilinear interpolation is exact for a linear function: f(p) = g·p + b, at any target point."""
    g, b = np.array([0.3, -1.2, 0.7]), 5.0
    source = axis_aligned_grid((20, 24, 28), (2.5, 2.0, 1.5), (-25.0, -24.0, -21.0))
    index = np.stack(np.meshgrid(*[np.arange(n) for n in source.shape_zyx], indexing="ij"), axis=-1)
    volume = source.index_to_patient(index) @ g + b
    a = np.eye(4)
    a[:3, :3] = _rotation(np.array([1.0, 0.4, -0.3]), 0.5) @ np.diag([3.0, 2.2, 1.7])
    a[:3, 3] = [-8.0, -7.0, -6.0]
    target = VoxelGrid((6, 7, 8), a)
    out = resample(volume, source, target, order=1, fill_value=np.nan)
    t_index = np.stack(np.meshgrid(*[np.arange(n) for n in target.shape_zyx], indexing="ij"), axis=-1)
    expected = target.index_to_patient(t_index) @ g + b
    inside = ~np.isnan(out)
    assert inside.mean() > 0.9
    np.testing.assert_allclose(out[inside], expected[inside], atol=1e-4)


def test_ismrmrd_grid_places_position_at_the_fft_centre_voxel() -> None:
    read, phase = np.array([0.8, 0.6, 0.0]), np.array([-0.6, 0.8, 0.0])
    normal = np.cross(read, phase)
    position = np.array([10.0, -20.0, 30.0])
    grid = grid_from_ismrmrd(
        position, read, phase, normal, (256.0, 192.0), (128, 96, 4), slice_spacing_mm=5.0
    )
    assert grid.shape_zyx == (4, 96, 128)
    np.testing.assert_allclose(grid.voxel_size_mm, (5.0, 2.0, 2.0))
    centre = grid.index_to_patient(np.array([0.0, 48.0, 64.0]))
    np.testing.assert_allclose(centre, position[::-1], atol=1e-9)
    step_x = grid.index_to_patient(np.array([0.0, 48.0, 65.0])) - centre
    np.testing.assert_allclose(step_x, 2.0 * read[::-1], atol=1e-9)
    step_z = grid.index_to_patient(np.array([1.0, 48.0, 64.0])) - centre
    np.testing.assert_allclose(step_z, 5.0 * normal[::-1], atol=1e-9)
    geometric = grid_from_ismrmrd(
        position, read, phase, normal, (256.0, 192.0), (128, 96, 4), 5.0, "geometric"
    )
    np.testing.assert_allclose(
        geometric.index_to_patient(np.array([0.0, 47.5, 63.5])), position[::-1], atol=1e-9
    )


def test_round_trip_patient_index() -> None:
    a = np.eye(4)
    a[:3, :3] = _rotation(np.array([0.2, 1.0, 0.1]), 1.1) @ np.diag([2.0, 3.0, 4.0])
    a[:3, 3] = [1.0, 2.0, 3.0]
    grid = VoxelGrid((3, 4, 5), a)
    idx = np.array([[0.5, 1.25, 3.0], [2.0, 0.0, 4.0]])
    np.testing.assert_allclose(grid.patient_to_index(grid.index_to_patient(idx)), idx, atol=1e-12)


def test_pet_image_grid_adapter_matches_its_voxel_centres() -> None:
    geometry = pytest.importorskip("recon.tof.geometry")
    pet = geometry.ImageGrid.centred((4, 5, 6), (2.78, 2.5, 2.5))
    grid = grid_from_pet_image_grid(pet)
    z, y, x = pet.voxel_centres_mm()
    index = np.stack(np.meshgrid(*[np.arange(n) for n in pet.shape_zyx], indexing="ij"), axis=-1)
    np.testing.assert_allclose(grid.index_to_patient(index), np.stack([z, y, x], axis=-1), atol=1e-9)


def test_field_of_view_mask_of_a_smaller_grid() -> None:
    big = axis_aligned_grid((3, 20, 20), (2.0, 2.0, 2.0), (-2.0, -19.0, -19.0))
    small = axis_aligned_grid((3, 10, 10), (2.0, 2.0, 2.0), (-2.0, -9.0, -9.0))
    mask = field_of_view_mask(small, big)
    assert mask.sum() == 3 * 10 * 10
    assert mask[:, 5:15, 5:15].all()


def test_invalid_grids_rejected() -> None:
    with pytest.raises(ValueError):
        VoxelGrid((2, 2, 2), np.zeros((4, 4)))
    with pytest.raises(ValueError):
        VoxelGrid((0, 2, 2), np.eye(4))
    with pytest.raises(ValueError):
        resample(
            np.zeros((2, 2, 2)),
            axis_aligned_grid((3, 3, 3), (1, 1, 1), (0, 0, 0)),
            axis_aligned_grid((3, 3, 3), (1, 1, 1), (0, 0, 0)),
        )
