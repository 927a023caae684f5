"""Block-wise stages: runs of consecutive items of one kind handled as one block, order and latency kept.

A :class:`BlockMapPlugin` is a one-to-one plugin whose accepted items (e.g. MR readouts) are grouped into
*blocks*: consecutive items with the same :meth:`~BlockMapPlugin.block_key`.  A block goes through
:meth:`~BlockMapPlugin.process_block` (one matrix product for the whole block instead of one per item)
and its outputs are emitted in input order.

When a block ends (its outputs are computed and emitted at once):

* the next item cannot join it: another type, an accepted item whose key is ``None`` (handled alone by
  :meth:`~plugins.runtime.plugin.Plugin.process`, e.g. a noise readout), or another key (another shape);
  the block is emitted before that item, so the order of all items is kept;
* the item just added ends a group (:meth:`~BlockMapPlugin.ends_block`, e.g. the last readout of a slice);
* it holds ``max_block_items`` items;
* no further item is already waiting in the stage's input queue (``n_ready()`` of the pipeline's stage
  input is 0).

So a block is never held back for an item that has not arrived: at scanner pace every readout is its own
block (no added latency), and only a backlog (a file, a burst, a slow downstream stage) forms larger
blocks.  The latency an item gains is at most the compute time of the other items of its block, bounded by
``max_block_items``.  An input without ``n_ready`` (a list handed to :meth:`run` directly) counts as
already there: its blocks fill up to ``max_block_items``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import Any

from plugins.runtime.plugin import Plugin


def waiting_counter(items: Iterable[Any]) -> Callable[[], int] | None:
    """``items.n_ready`` (items already queued, taking them never blocks) when the input offers it, else None."""
    counter = getattr(items, "n_ready", None)
    return counter if callable(counter) else None


class BlockMapPlugin(Plugin):
    """A one-to-one plugin over blocks of consecutive accepted items (see the module docstring).

    Subclasses set ``accepts`` and ``max_block_items`` and write :meth:`block_key`, :meth:`process_block`
    and optionally :meth:`ends_block`; accepted items with key ``None`` go through :meth:`process`.
    """

    #: most items in one block
    max_block_items: int = 32

    def block_key(self, item: Any) -> Hashable | None:
        """Items with equal keys may share a block; ``None``: handle this item alone with :meth:`process`."""
        return None

    def ends_block(self, item: Any) -> bool:
        """True when ``item`` is the last of a group (its block is emitted without waiting for more)."""
        return False

    def process_block(self, block: Sequence[Any]) -> Sequence[Any]:  # pragma: no cover - abstract
        """The outputs of a block: exactly one per item, in order."""
        raise NotImplementedError

    def _emit(self, block: list[Any]) -> Iterator[Any]:
        outputs = self.process_block(block)
        if len(outputs) != len(block):
            raise RuntimeError(f"{type(self).__name__}: {len(outputs)} outputs for a block of {len(block)}")
        yield from outputs

    def run(self, items: Iterable[Any]) -> Iterator[Any]:
        n_waiting = waiting_counter(items)
        accepts = self.accepts
        block: list[Any] = []
        key: Hashable | None = None
        for item in items:
            accepted = bool(accepts) and isinstance(item, accepts)
            item_key = self.block_key(item) if accepted else None
            if block and (item_key is None or item_key != key):
                yield from self._emit(block)
                block = []
            if accepted:
                self.n_accepted += 1
            if item_key is None:
                yield from (self.process(item) if accepted else (item,))
                continue
            key = item_key
            block.append(item)
            if (
                len(block) >= self.max_block_items
                or self.ends_block(item)
                or (n_waiting is not None and n_waiting() == 0)
            ):
                yield from self._emit(block)
                block = []
        if block:
            yield from self._emit(block)
        yield from self.finish()
