"""Crystal efficiencies from a normalisation (calibration) scan of a phantom of known activity and μ-map.

The expected prompts of pair (i, j) in the scan are εᵢεⱼ·E_ij with E_ij = T·g·att·(A x_known) from the
reconstruction's own model (known phantom, ε = 1).  The crystal count Cᵢ = Σ_j (prompts of pairs with
crystal i) then satisfies Cᵢ ≈ εᵢ·Σ_j E_ij εⱼ, solved by the damped fixed-point iteration
εᵢ ← √(εᵢ·Cᵢ/Σ_j E_ij εⱼ) (the fan-sum method with a model instead of symmetry).  Randoms and scatter,
smooth over the crystals, enter Cᵢ as a near-uniform fraction, which only rescales ε; the result is
normalised to mean 1 (the absolute scale belongs to the cross-calibration factor).  Statistical noise:
≈ 1/√Cᵢ per crystal.
"""

from __future__ import annotations

import numpy as np
import torch

from recon.tof.geometry import ScannerGeometry
from recon.tof.lor_model import crystal_table, pair_chunks
from recon.tof.projector_common import GridLike, KernelChoice
from recon.tof.projectors import project_forward
from recon.tof.sensitivity import lor_factors


def pair_expectations(
    scanner: ScannerGeometry,
    grid: GridLike,
    activity_bq_per_mm3: torch.Tensor,
    mu_per_mm: torch.Tensor | None,
    frame_duration_s: float,
    fov_radius_mm: float,
    kernel: KernelChoice | str = "auto",
    chunk_size: int = 1 << 20,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(c1, c2, E) over all crystal pairs in the FOV: expected trues of each pair with unit efficiencies."""
    _, chunks = pair_chunks(scanner, fov_radius_mm, None, chunk_size, np.random.default_rng(0))
    table = crystal_table(scanner, activity_bq_per_mm3.device)
    out_e = []
    for c1_np, c2_np in chunks:
        c1 = torch.from_numpy(c1_np).to(activity_bq_per_mm3.device)
        c2 = torch.from_numpy(c2_np).to(activity_bq_per_mm3.device)
        f = lor_factors(scanner, grid, c1, c2, mu_per_mm, None, kernel)
        line = project_forward(activity_bq_per_mm3, table[c1.long()], table[c2.long()], grid, kernel=kernel)
        out_e.append((f.multiplicative(frame_duration_s) * line.to(torch.float64)).cpu().numpy())
    c1_all = np.concatenate([c[0] for c in chunks])
    c2_all = np.concatenate([c[1] for c in chunks])
    return c1_all, c2_all, np.concatenate(out_e)


def estimate_crystal_efficiencies(
    scanner: ScannerGeometry,
    prompt_1: np.ndarray,
    prompt_2: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
    n_iterations: int = 30,
) -> np.ndarray:
    """ε (n_crystals,) float32, mean 1, from the prompts of a normalisation scan and :func:`pair_expectations`."""
    n = scanner.n_crystals
    counts = (np.bincount(prompt_1, minlength=n) + np.bincount(prompt_2, minlength=n)).astype(np.float64)
    c1, c2, expected = pairs
    eps = np.ones(n)
    for _ in range(n_iterations):
        fan = np.bincount(c1, weights=expected * eps[c2], minlength=n) + np.bincount(
            c2, weights=expected * eps[c1], minlength=n
        )
        eps = np.sqrt(eps * counts / np.maximum(fan, 1e-30))
    eps = np.where(counts > 0, eps, 0.0)
    return (eps / eps[eps > 0].mean()).astype(np.float32)
