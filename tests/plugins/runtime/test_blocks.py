"""Block-wise stages: blocks end at a new key, a group end, the size bound or an empty input queue; order kept."""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable, Iterator, Sequence
from typing import Any, cast

from plugins.runtime.blocks import BlockMapPlugin
from plugins.runtime.chain import ChainSpec, StageSpec
from plugins.runtime.config import PluginConfig
from plugins.runtime.pipeline import Pipeline
from plugins.runtime.plugin import ChainContext


class Tagger(BlockMapPlugin):
    """Ints in blocks keyed by their hundreds; ints ending in 9 end a group; negative ints alone; others pass."""

    accepts = (int,)
    max_block_items = 4

    def __init__(self, config: PluginConfig, context: ChainContext) -> None:
        super().__init__(config, context)
        self.sizes: list[int] = []

    def block_key(self, item: Any) -> Hashable | None:
        return None if item < 0 else item // 100

    def ends_block(self, item: Any) -> bool:
        return item % 10 == 9

    def process(self, item: Any) -> Iterable[Any]:
        return (("alone", item),)

    def process_block(self, block: Sequence[Any]) -> Sequence[Any]:
        self.sizes.append(len(block))
        return [("block", len(self.sizes), x) for x in block]


def _tagger() -> Tagger:
    return Tagger(PluginConfig(), ChainContext(chain_name="t"))


def test_blocks_end_at_a_new_key_a_group_end_the_size_bound_and_other_items() -> None:
    plugin = _tagger()
    items: list[Any] = [1, 2, 3, 4, 5, 101, 102, "x", 103, 7, 9, 11, -5, 12]
    out = list(plugin.run(items))
    # bound 4 | 5 (key 1 follows) | 101 102 ("x" follows) | 103 (key 0 follows) | 7 9 (9 ends a group) | 11 | 12
    assert plugin.sizes == [4, 1, 2, 1, 2, 1, 1]
    assert [o if isinstance(o, str) else o[-1] for o in out] == [
        1, 2, 3, 4, 5, 101, 102, "x", 103, 7, 9, 11, -5, 12
    ]  # fmt: skip
    assert out[12] == ("alone", -5) and plugin.n_accepted == 13


class _NothingWaiting(Iterator[Any]):
    """A stage input whose queue is always empty after each item (items arrive slower than they are handled)."""

    def __init__(self, items: list[Any]) -> None:
        self._items = iter(items)

    def __next__(self) -> Any:
        return next(self._items)

    def n_ready(self) -> int:
        return 0


def test_a_block_never_waits_for_an_item_that_has_not_arrived() -> None:
    plugin = _tagger()
    out = list(plugin.run(_NothingWaiting([1, 2, 3, 4, 5])))
    assert plugin.sizes == [1, 1, 1, 1, 1] and [o[-1] for o in out] == [1, 2, 3, 4, 5]


def _chain() -> ChainSpec:
    return ChainSpec("test", "test chain", "<test>", (StageSpec("tag", "tagger", Tagger, PluginConfig()),))


def test_in_a_pipeline_a_readout_is_emitted_before_the_next_arrives() -> None:
    """Scanner pace: the next item is only sent once the previous one came out, so every block is one item."""
    released = threading.Semaphore(0)
    seen: list[Any] = []

    def paced() -> Iterator[Any]:
        for x in [1, 2, 3, 4, 5, 6]:
            yield x
            assert released.acquire(timeout=10), f"item {x} was held back waiting for the next one"

    for out in Pipeline(_chain(), ChainContext(chain_name="t")).run(paced()):
        seen.append(out[-1])
        released.release()
    assert seen == [1, 2, 3, 4, 5, 6]


class HeldTagger(Tagger):
    """A Tagger whose first block waits until the whole input is queued (a backlog, deterministically)."""

    all_queued = threading.Event()

    def process_block(self, block: Sequence[Any]) -> Sequence[Any]:
        assert self.all_queued.wait(timeout=10)
        return super().process_block(block)


def test_in_a_pipeline_a_backlog_forms_blocks_and_keeps_order() -> None:
    items: list[Any] = [*range(0, 50), "a", *range(100, 130), -1, *range(200, 220)]
    HeldTagger.all_queued.clear()

    def feed() -> Iterator[Any]:
        yield from items
        HeldTagger.all_queued.set()

    chain = ChainSpec("test", "t", "<test>", (StageSpec("tag", "tagger", HeldTagger, PluginConfig()),))
    pipeline = Pipeline(chain, ChainContext(chain_name="t"), queue_size=256)
    out = list(pipeline.run(feed()))
    assert [o if isinstance(o, str) else o[-1] for o in out] == items
    sizes = cast(HeldTagger, pipeline.plugins[0]).sizes
    assert sum(sizes) == 100 and max(sizes) == 4 and len(sizes) < 40
