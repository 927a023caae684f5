"""Tissue classes on the synthetic torso: Dice per class, filled body outline, optional bone."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import AIR, FAT, LUNG, SOFT, Torso, make_torso, simulate_echoes

from recon.petmr_ac.dixon_multi_echo import separate_multi_echo
from recon.petmr_ac.fat_model import larmor_frequency_hz
from recon.petmr_ac.tissue import SegmentationSettings, TissueClass, dice, segment_tissues


def test_label_values_match_the_phantom_convention() -> None:
    assert (TissueClass.AIR, TissueClass.LUNG, TissueClass.FAT, TissueClass.SOFT_TISSUE) == (
        AIR,
        LUNG,
        FAT,
        SOFT,
    )


def test_dice_at_least_0p9_after_dixon_separation(torso: Torso) -> None:
    t = np.array((1.2e-3, 2.4e-3, 3.6e-3))
    echoes = simulate_echoes(torso, t, 1.5, 0.03, np.random.default_rng(7))
    result = separate_multi_echo(echoes, t, larmor_frequency_hz(1.5), torso.voxel_size_mm)
    seg = segment_tissues(result.water, result.fat, torso.voxel_size_mm)
    for label in (LUNG, FAT, SOFT):
        assert dice(seg.labels == label, torso.labels == label) >= 0.9, label
    assert seg.bone_source == "none"
    assert not np.any(seg.labels == TissueClass.BONE)


def test_body_outline_has_holes_filled_and_small_holes_are_soft_tissue() -> None:
    torso = make_torso(n_z=3)
    water = torso.water.copy()
    water[:, 40:42, 30:32] = 0.0  # a 2×2×3 voxel signal void: 0.45 ml, not lung
    seg = segment_tissues(water, torso.fat, torso.voxel_size_mm)
    assert np.all(seg.body_mask[torso.labels > 0])
    assert np.all(seg.labels[:, 40:42, 30:32] == TissueClass.SOFT_TISSUE)
    strict = segment_tissues(
        water,
        torso.fat,
        torso.voxel_size_mm,
        SegmentationSettings(signal_threshold_fraction=0.15, min_lung_volume_ml=0.1),
    )
    assert np.all(strict.labels[:, 40:42, 30:32] == TissueClass.LUNG)


def test_bone_from_optional_input() -> None:
    torso = make_torso(n_z=2)
    bone = np.zeros_like(torso.labels, dtype=bool)
    bone[:, 50:54, 36:44] = True  # a "spine" in soft tissue, plus air voxels outside the body
    bone[:, 0:2, 0:2] = True
    seg = segment_tissues(torso.water, torso.fat, torso.voxel_size_mm, bone_mask=bone, bone_source="ute")
    assert seg.bone_source == "ute"
    assert np.all(seg.labels[:, 50:54, 36:44] == TissueClass.BONE)
    assert np.all(seg.labels[:, 0:2, 0:2] == TissueClass.AIR)
    with pytest.raises(ValueError):
        segment_tissues(
            torso.water,
            torso.fat,
            torso.voxel_size_mm,
            bone_mask=bone,
            bone_source="guess",
        )


def test_dice_definition() -> None:
    a = np.array([1, 1, 0, 0], bool)
    assert dice(a, np.array([1, 0, 0, 0], bool)) == pytest.approx(2 / 3)
    assert dice(np.zeros(3, bool), np.zeros(3, bool)) == 1.0
