"""Remove readout oversampling from every readout (crop the central field of view along k0)."""

from __future__ import annotations

from typing import Any

import ismrmrd
import numpy as np
import torch
from pydantic import Field

from plugins.mr.cine_header import cine_encoding
from plugins.runtime.config import PluginConfig
from plugins.runtime.plugin import ChainContext, MapPlugin
from recon.cine.noise import remove_readout_oversampling


class CineRemoveOversamplingConfig(PluginConfig):
    """Parameters of the oversampling removal stage."""

    factor: int = Field(
        0, ge=0, le=8, description="readout oversampling factor (0 = encoded / recon matrix from the header)"
    )


class CineRemoveOversampling(MapPlugin):
    """Crops the readout to the recon field of view (FFT along k0, keep the centre, FFT back)."""

    Config = CineRemoveOversamplingConfig
    accepts = (ismrmrd.Acquisition,)

    def __init__(self, config: CineRemoveOversamplingConfig, context: ChainContext) -> None:  # type: ignore[override]
        super().__init__(config, context)
        enc = cine_encoding(context.header)
        self.factor = config.factor or (enc.readout_oversampling if enc else 1)
        self._matrices: dict[int, np.ndarray] = {}

    def _matrix(self, n_samples: int) -> np.ndarray:
        """The linear map k_in (n) → k_out (n / factor) as an ``(n, n / factor)`` matrix, built once per length
        from :func:`remove_readout_oversampling` of the identity (one small matmul per readout afterwards)."""
        if n_samples not in self._matrices:
            eye = torch.eye(n_samples, dtype=torch.complex128)
            self._matrices[n_samples] = (
                remove_readout_oversampling(eye, self.factor, dim=-1).to(torch.complex64).numpy()
            )
        return self._matrices[n_samples]

    def map(self, item: Any) -> Any:
        acq: ismrmrd.Acquisition = item
        if self.factor == 1 or acq.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT):
            return acq
        cropped = acq.data @ self._matrix(int(acq.number_of_samples))
        head = acq.getHead()
        head.number_of_samples = cropped.shape[-1]
        head.center_sample = int(acq.center_sample) // self.factor
        head.discard_pre = int(acq.discard_pre) // self.factor
        head.discard_post = int(acq.discard_post) // self.factor
        out = ismrmrd.Acquisition(head)
        out.data[:] = cropped
        return out
