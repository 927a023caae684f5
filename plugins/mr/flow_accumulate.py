"""Accumulation of a flow series: the cine accumulation stage, once per velocity encoding (``set``).

A phase-contrast acquisition interleaves the reference (``set`` 0) and velocity-encoded (``set`` 1)
readouts of a slice.  This plugin reuses :class:`plugins.mr.cine_accumulate.CineAccumulate` unchanged,
one instance per set: each receives the readouts of its set and every ECG waveform, and emits a
:class:`~plugins.mr.cine_items.CineSliceRaw` whose ``reference`` header keeps ``idx.set``, so that the
downstream cine stages (binning, unfolding) reconstruct both encodings with the same settings and the
flow plugins can pair them again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import ismrmrd
from pydantic import Field

from plugins.mr.cine_accumulate import CineAccumulate, CineAccumulateConfig
from plugins.runtime.config import PluginConfig
from plugins.runtime.items import StreamInterrupted
from plugins.runtime.plugin import ChainContext, Plugin

N_SETS = 2


class FlowAccumulateConfig(PluginConfig):
    """Parameters of :class:`FlowAccumulate` (those of the cine accumulation stage)."""

    trigger_source: Literal["auto", "ecg_waveform", "physiology_time_stamp", "none"] = Field(
        "auto",
        description="where R-waves come from (auto: ECG trigger channel if present, else physiology stamps)",
    )


class FlowAccumulate(Plugin):
    """Collects each slice's readouts per velocity encoding (set 0/1) with the cine accumulation stage."""

    Config = FlowAccumulateConfig
    accepts = (ismrmrd.Acquisition, ismrmrd.Waveform, StreamInterrupted)

    def __init__(self, config: FlowAccumulateConfig, context: ChainContext) -> None:  # type: ignore[override]
        super().__init__(config, context)
        inner = CineAccumulateConfig(trigger_source=config.trigger_source)
        self.per_set = [CineAccumulate(inner, context, set_index=i) for i in range(N_SETS)]

    def process(self, item: Any) -> Iterable[Any]:
        if isinstance(item, StreamInterrupted):  # each set's accumulator learns it; forwarded once
            for stage in self.per_set:
                stage.interrupted = item
            yield item
            return
        if isinstance(item, ismrmrd.Waveform):
            for stage in self.per_set:
                yield from stage.process(item)
            return
        if item.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT):
            return
        set_index = int(item.idx.set)
        if not 0 <= set_index < N_SETS:
            raise ValueError(
                f"flow readout with idx.set={set_index}: only 0 (reference) and 1 (velocity-encoded) are defined"
            )
        yield from self.per_set[set_index].process(item)

    def finish(self) -> Iterable[Any]:
        for stage in self.per_set:
            yield from stage.finish()
