"""LORs of a cylindrical scanner: endpoints, the detector pairs in coincidence, and geometric factors.

Geometric factor of a crystal pair (the LOR's "étendue" over 2π, a constant along the LOR for points
between the crystals): for crystal faces of area a = (transaxial × axial crystal size) seen under
incidence cosines γ₁, γ₂ at distance D, the pair detects an emission on the LOR tube with probability
density (per unit length, integrated over the tube's cross-section)

    g = a·γ₁ · a·γ₂ / (2π D²)  · ε(γ₁) · ε(γ₂)     [mm²]

where ε(γ) = 1 - exp(-μ_scint·depth/γ) is the probability that a photon entering the crystal obliquely
interacts in it.  With the Joseph line integral (mm) of an activity image in Bq/mm³, g·T·(A x) is then an
expected number of counts.  Crystal efficiencies (normalisation) and attenuation multiply on top.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from recon.tof.geometry import ScannerGeometry

SCINTILLATOR_MU_PER_MM = 0.087
"""Linear attenuation of LSO/LBS at 511 keV, 1/mm (textbook ≈ 0.87 /cm), for the penetration factor."""


def crystal_table(scanner: ScannerGeometry, device: torch.device | str = "cpu") -> torch.Tensor:
    """LOR endpoint of every crystal, (n_crystals, 3) float32, scanner (x, y, z) mm."""
    return torch.from_numpy(scanner.crystal_positions_mm()).to(device)


def event_endpoints(
    table: torch.Tensor, crystal_id_1: torch.Tensor, crystal_id_2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(start, end) endpoints (n, 3) of events given by crystal ids (any integer dtype)."""
    return table[crystal_id_1.long()], table[crystal_id_2.long()]


def geometric_factors(scanner: ScannerGeometry, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """g of each LOR (see the module docstring), (n,) float64, mm²."""
    d = (end - start).to(torch.float64)
    length = torch.linalg.vector_norm(d, dim=1)
    u = d / length[:, None]
    factors = []
    for point in (start, end):
        radial = point[:, :2].to(torch.float64)
        normal = radial / torch.linalg.vector_norm(radial, dim=1, keepdim=True)
        gamma = (u[:, :2] * normal).sum(dim=1).abs().clamp_min(1e-3)
        penetration = 1.0 - torch.exp(-SCINTILLATOR_MU_PER_MM * scanner.crystal_size_mm[2] / gamma)
        factors.append(gamma * penetration)
    area = scanner.crystal_size_mm[0] * scanner.crystal_size_mm[1]
    return area * area * factors[0] * factors[1] / (2.0 * math.pi * length**2)


def in_fov_pairs_mask(
    scanner: ScannerGeometry, crystal_id_1: np.ndarray, crystal_id_2: np.ndarray, fov_radius_mm: float
) -> np.ndarray:
    """True where the pair's LOR passes within ``fov_radius_mm`` of the axis (transaxially)."""
    n = scanner.n_crystals_per_ring
    half_angle = np.pi * ((crystal_id_1 % n) - (crystal_id_2 % n)) / n
    return (crystal_id_1 != crystal_id_2) & (
        np.abs(np.cos(half_angle)) <= fov_radius_mm / scanner.detection_radius_mm
    )


def n_pairs(scanner: ScannerGeometry, fov_radius_mm: float) -> int:
    """Number of crystal pairs (c₁ < c₂) whose LOR passes within ``fov_radius_mm``."""
    n = scanner.n_crystals_per_ring
    d = np.arange(n)
    per_ring_pair = int(
        np.count_nonzero(np.abs(np.cos(np.pi * d / n)) <= fov_radius_mm / scanner.detection_radius_mm)
    )
    # ordered transaxial differences per (ring1, ring2) combination, halved for unordered pairs
    return per_ring_pair * n * scanner.n_rings * scanner.n_rings // 2


def pair_chunks(
    scanner: ScannerGeometry,
    fov_radius_mm: float,
    max_pairs: int | None,
    chunk_size: int,
    rng: np.random.Generator,
) -> tuple[float, list[tuple[np.ndarray, np.ndarray]]]:
    """Crystal pairs in the FOV, all of them or a uniform random sample of ``max_pairs``, in chunks.

    Returns ``(scale, chunks)`` where ``scale`` = (number of pairs)/(number returned), the factor that turns
    a sum over the returned pairs into an unbiased estimate of the sum over all pairs.
    """
    total = n_pairs(scanner, fov_radius_mm)
    n_crystals = scanner.n_crystals
    if max_pairs is None or total <= max_pairs:
        ids = np.arange(n_crystals, dtype=np.int64)
        c1, c2 = np.triu_indices(n_crystals, k=1) if n_crystals <= 4096 else _all_pairs_blockwise(ids)
        keep = in_fov_pairs_mask(scanner, c1, c2, fov_radius_mm)
        c1, c2 = c1[keep], c2[keep]
    else:
        c1 = np.asarray(rng.integers(0, n_crystals, int(max_pairs * 1.5) + 16))
        c2 = np.asarray(rng.integers(0, n_crystals, c1.shape[0]))
        keep = in_fov_pairs_mask(scanner, c1, c2, fov_radius_mm)
        c1, c2 = c1[keep][:max_pairs], c2[keep][:max_pairs]
    scale = total / max(1, c1.shape[0])
    chunks = [
        (c1[i : i + chunk_size].astype(np.int32), c2[i : i + chunk_size].astype(np.int32))
        for i in range(0, c1.shape[0], chunk_size)
    ]
    return scale, chunks


def _all_pairs_blockwise(
    ids: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - large scanners
    raise ValueError(f"enumerating all pairs of {ids.shape[0]} crystals is too large; give max_pairs")
