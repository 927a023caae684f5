"""The fused numba transport kernel against the readable numpy reference (statistical agreement)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from hardware_sim.pet.detector import true_crystal_efficiencies
from hardware_sim.pet.kernels import DetectorArrays, emit_photon_pairs, transport_photons_fast
from hardware_sim.pet.phantoms import nema_iec_phantom
from hardware_sim.pet.physics import isotropic_directions
from hardware_sim.pet.raytrace import MuMap
from hardware_sim.pet.transport import TransportModel, transport_photons
from recon.tof.geometry import signa_like


def _two_proportions(a: np.ndarray, b: np.ndarray) -> float:
    pooled = (a.sum() + b.sum()) / (a.size + b.size)
    return float((a.mean() - b.mean()) / np.sqrt(pooled * (1 - pooled) * (1 / a.size + 1 / b.size)))


def test_fused_kernel_agrees_with_the_numpy_reference() -> None:
    scanner = signa_like()
    phantom = nema_iec_phantom(voxel_size_mm=4.0)
    mu_map = MuMap(phantom.grid, phantom.mu_per_cm)
    efficiencies = true_crystal_efficiencies(scanner, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    n = 150_000
    origins = np.stack([rng.uniform(-90, 90, n), rng.uniform(-90, 50, n), rng.uniform(-80, 80, n)], axis=1)
    directions = isotropic_directions(n, rng)
    reference = transport_photons(
        TransportModel(scanner, mu_map, efficiencies, True), origins, directions, rng
    )
    crystal, path, scattered = transport_photons_fast(
        origins, directions, mu_map, DetectorArrays.of(scanner, efficiencies), True, rng
    )
    for fast, slow in (
        (crystal >= 0, reference.crystal_id >= 0),
        (scattered, reference.scattered),
        ((crystal >= 0) & ~scattered, (reference.crystal_id >= 0) & ~reference.scattered),
    ):
        assert abs(_two_proportions(fast, slow)) < 4.0
    # the unscattered photons of both land in the same crystals (identical geometry, independent noise)
    same = (crystal >= 0) & ~scattered & (reference.crystal_id >= 0) & ~reference.scattered
    # (up to depth-of-interaction parallax: a few crystals for these oblique paths)
    n_ring = scanner.n_crystals_per_ring
    index_step = (
        crystal[same] % n_ring - reference.crystal_id[same] % n_ring + n_ring // 2
    ) % n_ring - n_ring // 2
    ring_step = crystal[same] // n_ring - reference.crystal_id[same] // n_ring
    assert np.percentile(np.abs(index_step), 99) <= 4 and np.percentile(np.abs(ring_step), 99) <= 3
    # ring distribution of detected photons and mean flight path agree
    rings_fast = np.bincount(crystal[crystal >= 0] // scanner.n_crystals_per_ring, minlength=scanner.n_rings)
    rings_slow = np.bincount(
        reference.crystal_id[reference.crystal_id >= 0] // scanner.n_crystals_per_ring,
        minlength=scanner.n_rings,
    )
    table = np.stack([rings_fast, rings_slow])
    assert stats.chi2_contingency(table[:, table.sum(axis=0) > 0])[1] > 1e-3
    fast_path, slow_path = path[crystal >= 0], reference.path_mm[reference.crystal_id >= 0]
    assert abs(fast_path.mean() - slow_path.mean()) < 4 * np.sqrt(
        fast_path.var() / fast_path.size + slow_path.var() / slow_path.size
    )


def test_fused_emission_matches_the_physics_distributions() -> None:
    rng = np.random.default_rng(7)
    n = 100_000
    positions = rng.uniform(-50, 50, (n, 3))
    cones = rng.uniform(0.2, 1.0, n)
    fwhm = np.deg2rad(0.5)
    origins, directions = emit_photon_pairs(positions, cones, 0.6, fwhm, rng)
    np.testing.assert_array_equal(origins[:n], origins[n:])
    np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1.0, atol=1e-12)
    assert np.linalg.norm(origins[:n] - positions, axis=1).mean() == pytest.approx(0.6, rel=0.02)
    # first photons: uniform in u_z within each cone (u_z / cone ~ U(-1, 1))
    assert np.all(np.abs(directions[:n, 2]) <= cones + 1e-12)
    assert stats.kstest(directions[:n, 2] / cones, "uniform", args=(-1, 2)).pvalue > 1e-3
    deviation = np.arccos(np.clip(-np.einsum("ij,ij->i", directions[:n], directions[n:]), -1, 1))
    assert np.sqrt(np.mean(deviation**2) / 2.0) == pytest.approx(fwhm / 2.3548, rel=0.02)
