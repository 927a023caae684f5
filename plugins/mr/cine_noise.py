"""Noise adjust: coil noise covariance from the noise prescan, then prewhitening of every readout.

Imaging readouts are whitened block-wise (:mod:`plugins.runtime.blocks`): consecutive readouts of one
shape and dwell time share one matrix product; a block ends at the last readout of a group (see
:data:`plugins.mr.readout_groups.GROUP_END_FLAGS`), at ``max_block_readouts``, or when no further readout
is waiting, so no readout is held back for one that has not arrived.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import ismrmrd
import numpy as np
import torch
from pydantic import Field

from plugins.mr.readout_groups import ends_group, is_noise
from plugins.runtime.blocks import BlockMapPlugin
from plugins.runtime.config import PluginConfig
from plugins.runtime.plugin import ChainContext
from recon.cine.noise import noise_covariance, whitening_matrix
from recon.cine.readout_blocks import whiten_block


class CineNoiseAdjustConfig(PluginConfig):
    """Parameters of the noise adjust stage."""

    pass_noise_through: bool = Field(
        False, description="forward the noise readouts downstream (default: drop them)"
    )
    min_noise_samples: int = Field(
        256,
        ge=1,
        le=10_000_000,
        description="noise samples per coil needed to whiten (fewer: data pass unwhitened)",
    )
    max_block_readouts: int = Field(
        32,
        ge=1,
        le=4096,
        description="most readouts whitened as one block (a block never waits for a readout not yet arrived)",
    )


class CineNoiseAdjust(BlockMapPlugin):
    """Prewhitens coil data with the Cholesky factor of the noise-prescan covariance (dwell-time corrected)."""

    Config = CineNoiseAdjustConfig
    accepts = (ismrmrd.Acquisition,)

    def __init__(self, config: CineNoiseAdjustConfig, context: ChainContext) -> None:  # type: ignore[override]
        super().__init__(config, context)
        self.cfg = config
        self.max_block_items = config.max_block_readouts
        self._noise: list[np.ndarray] = []
        self._noise_dwell_us = 0.0
        self._whitening: dict[float, np.ndarray] = {}
        self._covariance: torch.Tensor | None = None
        self._buffers = [np.empty(0, dtype=np.complex64), np.empty(0, dtype=np.complex64)]

    def block_key(self, item: Any) -> Hashable | None:
        acq: ismrmrd.Acquisition = item
        if is_noise(acq):
            return None
        return (float(acq.sample_time_us), int(acq.active_channels), int(acq.number_of_samples))

    def ends_block(self, item: Any) -> bool:
        return ends_group(item)

    def process(self, item: Any) -> Iterable[Any]:
        """A noise readout: kept for the covariance (the whitening is recomputed before the next block)."""
        acq: ismrmrd.Acquisition = item
        self._noise.append(np.array(acq.data, dtype=np.complex64))
        self._noise_dwell_us = float(acq.sample_time_us)
        self._covariance = None
        self._whitening.clear()
        return (acq,) if self.cfg.pass_noise_through else ()

    def process_block(self, block: Sequence[Any]) -> Sequence[Any]:
        """Whiten the readouts of ``block`` in place (one product for all of them)."""
        w = self._matrix(float(block[0].sample_time_us))
        if w is None:
            return block
        n_coils, n_samples = block[0].data.shape
        stacked, white = (self._buffer(i, (n_coils, len(block), n_samples)) for i in (0, 1))
        np.stack([acq.data for acq in block], axis=1, out=stacked)
        whiten_block(w, stacked, out=white)
        for i, acq in enumerate(block):
            acq.data[:] = white[:, i]
        return block

    def _buffer(self, index: int, shape: tuple[int, int, int]) -> np.ndarray:
        """Scratch buffer ``index`` (0: stacked readouts, 1: whitened) as a C-contiguous ``shape`` view,
        kept between blocks (fresh memory for every block costs its page faults)."""
        size = shape[0] * shape[1] * shape[2]
        if self._buffers[index].size < size:
            self._buffers[index] = np.empty(size, dtype=np.complex64)
        return self._buffers[index][:size].reshape(shape)

    def _matrix(self, dwell_us: float) -> np.ndarray | None:
        if dwell_us in self._whitening:
            return self._whitening[dwell_us]
        if not self._noise:
            return None
        if self._covariance is None:
            noise = torch.from_numpy(np.concatenate(self._noise, axis=1))
            if noise.shape[1] < self.cfg.min_noise_samples:
                self.log.warning("only %d noise samples per coil: data are not whitened", noise.shape[1])
                self._noise.clear()
                return None
            self._covariance = noise_covariance(noise.to(torch.complex128))
            self.log.info("noise covariance from %d samples, %d coils", noise.shape[1], noise.shape[0])
        ratio = self._noise_dwell_us / dwell_us if dwell_us > 0 and self._noise_dwell_us > 0 else 1.0
        try:
            w = whitening_matrix(self._covariance, dwell_ratio=ratio).to(torch.complex64).numpy()
        except torch.linalg.LinAlgError:
            self.log.warning("noise covariance is not positive definite: data are not whitened")
            self._noise.clear()
            return None
        self._whitening[dwell_us] = w
        return w
