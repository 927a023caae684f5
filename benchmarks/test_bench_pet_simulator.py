"""PET list-mode simulator throughput: events (prompts + delayeds) per second of simulation.

NEMA IEC body phantom (2 mm voxels, 5.3 kBq/ml background, 4:1 spheres) on the Signa-like scanner,
full physics (positron range, non-collinearity, attenuation with single Compton scatter, crystal
efficiencies, energy window, TOF, randoms from singles with a delayed window).  The issue's target is
10⁶ events/s.  Devices: ``cpu`` runs the numba kernels (all cores), ``cuda`` the torch path of
:mod:`hardware_sim.pet.gpu` (skips without a GPU).  Profiles: quick = 2·10⁵ prompts on the CPU and 10⁶
on CUDA, full = 10⁶ and 3·10⁶.  ``extra_info`` holds ``events_per_s``, ``decays_per_s`` and the counts
by type.  Measured 2026-11-22 (benchmarks/RESULTS.md): numba 4.2–4.6·10⁴ events/s on 2 idle host cores of
the GPU machine; H100 1.66–1.87·10⁶ events/s.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from benchmarks.conftest import bench_profile
from hardware_sim.pet.config import PETSimulationConfig
from hardware_sim.pet.phantoms import PETPhantom, nema_iec_phantom
from hardware_sim.pet.simulator import PETListModeSimulator
from recon.tof.geometry import signa_like

SIZES = {
    ("cpu", "quick"): 200_000,
    ("cpu", "full"): 1_000_000,
    ("cuda", "quick"): 1_000_000,
    ("cuda", "full"): 3_000_000,
}


@pytest.fixture(scope="module")
def nema() -> PETPhantom:
    return nema_iec_phantom(voxel_size_mm=2.0)


def _simulate(phantom: PETPhantom, n_prompts: int, seed: int, device: torch.device) -> PETListModeSimulator:
    on_gpu = device.type == "cuda"
    config = PETSimulationConfig(
        n_prompts=n_prompts,
        seed=seed,
        device=str(device) if on_gpu else "numba",
        decays_per_chunk=1 << (22 if on_gpu else 17),
    )
    simulator = PETListModeSimulator(phantom, signa_like(), config)
    for _ in simulator.batches():
        pass
    if on_gpu:
        torch.cuda.synchronize()
    return simulator


def test_nema_signa_simulation_throughput(benchmark: Any, nema: PETPhantom, device: torch.device) -> None:
    _simulate(
        nema, 20_000 if device.type == "cuda" else 2000, 0, device
    )  # compile / warm up outside the timing
    n_prompts = SIZES[(device.type, bench_profile())]
    simulator = benchmark.pedantic(_simulate, args=(nema, n_prompts, 1, device), rounds=1, iterations=1)
    tally = simulator.tally
    seconds = benchmark.stats.stats.median
    n_events = tally.n_prompts + tally.n_delayeds
    benchmark.extra_info.update(
        events_per_s=n_events / seconds,
        decays_per_s=tally.n_decays / seconds,
        n_trues=tally.n_trues,
        n_scatters=tally.n_scatters,
        n_randoms=tally.n_randoms,
        n_delayeds=tally.n_delayeds,
        acquisition_s=tally.duration_s,
        profile=bench_profile(),
    )
    assert tally.n_prompts == n_prompts
