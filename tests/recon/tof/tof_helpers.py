"""Small LOR sets and grids for the TOF reconstruction tests (built here, independent of the simulator)."""

from __future__ import annotations

import numpy as np
import torch

from recon.tof.geometry import ImageGrid
from recon.tof.tof_kernel import TOFParameters

SMALL_GRID = ImageGrid.centred((6, 18, 22), (3.0, 2.5, 2.0))
"""A deliberately anisotropic, non-square grid so that axis mix-ups show."""

SMALL_TOF = TOFParameters(sigma_mm=9.0, bin_width_mm=5.0, n_tof_bins=15)
"""σ, Δ and K chosen so that the ±3σ window and both clipped edge bins are exercised on SMALL_GRID."""


def random_ring_lors(
    n_events: int, seed: int, radius_mm: float = 60.0, half_length_mm: float = 12.0, n_tof_bins: int = 15
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random LORs between points on a cylinder (some cross the image, some miss it) and random TOF bins."""
    rng = np.random.default_rng(seed)
    phi1 = rng.uniform(0.0, 2 * np.pi, n_events)
    phi2 = phi1 + rng.uniform(0.3, 2 * np.pi - 0.3, n_events)
    z1 = rng.uniform(-half_length_mm, half_length_mm, n_events)
    z2 = rng.uniform(-half_length_mm, half_length_mm, n_events)
    start = np.stack([radius_mm * np.cos(phi1), radius_mm * np.sin(phi1), z1], axis=1)
    end = np.stack([radius_mm * np.cos(phi2), radius_mm * np.sin(phi2), z2], axis=1)
    k = n_tof_bins // 2
    bins = rng.integers(-k, k + 1, n_events)
    return (
        torch.tensor(start, dtype=torch.float32),
        torch.tensor(end, dtype=torch.float32),
        torch.tensor(bins, dtype=torch.int16),
    )


def steep_axial_lors(n_events: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """LORs whose dominant axis is z (steeper than 45° axially), so all three sweep directions are covered."""
    rng = np.random.default_rng(seed)
    xy1 = rng.uniform(-15, 15, (n_events, 2))
    xy2 = rng.uniform(-15, 15, (n_events, 2))
    start = np.concatenate([xy1, np.full((n_events, 1), -40.0)], axis=1)
    end = np.concatenate([xy2, np.full((n_events, 1), 40.0)], axis=1)
    return torch.tensor(start, dtype=torch.float32), torch.tensor(end, dtype=torch.float32)
