"""Items of the PET chain besides :class:`recon.tof.listmode.ListModeBatch` and ``PETAcquisitionInfo``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon.tof.geometry import ImageGrid
from recon.tof.listmode import ListModeBatch


@dataclass(frozen=True)
class PETMuMap:
    """A 511 keV attenuation map for the PET reconstruction (from MR-based AC or a CT).

    Attributes:
        mu_per_cm: (z, y, x) float32 linear attenuation coefficients, 1/cm, ≥ 0, of shape ``grid.shape_zyx``.
        grid: where the map lives (scanner coordinates); it is resampled to the PET image grid as needed.
        source: where the map comes from (e.g. ``"MR Dixon"``, a file name), for the PET image's metadata.
        warnings: what limits the map's trust (e.g. MR coverage shorter than the PET FOV); each one line,
            carried into the PET image's ``QualityWarning`` metadata and the run's summary.
    """

    mu_per_cm: np.ndarray
    grid: ImageGrid
    source: str = ""
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if tuple(self.mu_per_cm.shape) != tuple(self.grid.shape_zyx):
            raise ValueError(
                f"mu_per_cm has shape {self.mu_per_cm.shape}, grid expects {self.grid.shape_zyx}"
            )
        if not np.all(np.isfinite(self.mu_per_cm)) or float(np.min(self.mu_per_cm, initial=0.0)) < 0:
            raise ValueError("mu_per_cm must be finite and >= 0")


@dataclass(frozen=True)
class PETFrame:
    """All list-mode events of one time frame (prompts and delayeds), ready to reconstruct.

    Attributes:
        events: the frame's batches joined in time order.
        frame_index: index of the frame (≥ 0).
        n_batches: how many batches were joined.
    """

    events: ListModeBatch
    frame_index: int
    n_batches: int

    def __post_init__(self) -> None:
        if self.frame_index < 0 or self.n_batches < 1:
            raise ValueError("PETFrame needs frame_index >= 0 and n_batches >= 1")
