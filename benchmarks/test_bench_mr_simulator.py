"""Speed of the MR simulator on the default cine and flow exams (16 coils, 192 × 156, 25 phases, R = 2).

``reduced``: 2 of the default stack's 11 slices (quick profile); ``full``: the whole default stack, mitral
annulus to apex (full profile only).  The time
covers ``simulate_exam``, draining ``exam.items()`` (per-slice static k-space, every readout with noise,
the ECG) and computing ``exam.truth`` (what ``reconstream simulate mr`` does).  ``extra_info["realtime_factor"]`` = simulated scan time / wall time: the
simulator can feed a server at scanner pace when it exceeds 1 (target 5).  ``ratio`` is the wall time over
a same-run reference (a batch of inverse FFTs of the exam's raw k-space size), for machine-independent
budgets.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from benchmarks.conftest import bench_profile, record_ratio
from hardware_sim.mr import MRExamConfig, simulate_exam


def _run(config: MRExamConfig) -> tuple[int, float]:
    exam = simulate_exam(config)
    n_items = sum(1 for _ in exam.items())
    assert exam.truth.images.shape[0] == config.n_slices
    return n_items, exam.scan_duration_s


@pytest.mark.parametrize("size", ["reduced", "full"])
def test_default_cine_exam(benchmark: Any, size: str) -> None:
    if size == "full" and bench_profile() != "full":
        pytest.skip("the whole stack runs in the full profile (RECONSTREAM_BENCH_PROFILE=full)")
    config = MRExamConfig(n_slices=2) if size == "reduced" else MRExamConfig()
    n_slices = config.n_slices
    n_items, scan_s = benchmark.pedantic(_run, args=(config,), rounds=1, iterations=1, warmup_rounds=0)
    seconds = benchmark.stats.stats.median
    benchmark.extra_info.update(
        {
            "n_items": n_items,
            "scan_seconds": scan_s,
            "realtime_factor": scan_s / seconds,
            "n_slices": n_slices,
        }
    )
    raw = np.ones((16, 156, 384), np.complex64)
    record_ratio(
        benchmark, lambda: [np.fft.ifft2(raw) for _ in range(n_slices)], "ifft2 of the raw k-space per slice"
    )
    assert n_items > 1000 * n_slices


def test_default_flow_exam(benchmark: Any) -> None:
    """The default flow exam: the two planned planes (ascending aorta, pulmonary trunk), 30 ms frames."""
    if bench_profile() != "full":
        pytest.skip("the flow exam runs in the full profile (RECONSTREAM_BENCH_PROFILE=full)")
    config = MRExamConfig(protocol="flow")
    n_items, scan_s = benchmark.pedantic(_run, args=(config,), rounds=1, iterations=1, warmup_rounds=0)
    seconds = benchmark.stats.stats.median
    benchmark.extra_info.update(
        {"n_items": n_items, "scan_seconds": scan_s, "realtime_factor": scan_s / seconds, "n_slices": 2}
    )
    raw = np.ones((16, 156, 384), np.complex64)
    record_ratio(benchmark, lambda: [np.fft.ifft2(raw) for _ in range(4)], "ifft2 of the raw k-space per set")
    assert n_items > 1000 * config.n_slices
