"""Per-LOR multiplicative factors and the sensitivity image S = Σ_L m_L A_Lᵀ 1 (non-TOF back projection).

m_L = T · g_L · η_L · att_L: frame duration (s), geometric factor (mm², :mod:`recon.tof.lor_model`),
normalisation η_L = ε₁ε₂ from the crystal efficiencies of a calibration scan, attenuation
att_L = exp(-∫μ dl) from a μ-map on the image grid.  The sum runs over every crystal pair in the
transaxial field of view when there are at most ``max_pairs`` of them (the ``small`` scanner), otherwise over
a uniform random sample of ``max_pairs`` pairs scaled by (all pairs)/(sampled pairs): an unbiased estimate
whose relative noise per voxel is ≈ 1/√(sampled LORs through the voxel): 2·10⁷ pairs of a Signa-like
scanner cross a 2.78 mm voxel ≈ 10³ times, ≈ 3 % (a documented trade-off of time against noise; raise
``max_pairs`` for less).  Cost: one non-TOF forward (μ) and back projection per pair, minutes on 2 CPU
cores for 2·10⁷ pairs, well under a second on a GPU; compute it once per bed position and reuse it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recon.tof.geometry import ScannerGeometry
from recon.tof.lor_model import crystal_table, geometric_factors, pair_chunks
from recon.tof.projector_common import GridLike, KernelChoice, grid_arrays
from recon.tof.projectors import project_back, project_forward


@dataclass(frozen=True)
class LORFactors:
    """Multiplicative model terms of a set of LORs (all (n,) float64 tensors).

    Attributes:
        geometric_mm2: g_L, mm².
        normalisation: η_L = ε₁ε₂ (dimensionless, 1 without efficiencies).
        attenuation: att_L = exp(-∫μ dl) in (0, 1] (1 without a μ-map).
    """

    geometric_mm2: torch.Tensor
    normalisation: torch.Tensor
    attenuation: torch.Tensor

    def multiplicative(self, frame_duration_s: float) -> torch.Tensor:
        """m_L = T·g·η·att (mm²·s)."""
        return frame_duration_s * self.geometric_mm2 * self.normalisation * self.attenuation


def lor_factors(
    scanner: ScannerGeometry,
    grid: GridLike,
    crystal_id_1: torch.Tensor,
    crystal_id_2: torch.Tensor,
    mu_per_mm: torch.Tensor | None,
    efficiencies: torch.Tensor | None,
    kernel: KernelChoice | str = "auto",
) -> LORFactors:
    """g, η and att of the LORs joining ``crystal_id_1`` and ``crystal_id_2`` (on ``mu_per_mm``'s device)."""
    device = crystal_id_1.device
    table = crystal_table(scanner, device)
    start, end = table[crystal_id_1.long().to(device)], table[crystal_id_2.long().to(device)]
    geometric = geometric_factors(scanner, start, end)
    if efficiencies is None:
        normalisation = torch.ones_like(geometric)
    else:
        eff = efficiencies.to(device=device, dtype=torch.float64)
        normalisation = eff[crystal_id_1.long().to(device)] * eff[crystal_id_2.long().to(device)]
    if mu_per_mm is None:
        attenuation = torch.ones_like(geometric)
    else:
        line = project_forward(mu_per_mm.to(torch.float32), start, end, grid, kernel=kernel)
        attenuation = torch.exp(-line.to(torch.float64))
    return LORFactors(geometric, normalisation, attenuation)


def sensitivity_image(
    scanner: ScannerGeometry,
    grid: GridLike,
    frame_duration_s: float,
    mu_per_mm: torch.Tensor | None,
    efficiencies: torch.Tensor | None,
    fov_radius_mm: float,
    max_pairs: int | None,
    rng: np.random.Generator,
    chunk_size: int = 1 << 20,
    kernel: KernelChoice | str = "auto",
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """S (z, y, x) float32 on ``device``: Σ over crystal pairs in the FOV of m_L times the non-TOF LOR weights."""
    shape, _, _ = grid_arrays(grid)
    scale, chunks = pair_chunks(scanner, fov_radius_mm, max_pairs, chunk_size, rng)
    mu = None if mu_per_mm is None else mu_per_mm.to(device)
    table = crystal_table(scanner, device)
    sens = torch.zeros(shape, dtype=torch.float32, device=device)
    for c1_np, c2_np in chunks:
        c1 = torch.from_numpy(c1_np).to(device)
        c2 = torch.from_numpy(c2_np).to(device)
        factors = lor_factors(scanner, grid, c1, c2, mu, efficiencies, kernel)
        weights = factors.multiplicative(frame_duration_s).to(torch.float32)
        sens += project_back(weights, table[c1.long()], table[c2.long()], grid, kernel=kernel).to(device)
    return sens * float(scale)
