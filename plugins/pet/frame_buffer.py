"""Buffer list-mode batches until their frame ends, then emit one :class:`~plugins.pet.items.PETFrame`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from pydantic import Field

from plugins.pet.items import PETFrame
from plugins.runtime.config import PluginConfig
from plugins.runtime.items import IncompleteUnit, StreamInterrupted
from plugins.runtime.plugin import Plugin
from recon.tof.listmode import ListModeBatch, concatenate_batches


class PETFrameBufferConfig(PluginConfig):
    max_events_per_frame: int = Field(
        200_000_000, ge=1, description="refuse frames with more events than this (memory guard), events"
    )


class PETFrameBuffer(Plugin):
    """Collect list-mode batches of one frame; emit the frame when its last batch (or the stream end) arrives."""

    Config: ClassVar[type[PluginConfig]] = PETFrameBufferConfig
    accepts: ClassVar[tuple[type, ...]] = (ListModeBatch, StreamInterrupted)

    def __init__(self, config: PluginConfig, context: Any) -> None:
        super().__init__(config, context)
        self._pending: list[ListModeBatch] = []
        self._n_events = 0

    def _flush(self) -> Iterator[PETFrame]:
        if not self._pending:
            return
        frame = concatenate_batches(self._pending)
        yield PETFrame(frame, frame.frame_index, len(self._pending))
        self.log.info(
            "frame %d complete: %d events in %d batches",
            frame.frame_index,
            frame.n_events,
            len(self._pending),
        )
        self._pending, self._n_events = [], 0

    def process(self, item: Any) -> Iterable[Any]:
        if isinstance(item, StreamInterrupted):  # a frame cut short would read low: named, not reconstructed
            if self._pending:
                first = self._pending[0]
                yield IncompleteUnit(
                    stage="pet_frame_buffer",
                    kind="frame",
                    index=int(first.frame_index),
                    readouts_received=self._n_events,
                    missing=f"the frame's last batch never came ({len(self._pending)} batches, "
                    f"{self._n_events} events received); not reconstructed, its counts would read low",
                )
                self.log.warning(
                    "frame %d: the stream was interrupted inside it; not reconstructed", first.frame_index
                )
                self._pending, self._n_events = [], 0
            yield item
            return
        assert isinstance(self.config, PETFrameBufferConfig)
        if self._pending and (
            item.frame_index != self._pending[0].frame_index or item.scanner != self._pending[0].scanner
        ):
            yield from self._flush()
        self._n_events += item.n_events
        if self._n_events > self.config.max_events_per_frame:
            raise ValueError(
                f"frame {item.frame_index} exceeds max_events_per_frame="
                f"{self.config.max_events_per_frame} events"
            )
        self._pending.append(item)
        if item.is_last_in_frame:
            yield from self._flush()

    def finish(self) -> Iterable[Any]:
        if self._pending:
            self.log.warning(
                "stream ended inside frame %d: reconstructing the events received",
                self._pending[0].frame_index,
            )
        yield from self._flush()
