"""Remove readout oversampling from every readout (crop the central field of view along k0).

Readouts are handled block-wise (:mod:`plugins.runtime.blocks`): consecutive imaging readouts of one
shape share one pair of batched FFTs (:class:`recon.cine.readout_blocks.OversamplingRemover`); a block
ends at the last readout of a group (:data:`plugins.mr.readout_groups.GROUP_END_FLAGS`), at
``max_block_readouts``, or when no further readout is waiting.  Noise readouts pass unchanged.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import ismrmrd
import numpy as np
from pydantic import Field

from plugins.mr.cine_header import cine_encoding
from plugins.mr.readout_groups import copy_header, ends_group, is_noise
from plugins.runtime.blocks import BlockMapPlugin
from plugins.runtime.config import PluginConfig
from plugins.runtime.plugin import ChainContext
from recon.cine.readout_blocks import OversamplingRemover


class CineRemoveOversamplingConfig(PluginConfig):
    """Parameters of the oversampling removal stage."""

    factor: int = Field(
        0, ge=0, le=8, description="readout oversampling factor (0 = encoded / recon matrix from the header)"
    )
    max_block_readouts: int = Field(
        32,
        ge=1,
        le=4096,
        description="most readouts cropped as one block (a block never waits for a readout not yet arrived)",
    )


class CineRemoveOversampling(BlockMapPlugin):
    """Crops the readout to the recon field of view (FFT along k0, keep the centre, FFT back)."""

    Config = CineRemoveOversamplingConfig
    accepts = (ismrmrd.Acquisition,)

    def __init__(self, config: CineRemoveOversamplingConfig, context: ChainContext) -> None:  # type: ignore[override]
        super().__init__(config, context)
        enc = cine_encoding(context.header)
        self.factor = config.factor or (enc.readout_oversampling if enc else 1)
        self.max_block_items = config.max_block_readouts
        self._removers: dict[int, OversamplingRemover] = {}

    def block_key(self, item: Any) -> Hashable | None:
        acq: ismrmrd.Acquisition = item
        if self.factor == 1 or is_noise(acq):
            return None  # passes unchanged (through process)
        return (int(acq.active_channels), int(acq.number_of_samples))

    def ends_block(self, item: Any) -> bool:
        return ends_group(item)

    def _remover(self, n_samples: int) -> OversamplingRemover:
        if n_samples not in self._removers:
            self._removers[n_samples] = OversamplingRemover(n_samples, self.factor)
        return self._removers[n_samples]

    def process_block(self, block: Sequence[Any]) -> Sequence[Any]:
        """New readouts with ``n / factor`` samples (their data are views of one block array)."""
        cropped = self._remover(int(block[0].number_of_samples))([acq.data for acq in block])
        return [self._cropped_readout(acq, data) for acq, data in zip(block, cropped, strict=True)]

    def _cropped_readout(self, acq: ismrmrd.Acquisition, data: np.ndarray) -> ismrmrd.Acquisition:
        # fields read from the copied structure (the readout's own getters cost ≈ 1 µs each)
        head = copy_header(acq)
        head.number_of_samples = data.shape[-1]
        head.center_sample //= self.factor
        head.discard_pre //= self.factor
        head.discard_post //= self.factor
        return ismrmrd.Acquisition(head, data)
