"""Random streams of the parallel simulator kernels: distributions, independence, thread-count invariance."""

from __future__ import annotations

import numba
import numpy as np
from scipy import stats

from hardware_sim.pet.detector import true_crystal_efficiencies
from hardware_sim.pet.emission import alias_table
from hardware_sim.pet.kernels import DetectorArrays, emit_photon_pairs, transport_photons_fast
from hardware_sim.pet.phantoms import nema_iec_phantom
from hardware_sim.pet.raytrace import MuMap
from hardware_sim.pet.rng_kernel import exponential, spawn_streams, standard_normal, uniform
from recon.tof.geometry import signa_like


@numba.njit(cache=True)
def _draw(states: np.ndarray, n: int) -> np.ndarray:
    out = np.empty((3, states.shape[0], n))
    for k in range(states.shape[0]):
        for i in range(n):
            out[0, k, i] = uniform(states, k)
            out[1, k, i] = exponential(states, k)
            out[2, k, i] = standard_normal(states, k)
    return out


def test_deviates_follow_their_distributions() -> None:
    draws = _draw(spawn_streams(np.random.default_rng(0), 4), 250_000)
    u, e, z = (d.ravel() for d in draws)
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert stats.kstest(e, "expon").pvalue > 1e-3
    assert stats.kstest(z, "norm").pvalue > 1e-3
    # the tails (ziggurat base layers) carry the right mass: P(E > 8) = e^-8, P(|Z| > 3.7) = 2.2e-4
    assert abs((e > 8.0).mean() / np.exp(-8.0) - 1.0) < 0.25
    assert abs((np.abs(z) > 3.7).mean() / (2 * stats.norm.sf(3.7)) - 1.0) < 0.25


def test_streams_are_uncorrelated_and_reproducible() -> None:
    a = _draw(spawn_streams(np.random.default_rng(5), 8), 20_000)[0]
    b = _draw(spawn_streams(np.random.default_rng(5), 8), 20_000)[0]
    np.testing.assert_array_equal(a, b)
    correlation = np.corrcoef(a)
    off_diagonal = correlation[~np.eye(8, dtype=bool)]
    assert np.abs(off_diagonal).max() < 5.0 / np.sqrt(20_000)


def test_kernels_give_the_same_photons_with_any_thread_count() -> None:
    scanner = signa_like()
    phantom = nema_iec_phantom(voxel_size_mm=4.0)
    mu_map = MuMap(phantom.grid, phantom.mu_per_cm)
    detector = DetectorArrays.of(scanner, true_crystal_efficiencies(scanner, np.random.default_rng(0)))
    positions = np.random.default_rng(1).uniform(-60, 60, (20_000, 3))
    results = []
    previous = numba.get_num_threads()
    try:
        for threads in (1, numba.config.NUMBA_NUM_THREADS):  # type: ignore[attr-defined]
            numba.set_num_threads(threads)
            rng = np.random.default_rng(2)
            origins, directions = emit_photon_pairs(positions, np.full(20_000, 0.8), 0.6, 0.0087, rng)
            results.append(
                (origins, *transport_photons_fast(origins, directions, mu_map, detector, True, rng))
            )
    finally:
        numba.set_num_threads(previous)
    for one, many in zip(*results, strict=True):
        np.testing.assert_array_equal(one, many)


def test_alias_table_reproduces_the_voxel_rates_exactly() -> None:
    rng = np.random.default_rng(3)
    for weights in (rng.random(5000) ** 4, np.r_[np.zeros(10), 1.0, np.full(5, 0.01)], np.ones(7)):
        keep, alias = alias_table(weights)
        m = weights.shape[0]
        probability = keep / m + np.bincount(alias, weights=(1.0 - keep) / m, minlength=m)
        np.testing.assert_allclose(probability, weights / weights.sum(), rtol=0, atol=1e-12)
