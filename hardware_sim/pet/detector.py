"""Photon detection in the crystal rings: hit point, depth of interaction, crystal, efficiency, energy.

A photon leaving the body at ``origin`` along ``direction`` enters the detector cylinder (radius
``ring_radius_mm``), penetrates an exponential depth (crystal attenuation length) along its own path
and interacts at that point if it is still inside the crystal layer; the crystal is the one whose
angular and axial cell contains the interaction point (parallax included), photons that land in the
gaps between crystals or pass through are lost.  A detected photon is kept with the crystal's
efficiency, and its energy, blurred by the energy resolution, must fall in the energy window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon.tof.geometry import FWHM_PER_SIGMA, ScannerGeometry

#: Linear attenuation coefficient of LSO/LBS at 511 keV, 1/mm (≈ 0.87 /cm).
SCINTILLATOR_MU_PER_MM = 0.087


@dataclass(frozen=True)
class Detection:
    """Result of detecting a set of photons (all arrays ``(n,)``).

    Attributes:
        crystal_id: crystal of the interaction, int32; -1 when the photon was not detected.
        path_mm: path length from the photon's ``origin`` to its interaction point, float64, mm.
    """

    crystal_id: np.ndarray
    path_mm: np.ndarray


def true_crystal_efficiencies(
    scanner: ScannerGeometry, rng: np.random.Generator, spread: float = 0.08
) -> np.ndarray:
    """Ground-truth crystal efficiencies in (0, 1], ``(n_crystals,)`` float32: a lognormal crystal
    factor (``spread`` = σ of its log) times a block pattern (edge crystals of 4 x 4 blocks 8 % lower)."""
    crystal = np.exp(rng.normal(0.0, spread, scanner.n_crystals))
    ring, index = scanner.ring_and_index(np.arange(scanner.n_crystals))
    block_edge = (index % 4 == 0) | (index % 4 == 3) | (ring % 4 == 0) | (ring % 4 == 3)
    efficiency = 0.9 * crystal * np.where(block_edge, 0.92, 1.0)
    return np.clip(efficiency, 0.05, 1.0).astype(np.float32)


def _cylinder_entry_mm(origin: np.ndarray, direction: np.ndarray, radius_mm: float) -> np.ndarray:
    """Distance along each ray from ``origin`` (inside the cylinder) to the cylinder of ``radius_mm``."""
    a = direction[:, 0] ** 2 + direction[:, 1] ** 2
    b = origin[:, 0] * direction[:, 0] + origin[:, 1] * direction[:, 1]
    c = origin[:, 0] ** 2 + origin[:, 1] ** 2 - radius_mm**2
    with np.errstate(divide="ignore", invalid="ignore"):
        distance = (-b + np.sqrt(np.maximum(b * b - a * c, 0.0))) / a
    return np.where(a > 1e-12, distance, np.inf)


def _crystal_of_points(scanner: ScannerGeometry, points: np.ndarray) -> np.ndarray:
    """Crystal id of interaction points ``(n, 3)`` inside the crystal layer; -1 in gaps or outside."""
    n_per_ring = scanner.n_crystals_per_ring
    azimuth = np.arctan2(points[:, 1], points[:, 0])
    position = azimuth * (n_per_ring / (2.0 * np.pi))
    index = np.rint(position)
    half_width_cells = scanner.crystal_size_mm[0] / 2.0 * n_per_ring / (2.0 * np.pi * scanner.ring_radius_mm)
    in_crystal = np.abs(position - index) <= half_width_cells
    ring_position = points[:, 2] / scanner.ring_spacing_mm + (scanner.n_rings - 1) / 2.0
    ring = np.rint(ring_position)
    in_crystal &= np.abs(ring_position - ring) * scanner.ring_spacing_mm <= scanner.crystal_size_mm[1] / 2.0
    in_crystal &= (ring >= 0) & (ring < scanner.n_rings)
    crystal = ring.astype(np.int64) * n_per_ring + (index.astype(np.int64) % n_per_ring)
    return np.where(in_crystal, crystal, -1).astype(np.int32)


def detect_photons(
    scanner: ScannerGeometry,
    origin_mm: np.ndarray,
    direction: np.ndarray,
    energy_kev: np.ndarray,
    efficiencies: np.ndarray,
    rng: np.random.Generator,
) -> Detection:
    """Detect photons leaving ``origin_mm`` (inside the bore) along ``direction`` with ``energy_kev``."""
    n = origin_mm.shape[0]
    entry = _cylinder_entry_mm(origin_mm, direction, scanner.ring_radius_mm)
    depth = rng.exponential(1.0 / SCINTILLATOR_MU_PER_MM, n)
    path = entry + depth
    points = origin_mm + direction * np.where(np.isfinite(path), path, 0.0)[:, None]
    radius = np.hypot(points[:, 0], points[:, 1])
    inside_layer = np.isfinite(path) & (radius <= scanner.ring_radius_mm + scanner.crystal_size_mm[2])
    crystal = np.where(inside_layer, _crystal_of_points(scanner, points), -1)
    hit = crystal >= 0
    kept = hit & (rng.random(n) < efficiencies[np.maximum(crystal, 0)])
    sigma_fraction = scanner.energy_resolution_percent / 100.0 / FWHM_PER_SIGMA * np.sqrt(511.0 / energy_kev)
    measured_kev = energy_kev * (1.0 + sigma_fraction * rng.standard_normal(n))
    low, high = scanner.energy_window_kev
    kept &= (measured_kev >= low) & (measured_kev <= high)
    return Detection(np.where(kept, crystal, -1).astype(np.int32), path)
