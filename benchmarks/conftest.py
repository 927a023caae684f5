"""Benchmark harness: profiles, CPU/CUDA variants, and machine-normalised ratios.

* Profile: ``RECONSTREAM_BENCH_PROFILE=quick`` (default; reduced but representative sizes, what CI runs)
  or ``full`` (clinical sizes, for release checks and GPU machines).
* Devices: the ``device`` fixture is parametrised over ``cpu`` and ``cuda``; CUDA variants skip without a GPU.
* Ratios: :func:`record_ratio` times a *reference* kernel whose cost scales like the benchmark (a batch of
  FFTs of the same k-space, a memory copy of the same bytes, ...) in the same run and stores
  ``ratio = benchmark median / reference median`` in the benchmark's ``extra_info``; the budgets in
  ``benchmarks/budgets.toml`` are on these ratios, so a slower or busier machine does not break CI.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
import torch


def bench_profile() -> str:
    """``quick`` or ``full`` (environment variable ``RECONSTREAM_BENCH_PROFILE``)."""
    profile = os.environ.get("RECONSTREAM_BENCH_PROFILE", "quick")
    if profile not in ("quick", "full"):
        raise ValueError(f"RECONSTREAM_BENCH_PROFILE={profile!r}; allowed: quick, full")
    return profile


@pytest.fixture(params=["cpu", "cuda"])
def device(request: pytest.FixtureRequest) -> torch.device:
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    return torch.device(request.param)


def synchronize(device: torch.device | str) -> None:
    """Wait for queued GPU work so a timing covers it (no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def median_seconds(fn: Callable[[], Any], rounds: int = 7, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``rounds`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def record_ratio(benchmark: Any, reference: Callable[[], Any], reference_name: str, rounds: int = 7) -> None:
    """Time ``reference`` now (same run, same machine) and store the benchmark/reference ratio.

    Call after ``benchmark(...)``/``benchmark.pedantic(...)`` has run.
    """
    reference_s = median_seconds(reference, rounds=rounds)
    stats = benchmark.stats.stats
    benchmark.extra_info["reference"] = reference_name
    benchmark.extra_info["reference_median_s"] = reference_s
    benchmark.extra_info["ratio"] = stats.median / reference_s
    benchmark.extra_info["profile"] = bench_profile()
