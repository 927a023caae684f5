"""Physics building blocks of the PET simulator against closed-form results."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from hardware_sim.pet.detector import detect_photons
from hardware_sim.pet.phantoms import nema_iec_phantom
from hardware_sim.pet.physics import (
    compton_energy_kev,
    isotropic_directions,
    klein_nishina_total_relative,
    partner_directions,
    positron_range_offsets_mm,
    sample_klein_nishina_cos,
)
from hardware_sim.pet.raytrace import MuMap
from recon.tof.geometry import small_test_scanner


def test_compton_kinematics_and_klein_nishina_cross_section() -> None:
    # back-scatter of a 511 keV photon leaves m_e c² / 3
    assert compton_energy_kev(np.array([511.0]), np.array([-1.0]))[0] == pytest.approx(511.0 / 3.0)
    # Thomson limit: σ_KN(511 keV) / σ_T = 0.4313 (k = 1), so σ(E -> 0) / σ(511) = 1 / 0.4313
    assert klein_nishina_total_relative(np.array([1e-3]))[0] == pytest.approx(1.0 / 0.4313, rel=2e-3)
    assert klein_nishina_total_relative(np.array([511.0]))[0] == pytest.approx(1.0)


def test_klein_nishina_angles_follow_the_differential_cross_section() -> None:
    rng = np.random.default_rng(1)
    cos_theta = sample_klein_nishina_cos(np.full(200_000, 511.0), rng)
    edges = np.linspace(-1.0, 1.0, 41)
    grid = np.linspace(-1.0, 1.0, 40_001)
    ratio = 1.0 / (2.0 - grid)  # E'/E at 511 keV
    density = ratio**2 * (ratio + 1.0 / ratio - (1.0 - grid**2))
    cumulative = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2 * np.diff(grid))])
    expected = np.diff(np.interp(edges, grid, cumulative / cumulative[-1])) * cos_theta.size
    observed, _ = np.histogram(cos_theta, edges)
    chi2 = np.sum((observed - expected) ** 2 / expected)
    assert stats.chi2.sf(chi2, df=39) > 1e-3


def test_positron_range_and_non_collinearity() -> None:
    rng = np.random.default_rng(2)
    offsets = positron_range_offsets_mm(100_000, 0.6, rng)
    assert np.linalg.norm(offsets, axis=1).mean() == pytest.approx(0.6, rel=0.02)
    first = isotropic_directions(100_000, rng)
    fwhm = np.deg2rad(0.5)
    second = partner_directions(first, fwhm, rng)
    np.testing.assert_allclose(np.linalg.norm(second, axis=1), 1.0, atol=1e-12)
    deviation = np.arccos(np.clip(-np.einsum("ij,ij->i", first, second), -1, 1))
    # the 2-D deviation of two Gaussian components has a Rayleigh magnitude: E[θ²] = 2σ²
    sigma = fwhm / 2.3548
    assert np.sqrt(np.mean(deviation**2) / 2.0) == pytest.approx(sigma, rel=0.02)


def test_woodcock_tracking_matches_exact_line_integrals() -> None:
    phantom = nema_iec_phantom(voxel_size_mm=4.0)
    mu_map = MuMap(phantom.grid, phantom.mu_per_cm)
    rng = np.random.default_rng(3)
    n = 40_000
    origins = np.stack([rng.uniform(-100, 100, n), rng.uniform(-100, 60, n), rng.uniform(-80, 80, n)], axis=1)
    directions = isotropic_directions(n, rng)
    total = mu_map.line_integrals(origins, directions)
    stops = mu_map.track(origins, directions, np.ones(n), rng)
    escaped = ~np.isfinite(stops)
    survival = np.exp(-total)
    z = (escaped.sum() - survival.sum()) / np.sqrt(np.sum(survival * (1 - survival)))
    assert abs(z) < 4.0
    # optical depth at the interaction point: Exp(1) truncated at the total integral (PIT uniform)
    hit = ~escaped
    rest = mu_map.line_integrals(origins[hit] + directions[hit] * stops[hit, None], directions[hit])
    depth = total[hit] - rest
    pit = (1.0 - np.exp(-depth)) / (1.0 - np.exp(-total[hit]))
    assert stats.kstest(pit, "uniform").pvalue > 1e-3


def test_voxel_walk_matches_the_body_chords() -> None:
    phantom = nema_iec_phantom(voxel_size_mm=2.0)
    inside = (phantom.labels > 0) & ~phantom.label_mask("table")
    mu_map = MuMap(phantom.grid, np.where(inside, np.float32(0.1), np.float32(0.0)).astype(np.float32))
    # from the centre: anterior (-y) to the outer wall at 147 mm, left (+x) to 150 mm, along z to 93 mm
    origins = np.zeros((3, 3))
    directions = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    expected = 0.01 * np.array([147.0, 150.0, 93.0])
    np.testing.assert_allclose(mu_map.line_integrals(origins, directions), expected, atol=0.01 * 2.0)


def test_radial_photons_hit_the_crystal_they_point_at() -> None:
    scanner = small_test_scanner()
    rng = np.random.default_rng(5)
    crystal = rng.integers(0, scanner.n_crystals, 5000)
    target = scanner.crystal_positions_mm()[crystal].astype(np.float64)
    origin = target * np.array([0.0, 0.0, 1.0])  # on the axis at the crystal's z: radial flight
    direction = target - origin
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    ones = np.ones(scanner.n_crystals, np.float32)
    detection = detect_photons(scanner, origin, direction, np.full(5000, 511.0), ones, rng)
    detected = detection.crystal_id >= 0
    np.testing.assert_array_equal(detection.crystal_id[detected], crystal[detected])
    # intrinsic efficiency of 20 mm LSO at 511 keV: 1 - exp(-0.087 * 20) ≈ 0.82 (energy window ~1)
    assert detected.mean() == pytest.approx(1 - np.exp(-0.087 * 20.0), abs=0.03)
