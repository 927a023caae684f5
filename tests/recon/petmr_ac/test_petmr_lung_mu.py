"""Emission-based lung coefficient (recon.petmr_ac.lung_mu).

Tolerances fixed before running: the analytic derivatives match central finite differences of the
log-likelihood to 1e-4 relative; on a Monte-Carlo scan of a water cylinder with two lung inserts of μ 0.030 /cm
(small scanner), the estimate started from the class default 0.018 /cm lands within 0.004 /cm of 0.030.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hardware_sim.pet.config import PETSimulationConfig
from hardware_sim.pet.phantoms import MU_WATER_PER_CM, PETPhantom
from hardware_sim.pet.shapes import OpenGrid, elliptic_cylinder
from hardware_sim.pet.simulator import PETListModeSimulator
from recon.petmr_ac.lung_mu import LikelihoodTerms, LungMuSettings, estimate_lung_mu, next_trial
from recon.tof.geometry import ImageGrid, small_test_scanner
from recon.tof.listmode import concatenate_batches
from recon.tof.reconstruct import ReconstructionParameters

LUNG_MU_PER_CM = 0.030
BODY_RADIUS_MM, HALF_LENGTH_MM = 100.0, 45.0
LUNG_CENTRES_MM, LUNG_SEMI_AXES_MM = ((-48.0, 0.0), (48.0, 0.0)), (38.0, 55.0)


def _random_terms(seed: int) -> LikelihoodTerms:
    rng = np.random.default_rng(seed)
    n_events, n_lors = 500, 2000
    return LikelihoodTerms(
        event_lung_cm=rng.uniform(0.0, 15.0, n_events),
        event_trues=rng.uniform(0.1, 2.0, n_events),
        event_additive=rng.uniform(0.0, 1.0, n_events),
        lor_lung_cm=rng.uniform(0.0, 15.0, n_lors),
        lor_trues=rng.uniform(0.0, 0.5, n_lors),
        lor_scale=3.0,
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_derivatives_match_finite_differences_of_the_log_likelihood(seed: int) -> None:
    terms = _random_terms(seed)
    g, h = terms.derivatives()
    step = 1e-4  # 1/cm
    ll = terms.log_likelihood_change
    g_fd = (ll(step) - ll(-step)) / (2 * step)
    h_fd = (ll(step) - 2 * ll(0.0) + ll(-step)) / step**2
    assert g == pytest.approx(g_fd, rel=1e-4)
    assert h == pytest.approx(h_fd, rel=1e-4)
    assert h < 0  # concave: the Newton step is an ascent step


def test_next_trial_newton_then_secant_within_bounds_and_bracket() -> None:
    settings = LungMuSettings()
    assert next_trial([0.02], [0.001], -1.0, settings) == pytest.approx(0.021)  # Newton
    assert next_trial([0.02], [1e3], -1.0, settings) == settings.max_lung_mu_per_cm  # clipped
    assert next_trial([0.02], [-1.0], 1.0, settings) == settings.min_lung_mu_per_cm  # not concave
    # secant through (0.02, 2) and (0.022, 1): root at 0.024
    assert next_trial([0.02, 0.022], [2.0, 1.0], -1e6, settings) == pytest.approx(0.024)
    # a secant leaving the bracket [0.02, 0.03] of a sign change bisects it
    assert next_trial([0.02, 0.03, 0.029], [1.0, -1.0, -0.99], -1e6, settings) == pytest.approx(0.0245)
    with pytest.raises(ValueError, match="initial_lung_mu_per_cm"):
        LungMuSettings(initial_lung_mu_per_cm=0.1)


def _lungs(grid: ImageGrid) -> np.ndarray:
    g = OpenGrid.of(grid)
    z = (-HALF_LENGTH_MM, HALF_LENGTH_MM)
    return elliptic_cylinder(g, LUNG_CENTRES_MM[0], LUNG_SEMI_AXES_MM, z) | elliptic_cylinder(
        g, LUNG_CENTRES_MM[1], LUNG_SEMI_AXES_MM, z
    )


def _body(grid: ImageGrid) -> np.ndarray:
    return elliptic_cylinder(
        OpenGrid.of(grid), (0.0, 0.0), (BODY_RADIUS_MM,) * 2, (-HALF_LENGTH_MM, HALF_LENGTH_MM)
    )


def _phantom() -> PETPhantom:
    """Water cylinder Ø 200 mm with two elliptic lung inserts (μ 0.030 /cm, a fifth of the activity), 2 mm voxels."""
    grid = ImageGrid.centred((49, 104, 104), (2.0, 2.0, 2.0))
    body, lungs = _body(grid), _lungs(grid)
    activity = np.where(body, 5000.0, 0.0).astype(np.float32)
    activity[lungs] = 1000.0
    mu = np.where(body, MU_WATER_PER_CM, 0.0).astype(np.float32)
    mu[lungs] = LUNG_MU_PER_CM
    labels = body.astype(np.uint8) + lungs.astype(np.uint8)
    return PETPhantom("lung_cylinder", grid, activity, mu, labels, ("air", "water", "lung"), weight_kg=10.0)


def test_lung_coefficient_is_recovered_from_a_monte_carlo_scan() -> None:
    scanner = small_test_scanner()
    sim = PETListModeSimulator(_phantom(), scanner, PETSimulationConfig(n_prompts=150_000, seed=3))
    batch = concatenate_batches(list(sim.batches()))
    info = sim.acquisition_info(crystal_efficiencies=sim.true_efficiencies)
    grid = ImageGrid.for_scanner(scanner, (4.0, 4.0, 4.0))  # coarser than the phantom: no inverse crime
    lung_fraction = _lungs(grid).astype(np.float32)
    mu_rest = np.where(_body(grid) & ~_lungs(grid), MU_WATER_PER_CM, 0.0).astype(np.float32)
    params = ReconstructionParameters(n_subsets=6, max_sensitivity_pairs=300_000)
    estimate = estimate_lung_mu(
        batch,
        info,
        scanner,
        grid,
        torch.from_numpy(mu_rest),
        torch.from_numpy(lung_fraction),
        params,
        LungMuSettings(initial_lung_mu_per_cm=0.018, n_iterations=3),
    )
    assert estimate.lung_mu_per_cm == pytest.approx(LUNG_MU_PER_CM, abs=0.004), (
        estimate.trials_per_cm,
        estimate.gradients,
    )
