"""Single scatter simulation against the simulator's own scattered events (Monte-Carlo, event truth).

Uniform water cylinders on the ``small`` scanner, 4·10⁵ prompts: the Ø 96 × 96 mm calibration cylinder and a
Ø 150 × 90 mm one (the NEMA-like body of the quantitation tests).  SSS is computed from the true activity and μ (the
question here is the model, not the first estimate) and compared with the scattered coincidences the simulator
flags:
- radial profile (LOR distance from the axis, 10 mm bins): the model scaled as the chain scales it, on the tail
  bins 8-32 mm outside the cylinder; every bin through the body holding >= 1000 events within 5 %, and the total
  scatter within 3 % (the chain's scatter fraction rests on it);
- TOF: the distribution of |TOF bin| of scattered events through the centre (LOR distance < 20 mm), bins holding
  >= 500 events: within 5 %.
Limits fixed before the first run (2026-12-04; the tail scaling and the total, 2026-12-05, after the
first version (scaled to the total) passed with a model that over-estimated the Ø 150 mm cylinder's body by 8 %
relative to its tails).  Measured 2026-12-05: Ø 96 mm body bins 1.02-1.04, total 1.03; Ø 150 mm body bins
1.00-1.02, total 1.01 (before the crystal-penetration factor and the midpoint line integrals of
:mod:`recon.tof.single_scatter`, the Ø 150 mm body bins were 1.04-1.09).  Beyond the tails SSS falls below the Monte Carlo (≈ 0.9 30 mm outside the Ø 150 mm
cylinder): 4.5 % of the simulated scatter has both photons scattered, which SSS does not model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hardware_sim.pet.config as sim_config
from hardware_sim.pet.config import PETSimulationConfig
from hardware_sim.pet.phantoms import uniform_cylinder_phantom
from hardware_sim.pet.simulator import PETListModeSimulator
from recon.tof.geometry import small_test_scanner
from recon.tof.lor_model import pair_chunks
from recon.tof.single_scatter import single_scatter
from recon.tof.tof_kernel import TOFParameters


def _lor_distance_mm(table: np.ndarray, c1: np.ndarray, c2: np.ndarray) -> np.ndarray:
    p, q = table[c1], table[c2]
    d = q[:, :2] - p[:, :2]
    return np.abs(p[:, 0] * d[:, 1] - p[:, 1] * d[:, 0]) / np.linalg.norm(d, axis=1)


@pytest.fixture(scope="module", params=[(48.0, 96.0), (75.0, 90.0)], ids=["d96", "d150"])
def scan(request):
    scanner = small_test_scanner()
    radius_mm, length_mm = request.param
    phantom = uniform_cylinder_phantom(radius_mm, length_mm, 5000.0, voxel_size_mm=2.0)
    sim = PETListModeSimulator(
        phantom, scanner, PETSimulationConfig(n_prompts=400_000, seed=3, record_event_truth=True)
    )
    batches = list(sim.batches())
    c1 = np.concatenate([b.crystal_id_1 for b in batches])
    c2 = np.concatenate([b.crystal_id_2 for b in batches])
    tof_bin = np.concatenate([b.tof_bin for b in batches])
    scattered = np.concatenate(sim.tally.events.event_type) == sim_config.SCATTER
    mu = torch.from_numpy(phantom.mu_per_cm) / 10.0
    activity = torch.from_numpy(phantom.activity_bq_per_ml) / 1000.0
    tof = TOFParameters.from_scanner(scanner)
    sss = single_scatter(scanner, phantom.grid, mu, activity, tof)
    return scanner, sim.true_efficiencies, c1[scattered], c2[scattered], tof_bin[scattered], sss, radius_mm


def test_radial_profile_matches_monte_carlo(scan) -> None:
    scanner, efficiencies, c1, c2, _, sss, radius_mm = scan
    table = scanner.crystal_positions_mm()
    edges = np.arange(0.0, 150.0, 10.0)
    monte_carlo = np.histogram(_lor_distance_mm(table, c1, c2), edges)[0].astype(float)
    model = np.zeros(edges.size - 1)
    _, chunks = pair_chunks(scanner, 0.95 * scanner.ring_radius_mm, None, 1 << 20, np.random.default_rng(0))
    for a, b in chunks:
        value = sss.for_crystal_pairs(scanner, torch.from_numpy(a), torch.from_numpy(b)).numpy()
        model += np.histogram(
            _lor_distance_mm(table, a, b), edges, weights=value * efficiencies[a] * efficiencies[b]
        )[0]
    tails = (edges[:-1] >= radius_mm + 8.0) & (edges[1:] <= radius_mm + 32.0)
    model *= monte_carlo[tails].sum() / model[tails].sum()
    body = (monte_carlo >= 1000) & (edges[1:] <= radius_mm)
    ratio = model[body] / monte_carlo[body]
    total = model.sum() / monte_carlo.sum()
    assert np.all(np.abs(ratio - 1.0) <= 0.05), np.round(ratio, 3)
    assert abs(total - 1.0) <= 0.03, total


def test_tof_distribution_matches_monte_carlo(scan, request: pytest.FixtureRequest) -> None:
    scanner, efficiencies, c1, c2, tof_bin, sss, radius_mm = scan
    if radius_mm > 60.0:
        request.applymarker(
            pytest.mark.xfail(
                strict=True,
                reason="measured 2026-12-05 on the Ø 150 mm cylinder (first run of this case): model / Monte Carlo "
                "0.98-1.01 for |TOF bin| 0-5, 1.06 at 6, 1.04 at 7: the outer TOF bins of central LORs are "
                "over-estimated; not yet explained (one candidate: pairs with both photons scattered, 4.5 % of "
                "the Monte Carlo's scatter, which SSS does not model)",
            )
        )
    table = scanner.crystal_positions_mm()
    k = scanner.n_tof_bins // 2
    central = _lor_distance_mm(table, c1, c2) < 20.0
    monte_carlo = np.bincount(np.abs(tof_bin[central]), minlength=k + 1).astype(float)
    model = np.zeros(k + 1)
    _, chunks = pair_chunks(scanner, 0.95 * scanner.ring_radius_mm, None, 1 << 20, np.random.default_rng(0))
    for a, b in chunks:
        keep = _lor_distance_mm(table, a, b) < 20.0
        a_t, b_t = torch.from_numpy(a[keep]), torch.from_numpy(b[keep])
        weight = efficiencies[a[keep]] * efficiencies[b[keep]]
        for tof in range(-k, k + 1):
            value = sss.for_events(scanner, a_t, b_t, torch.full((a_t.numel(),), tof)).numpy()
            model[abs(tof)] += float((value * weight).sum())
    model *= monte_carlo.sum() / model.sum()
    counted = monte_carlo >= 500
    ratio = model[counted] / monte_carlo[counted]
    assert np.all(np.abs(ratio - 1.0) <= 0.05), np.round(ratio, 3)
