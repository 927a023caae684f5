"""Noise adjust: coil noise covariance from the noise prescan, then prewhitening of every readout."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import ismrmrd
import numpy as np
import torch
from pydantic import Field

from plugins.runtime.config import PluginConfig
from plugins.runtime.plugin import ChainContext, Plugin
from recon.cine.noise import noise_covariance, whitening_matrix


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


class CineNoiseAdjust(Plugin):
    """Prewhitens coil data with the Cholesky factor of the noise-prescan covariance (dwell-time corrected)."""

    Config = CineNoiseAdjustConfig
    accepts = (ismrmrd.Acquisition,)

    def __init__(self, config: CineNoiseAdjustConfig, context: ChainContext) -> None:  # type: ignore[override]
        super().__init__(config, context)
        self.cfg = config
        self._noise: list[np.ndarray] = []
        self._noise_dwell_us = 0.0
        self._whitening: dict[float, np.ndarray] = {}
        self._covariance: torch.Tensor | None = None

    def process(self, item: Any) -> Iterable[Any]:
        acq: ismrmrd.Acquisition = item
        if acq.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT):
            self._noise.append(np.array(acq.data, dtype=np.complex64))
            self._noise_dwell_us = float(acq.sample_time_us)
            self._covariance = None
            self._whitening.clear()
            return (acq,) if self.cfg.pass_noise_through else ()
        w = self._matrix(float(acq.sample_time_us))
        if w is not None:
            acq.data[:] = w @ acq.data
        return (acq,)

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
