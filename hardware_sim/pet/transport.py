"""Transport of annihilation photons from the annihilation point to a crystal.

Each photon is tracked through the μ-map (Woodcock tracking, survival ``exp(-∫μ)``) to its first
interaction.  A photon that interacts Compton-scatters once (Klein–Nishina angle, Compton energy,
μ scaled by the Klein–Nishina cross-section at the new energy), is tracked again, and is lost if it
interacts a second time (single-scatter model; photo-absorption at 511 keV in tissue is neglected).
Photons that leave the body are detected by :func:`hardware_sim.pet.detector.detect_photons`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hardware_sim.pet.detector import detect_photons
from hardware_sim.pet.physics import (
    ELECTRON_REST_KEV,
    compton_energy_kev,
    klein_nishina_total_relative,
    rotate_by_angles,
    sample_klein_nishina_cos,
)
from hardware_sim.pet.raytrace import MuMap
from recon.tof.geometry import ScannerGeometry


@dataclass(frozen=True)
class PhotonFate:
    """Outcome of transporting ``n`` photons.

    Attributes:
        crystal_id: detecting crystal, int32, -1 when lost.
        path_mm: total flight path to the interaction in the crystal, float64, mm (for the arrival time).
        scattered: the photon scattered in the body, bool.
    """

    crystal_id: np.ndarray
    path_mm: np.ndarray
    scattered: np.ndarray


@dataclass(frozen=True)
class TransportModel:
    """What photon transport needs: scanner, μ-map and crystal efficiencies.

    Attributes:
        scanner: the scanner geometry.
        mu_map: attenuation map for tracking; ``None`` means no attenuation.
        efficiencies: true crystal efficiencies in (0, 1], ``(n_crystals,)``.
        scatter: interacting photons scatter once (True) or are absorbed (False).
    """

    scanner: ScannerGeometry
    mu_map: MuMap | None
    efficiencies: np.ndarray
    scatter: bool


def _scatter_and_detect(
    model: TransportModel, points: np.ndarray, directions: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Scatter photons at ``points``; returns crystal ids and path from the scatter point."""
    assert model.mu_map is not None
    n = points.shape[0]
    cos_theta = sample_klein_nishina_cos(np.full(n, ELECTRON_REST_KEV), rng)
    energy = compton_energy_kev(np.full(n, ELECTRON_REST_KEV), cos_theta)
    new_directions = rotate_by_angles(
        directions, np.arccos(cos_theta), np.asarray(rng.uniform(0.0, 2.0 * np.pi, n))
    )
    stops = model.mu_map.track(points, new_directions, klein_nishina_total_relative(energy), rng)
    escaped = ~np.isfinite(stops)
    crystal = np.full(n, -1, np.int32)
    path = np.zeros(n)
    detection = detect_photons(
        model.scanner, points[escaped], new_directions[escaped], energy[escaped], model.efficiencies, rng
    )
    crystal[escaped] = detection.crystal_id
    path[escaped] = detection.path_mm
    return crystal, path


def transport_photons(
    model: TransportModel, origins_mm: np.ndarray, directions: np.ndarray, rng: np.random.Generator
) -> PhotonFate:
    """Transport 511 keV photons from ``origins_mm`` ``(n, 3)`` along unit ``directions`` ``(n, 3)``."""
    n = origins_mm.shape[0]
    crystal = np.full(n, -1, np.int32)
    path = np.zeros(n)
    scattered = np.zeros(n, bool)
    if model.mu_map is None:
        stops = np.full(n, np.inf)
    else:
        stops = model.mu_map.track(origins_mm, directions, np.ones(n), rng)
    escaped = ~np.isfinite(stops)
    energy = np.full(int(escaped.sum()), ELECTRON_REST_KEV)
    detection = detect_photons(
        model.scanner, origins_mm[escaped], directions[escaped], energy, model.efficiencies, rng
    )
    crystal[escaped] = detection.crystal_id
    path[escaped] = detection.path_mm
    if model.scatter and model.mu_map is not None:
        interacted = np.flatnonzero(~escaped)
        points = origins_mm[interacted] + directions[interacted] * stops[interacted, None]
        scatter_crystal, scatter_path = _scatter_and_detect(model, points, directions[interacted], rng)
        crystal[interacted] = scatter_crystal
        path[interacted] = stops[interacted] + scatter_path
        scattered[interacted] = scatter_crystal >= 0
    return PhotonFate(crystal, path, scattered)
