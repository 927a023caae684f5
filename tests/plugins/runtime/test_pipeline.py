"""The concurrent pipeline: order, pass-through, backpressure, errors without hangs, flush, timing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

import pytest

from plugins.runtime.builtin import PassThrough, PassThroughConfig
from plugins.runtime.chain import ChainSpec, StageSpec
from plugins.runtime.config import PluginConfig
from plugins.runtime.pipeline import ChainError, Pipeline, run_chain
from plugins.runtime.plugin import ChainContext, MapPlugin, Plugin


class Doubler(MapPlugin):
    """Doubles ints; everything else passes through."""

    accepts = (int,)

    def map(self, item: Any) -> Any:
        return item * 2


class Batcher(Plugin):
    """Buffers ints in pairs; flushes a leftover at the end of the stream."""

    accepts = (int,)

    def __init__(self, config: PluginConfig, context: ChainContext) -> None:
        super().__init__(config, context)
        self.buffer: list[int] = []

    def process(self, item: Any) -> Iterable[Any]:
        self.buffer.append(item)
        if len(self.buffer) == 2:
            out, self.buffer = tuple(self.buffer), []
            yield out

    def finish(self) -> Iterable[Any]:
        if self.buffer:
            yield tuple(self.buffer)


class FailOn(MapPlugin):
    """Raises on the int 13."""

    accepts = (int,)

    def map(self, item: Any) -> Any:
        if item == 13:
            raise ValueError("unlucky item")
        return item


class Slow(MapPlugin):
    """Sleeps per item (a slow reconstruction stage)."""

    accepts = (object,)

    def map(self, item: Any) -> Any:
        time.sleep(0.002)
        return item


def chain_of(*classes: type[Plugin]) -> ChainSpec:
    stages = tuple(
        StageSpec(
            f"s{i}_{c.__name__}",
            c.__name__.lower(),
            c,
            PassThroughConfig() if c is PassThrough else PluginConfig(),
        )
        for i, c in enumerate(classes)
    )
    return ChainSpec("test", "test chain", "<test>", stages)


CTX = ChainContext(chain_name="test")


def test_order_and_pass_through() -> None:
    items: list[Any] = [1, "a", 2, 3.5, 4, "b"]
    out = run_chain(chain_of(Doubler, PassThrough, Doubler), items, CTX, queue_size=2)
    assert out == [4, "a", 8, 3.5, 16, "b"]


def test_buffering_stage_flushes_at_end() -> None:
    out = run_chain(chain_of(Batcher, PassThrough), [1, 2, "x", 3], CTX)
    assert out == [(1, 2), "x", (3,)]


def test_empty_chain_input() -> None:
    assert run_chain(chain_of(Doubler), [], CTX) == []


def test_backpressure_bounds_items_in_flight() -> None:
    produced = 0
    consumed = 0
    max_in_flight = 0
    queue_size = 3
    n_stages = 2

    def source() -> Iterable[int]:
        nonlocal produced, max_in_flight
        for i in range(200):
            produced += 1
            max_in_flight = max(max_in_flight, produced - consumed)
            yield i

    for _ in Pipeline(chain_of(PassThrough, Slow), CTX, queue_size=queue_size).run(source()):
        consumed += 1
    # queues (stages + 1 of them) plus one item held by each thread and the source
    assert max_in_flight <= queue_size * (n_stages + 1) + n_stages + 2
    assert consumed == 200


def test_error_in_middle_stage_names_plugin_and_item_and_stops_all_threads() -> None:
    before = threading.active_count()
    chain = chain_of(PassThrough, FailOn, Slow)
    with pytest.raises(ChainError) as info:
        run_chain(chain, range(10_000), CTX, queue_size=2)
    message = str(info.value)
    assert "failon" in message and "item #14" in message and "unlucky item" in message
    assert info.value.stage == "s1_FailOn"
    assert isinstance(info.value.__cause__, ValueError)
    assert threading.active_count() == before


def test_error_in_input_iterator_is_reported() -> None:
    def broken() -> Iterable[int]:
        yield 1
        raise OSError("disk went away")

    with pytest.raises(ChainError, match="reading the input failed.*disk went away"):
        run_chain(chain_of(PassThrough), broken(), CTX)


def test_consumer_leaving_early_releases_threads() -> None:
    before = threading.active_count()
    gen = Pipeline(chain_of(PassThrough, PassThrough), CTX, queue_size=1).run(iter(range(10_000)))
    assert next(gen) == 0
    gen.close()
    assert threading.active_count() == before


def test_stage_timing_is_collected() -> None:
    pipeline = Pipeline(chain_of(Slow, PassThrough), CTX)
    assert list(pipeline.run(range(20))) == list(range(20))
    slow, fast = pipeline.stats
    assert slow.n_inputs == slow.n_outputs == 20
    assert slow.percentile_s(50) >= 0.0015  # the stage sleeps 2 ms per item
    assert fast.n_outputs == 20
    assert set(slow.summary()) >= {"p50_s", "p95_s", "n_inputs", "total_s"}
