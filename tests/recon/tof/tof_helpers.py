"""Small LOR sets and grids for the TOF reconstruction tests (built here, independent of the simulator)."""

from __future__ import annotations

import numpy as np
import torch

from recon.tof.geometry import ImageGrid, ScannerGeometry
from recon.tof.listmode import ListModeBatch
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


def point_pair_events(
    scanner: ScannerGeometry,
    n_events: int,
    seed: int,
    centre_xyz_mm: tuple[float, float, float],
    radius_mm: float = 0.0,
) -> ListModeBatch:
    """Analytic prompts of a source in air (a ball of ``radius_mm`` around ``centre_xyz_mm``): back-to-back
    photons to the crystals they hit, TOF bin from the true offset plus Gaussian timing error (no projector)."""
    rng = np.random.default_rng(seed)
    m = 4 * n_events
    p = np.asarray(centre_xyz_mm) + radius_mm * rng.uniform(-1, 1, (m, 3))
    u = rng.normal(size=(m, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    r = scanner.detection_radius_mm
    a = u[:, 0] ** 2 + u[:, 1] ** 2
    b = p[:, 0] * u[:, 0] + p[:, 1] * u[:, 1]
    root = np.sqrt(b * b - a * (p[:, 0] ** 2 + p[:, 1] ** 2 - r * r))
    rings, index = [], []
    for sign in (1.0, -1.0):
        hit = p + ((-b + sign * root) / a)[:, None] * u
        angle = np.arctan2(hit[:, 1], hit[:, 0]) / (2 * np.pi) * scanner.n_crystals_per_ring
        index.append(np.rint(angle).astype(np.int64) % scanner.n_crystals_per_ring)
        rings.append(
            np.rint(hit[:, 2] / scanner.ring_spacing_mm + (scanner.n_rings - 1) / 2).astype(np.int64)
        )
    ok = np.all([(rg >= 0) & (rg < scanner.n_rings) for rg in rings], axis=0)
    c1 = (rings[0] * scanner.n_crystals_per_ring + index[0])[ok][:n_events]
    c2 = (rings[1] * scanner.n_crystals_per_ring + index[1])[ok][:n_events]
    table = scanner.crystal_positions_mm().astype(np.float64)
    direction = table[c2] - table[c1]
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    offset = np.sum((p[ok][:n_events] - 0.5 * (table[c1] + table[c2])) * direction, axis=1)
    d = offset + rng.normal(0, scanner.tof_sigma_mm(), c1.size)
    k = scanner.max_tof_bin
    bins = np.clip(np.rint(d / scanner.tof_bin_width_mm()), -k, k).astype(np.int16)
    return ListModeBatch(
        c1.astype(np.int32),
        c2.astype(np.int32),
        bins,
        np.ones(c1.size, bool),
        np.linspace(0, 9999, c1.size).astype(np.uint32),
        scanner.name,
        0,
        True,
    )
