"""The torch (GPU) path of the simulator agrees statistically with the numba CPU path."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hardware_sim.pet.config import TRUE, PETSimulationConfig
from hardware_sim.pet.phantoms import uniform_cylinder_phantom
from hardware_sim.pet.simulator import PETListModeSimulator
from recon.tof.geometry import small_test_scanner


def _z(count_a: int, count_b: int, n_a: int, n_b: int) -> float:
    pooled = (count_a + count_b) / (n_a + n_b)
    return (count_a / n_a - count_b / n_b) / np.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_torch_path_matches_the_numba_path(device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    scanner = small_test_scanner()
    phantom = uniform_cylinder_phantom(
        radius_mm=50.0, length_mm=60.0, activity_bq_per_ml=2e4, voxel_size_mm=2.0
    )
    config = PETSimulationConfig(
        n_prompts=None, duration_s=0.05, seed=21, record_event_truth=True, decays_per_chunk=1 << 16
    )
    reference = PETListModeSimulator(phantom, scanner, config)
    reference_events = list(reference.batches())
    torch_sim = PETListModeSimulator(phantom, scanner, dataclasses.replace(config, seed=22, device=device))
    torch_events = list(torch_sim.batches())
    a, b = reference.tally, torch_sim.tally
    assert a.n_decays == b.n_decays and a.duration_s == pytest.approx(b.duration_s, rel=1e-3)
    for name in ("n_trues", "n_scatters", "n_delayeds"):
        assert abs(_z(getattr(a, name), getattr(b, name), a.n_decays, b.n_decays)) < 4.0, name
    singles_a, singles_b = int(a.singles_per_crystal.sum()), int(b.singles_per_crystal.sum())
    assert abs(_z(singles_a, singles_b, 2 * a.n_decays, 2 * b.n_decays)) < 4.0
    # TOF of trues: same spread
    types_b, _ = b.events.concatenated()
    tof_a = np.concatenate([e.tof_bin for e in reference_events])[a.events.concatenated()[0] == TRUE]
    tof_b = np.concatenate([e.tof_bin for e in torch_events])[types_b == TRUE]
    assert tof_b.std() == pytest.approx(tof_a.std(), rel=0.05)
