"""Items that travel between the cine plugins (after accumulation, before image output).

All tensors follow the cine axis convention: k-space ``(phases, coils, ky, kx)``, images
``(phases, coils_or_1, y, x)``.  ``reference`` is the ``ismrmrd.AcquisitionHeader`` of the slice's
k-space-centre readout (geometry: position, read/phase/slice directions, time stamps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class CineSliceRaw:
    """All imaging readouts of one slice, in acquisition order.

    Attributes:
        slice_index: ISMRMRD ``idx.slice``.
        lines: ``(n_readouts, coils, n_kx)`` complex64 readouts (already whitened / cropped upstream).
        ky_index: ``(n_readouts,)`` int64 ``kspace_encode_step_1`` (0..n_ky-1).
        is_calibration: ``(n_readouts,)`` bool, flagged PARALLEL_CALIBRATION(_AND_IMAGING).
        is_imaging: ``(n_readouts,)`` bool, not calibration-only (part of the undersampled pattern).
        readout_times_s: ``(n_readouts,)`` float64 acquisition times in s (2.5 ms ticks × 2.5e-3).
        repetition: ``(n_readouts,)`` int64 ``idx.repetition`` (ungated frames).
        r_wave_times_s: ``(n_r,)`` float64 R-wave times in s (may be empty for ungated data).
        n_ky: number of phase-encoding lines of the encoded matrix.
        reference: header of the k-space-centre readout (geometry).
    """

    slice_index: int
    lines: torch.Tensor
    ky_index: torch.Tensor
    is_calibration: torch.Tensor
    is_imaging: torch.Tensor
    readout_times_s: torch.Tensor
    repetition: torch.Tensor
    r_wave_times_s: torch.Tensor
    n_ky: int
    reference: Any

    def __post_init__(self) -> None:
        n = self.lines.shape[0]
        for name in ("ky_index", "is_calibration", "is_imaging", "readout_times_s", "repetition"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {tuple(getattr(self, name).shape)}")
        if self.lines.ndim != 3:
            raise ValueError(f"lines must be (n_readouts, coils, n_kx), got {tuple(self.lines.shape)}")


@dataclass(frozen=True)
class CineSliceBinned:
    """K-space of one slice on the output frames (cardiac phases, or repetitions for ungated data).

    Attributes:
        slice_index: ISMRMRD ``idx.slice``.
        kspace: ``(phases, coils, n_ky, n_kx)`` complex, zero on lines not acquired.
        sampled: ``(phases, n_ky)`` bool, lines holding data per frame.
        imaging: ``(n_ky,)`` bool, lines of the undersampled imaging pattern (not calibration-only).
        calibration: ``(n_ky,)`` bool, calibration (ACS) lines.
        trigger_times_ms: ``(phases,)`` float64 time after the R-wave of each frame's centre, ms.
        n_rejected_beats: beats left out by arrhythmia rejection.
        reference: header of the k-space-centre readout (geometry).
    """

    slice_index: int
    kspace: torch.Tensor
    sampled: torch.Tensor
    imaging: torch.Tensor
    calibration: torch.Tensor
    trigger_times_ms: torch.Tensor
    n_rejected_beats: int
    reference: Any

    def __post_init__(self) -> None:
        n_phases, _, n_ky, _ = self.kspace.shape
        if (
            self.sampled.shape != (n_phases, n_ky)
            or self.imaging.shape != (n_ky,)
            or self.calibration.shape != (n_ky,)
        ):
            raise ValueError("sampled must be (phases, n_ky); imaging and calibration (n_ky,)")
        if self.trigger_times_ms.shape != (n_phases,):
            raise ValueError("trigger_times_ms must have one entry per phase")


@dataclass(frozen=True)
class CineImageSeries:
    """Reconstructed images of one slice.

    Attributes:
        slice_index: ISMRMRD ``idx.slice``.
        images: ``(phases, coils, y, x)`` complex coil images, or ``(phases, 1, y, x)`` when combined.
        is_combined: whether the coil axis has been combined already.
        calibration: ``(coils, n_acs, n_kx)`` time-averaged calibration k-space (for coil maps), or None.
        trigger_times_ms: ``(phases,)`` float64 trigger time of each frame, ms.
        method: the unfolding method that produced the images (``fft``, ``grappa``, ``sense``, ``cs``).
        reference: header of the k-space-centre readout (geometry).
    """

    slice_index: int
    images: torch.Tensor
    is_combined: bool
    calibration: torch.Tensor | None
    trigger_times_ms: torch.Tensor
    method: str
    reference: Any

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or (self.is_combined and self.images.shape[1] != 1):
            raise ValueError(f"images must be (phases, coils_or_1, y, x), got {tuple(self.images.shape)}")
        if self.trigger_times_ms.shape != (self.images.shape[0],):
            raise ValueError("trigger_times_ms must have one entry per phase")
