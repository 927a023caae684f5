"""A small synthetic torso for the MR-based AC tests: known water, fat, fat fraction, B0 and tissue labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from recon.petmr_ac.fat_model import HAMILTON_LIVER_FAT, fat_signal_factors, larmor_frequency_hz

AIR, LUNG, FAT, SOFT = 0, 1, 2, 3


@dataclass(frozen=True)
class Torso:
    labels: np.ndarray  # (z, y, x) uint8: 0 air, 1 lung, 2 fat, 3 soft tissue
    water: np.ndarray  # (z, y, x) float
    fat: np.ndarray  # (z, y, x) float
    field_map_hz: np.ndarray  # (z, y, x) float
    voxel_size_mm: tuple[float, float, float]

    @property
    def fat_fraction(self) -> np.ndarray:
        total = self.water + self.fat
        return np.where(total > 0, self.fat / np.maximum(total, 1e-12), 0.0)


def ellipse(shape: tuple[int, int], centre: tuple[float, float], radii: tuple[float, float]) -> np.ndarray:
    y, x = np.mgrid[: shape[0], : shape[1]].astype(float)
    return ((y - centre[0]) / radii[0]) ** 2 + ((x - centre[1]) / radii[1]) ** 2 <= 1.0


def make_torso(
    n_z: int = 6, n_y: int = 64, n_x: int = 80, fat_ring_voxels: float = 3.0, b0_scale_hz: float = 60.0
) -> Torso:
    """An elliptic torso with a subcutaneous fat ring, two lungs, a visceral fat blob and soft tissue."""
    cy, cx = n_y / 2, n_x / 2
    body = ellipse((n_y, n_x), (cy, cx), (0.36 * n_y, 0.42 * n_x))
    inner = ellipse((n_y, n_x), (cy, cx), (0.36 * n_y - fat_ring_voxels, 0.42 * n_x - fat_ring_voxels))
    lungs = ellipse((n_y, n_x), (cy - 2, cx - 0.2 * n_x), (0.2 * n_y, 0.1 * n_x)) | ellipse(
        (n_y, n_x), (cy - 2, cx + 0.2 * n_x), (0.2 * n_y, 0.1 * n_x)
    )
    blob = ellipse((n_y, n_x), (cy + 0.22 * n_y, cx), (0.05 * n_y, 0.08 * n_x))
    label2d = np.full((n_y, n_x), AIR, dtype=np.uint8)
    label2d[body] = FAT
    label2d[inner] = SOFT
    label2d[inner & lungs] = LUNG
    label2d[inner & blob & ~lungs] = FAT
    labels = np.repeat(label2d[None], n_z, axis=0)
    water = np.select([labels == SOFT, labels == FAT, labels == LUNG], [0.95, 0.1, 0.02], 0.0)
    fat = np.select([labels == SOFT, labels == FAT, labels == LUNG], [0.05, 0.9, 0.0], 0.0)
    z, y, x = np.meshgrid(
        np.linspace(-1, 1, n_z), np.linspace(-1, 1, n_y), np.linspace(-1, 1, n_x), indexing="ij"
    )
    field = b0_scale_hz * (0.8 * x + 0.5 * y**2 - 0.3 * x * y + 0.2 * z)
    return Torso(labels=labels, water=water, fat=fat, field_map_hz=field, voxel_size_mm=(6.0, 5.0, 5.0))


def simulate_echoes(
    torso: Torso,
    echo_times_s: np.ndarray,
    field_strength_t: float,
    noise_sigma: float,
    rng: np.random.Generator,
    phase0_rad: float = 0.7,
) -> np.ndarray:
    """Echo images (N, z, y, x) complex64 from the multi-peak signal model, with complex Gaussian noise."""
    c = fat_signal_factors(echo_times_s, HAMILTON_LIVER_FAT, larmor_frequency_hz(field_strength_t))
    shape = torso.labels.shape
    phase0 = np.exp(1j * phase0_rad * np.linspace(-1, 1, shape[2]))[None, None, :]
    echoes = []
    for n, t in enumerate(echo_times_s):
        s = (torso.water + c[n] * torso.fat) * phase0 * np.exp(2j * np.pi * torso.field_map_hz * t)
        noise = rng.normal(0, noise_sigma, shape) + 1j * rng.normal(0, noise_sigma, shape)
        echoes.append(s + noise)
    return np.stack(echoes).astype(np.complex64)


@pytest.fixture
def torso() -> Torso:
    return make_torso()
