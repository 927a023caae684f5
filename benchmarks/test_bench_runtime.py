"""Runtime overhead of the concurrent pipeline (issue 2).

* single-item latency: one item fed into a running pipeline of N pass-through stages until it comes out;
  the per-stage overhead is (latency(5) − latency(0)) / 5.
* pipelined throughput: 20 000 items streamed through N stages; overhead per item per stage is
  (t(5) − t(0)) / (20 000 · 5).
Floor: a queue hand-off between two threads (lock + condition variable + thread wake-up), a few µs.
"""

from __future__ import annotations

import queue
from collections.abc import Generator
from typing import Any

import pytest

from benchmarks.conftest import median_seconds, record_ratio
from plugins.runtime.builtin import PassThrough, PassThroughConfig
from plugins.runtime.chain import ChainSpec, StageSpec
from plugins.runtime.pipeline import Pipeline
from plugins.runtime.plugin import ChainContext

CTX = ChainContext(chain_name="bench")
_STOP = object()


def passthrough_chain(n_stages: int) -> ChainSpec:
    stages = tuple(
        StageSpec(f"p{i}", "passthrough", PassThrough, PassThroughConfig()) for i in range(n_stages)
    )
    return ChainSpec("bench", "pass-through stages", "<bench>", stages)


class LivePipeline:
    """A pipeline of n pass-through stages kept running (n = 0: the input thread hands items straight
    to the consumer); ``one_item()`` feeds one item and waits for it at the output."""

    def __init__(self, n_stages: int) -> None:
        self.feed: queue.Queue[Any] = queue.Queue()
        self.out: Generator[Any, None, None] = Pipeline(passthrough_chain(n_stages), CTX).run(
            iter(self.feed.get, _STOP)
        )

    def one_item(self) -> None:
        self.feed.put(1)
        next(self.out)

    def close(self) -> None:
        self.feed.put(_STOP)
        for _ in self.out:
            pass


@pytest.mark.parametrize("n_stages", [0, 1, 5])
def test_single_item_latency(benchmark: Any, n_stages: int) -> None:
    """Latency of one item; ratio to the 0-stage pipeline (input hand-off only), timed in the same run."""
    live = LivePipeline(n_stages)
    reference = LivePipeline(0)
    try:
        benchmark.pedantic(live.one_item, rounds=2000, warmup_rounds=200)
        record_ratio(benchmark, reference.one_item, "0-stage pipeline, one item", rounds=2000)
    finally:
        live.close()
        reference.close()


def test_per_stage_overhead_summary(benchmark: Any) -> None:
    """Per-stage single-item latency and pipelined throughput overhead (µs), in extra_info."""
    n_items = 20_000
    lat = {}
    for n in (0, 5):
        live = LivePipeline(n)

        def burst(live: LivePipeline = live) -> None:
            for _ in range(200):
                live.one_item()

        try:
            lat[n] = median_seconds(burst, rounds=7) / 200
        finally:
            live.close()

    def stream(n_stages: int) -> None:
        for _ in Pipeline(passthrough_chain(n_stages), CTX, queue_size=64).run(range(n_items)):
            pass

    t0 = median_seconds(lambda: stream(0), rounds=3)
    benchmark.pedantic(stream, args=(5,), rounds=3, warmup_rounds=1)
    t5 = benchmark.stats.stats.median
    benchmark.extra_info["latency_per_stage_us"] = (lat[5] - lat[0]) / 5 * 1e6
    benchmark.extra_info["throughput_overhead_per_item_per_stage_us"] = (t5 - t0) / (n_items * 5) * 1e6
    benchmark.extra_info["ratio"] = t5 / t0
    benchmark.extra_info["reference"] = "same stream through 0 stages"
