"""Multi-image slice reconstruction for the tissue-characterisation chains (LGE, MOLLI, T2, T2*).

Accumulates the readouts of each slice by ``idx.contrast`` (the image of the series: LGE IR / reference,
MOLLI inversion time, T2 preparation, T2* echo), reconstructs at ``ACQ_LAST_IN_SLICE`` the coil images of
every image (FFT, or GRAPPA from the embedded calibration lines with one kernel for all images,
:func:`recon.mapping.coils.series_coil_images`)
and combines them with **one** set of coil weights (:func:`recon.petmr_ac.dixon_coils.combine_echoes`, maps from
image ``coil_map_contrast``), so the phase between images is preserved (PSIR needs it).  Emits a
:class:`ContrastSeries` per slice: complex images ``(n_images, y, x)``, the time stamp of each image's
k-space centre line (ms; MOLLI TIs are read from it), and the geometry.  Place after noise adjust and
oversampling removal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import ismrmrd
import numpy as np
import torch
from pydantic import Field

from plugins.io.mr_header import mr_header
from plugins.runtime.config import PluginConfig
from plugins.runtime.items import IncompleteUnit, StreamInterrupted
from plugins.runtime.plugin import ChainContext, Plugin
from recon.cine.unfold import detect_acceleration
from recon.mapping.coils import series_coil_images
from recon.petmr_ac.dixon_coils import combine_echoes

TICK_MS = 2.5


@dataclass(frozen=True)
class ContrastSeries:
    """One slice's images: ``images`` ``(n, y, x)`` complex64 (recon matrix); ``centre_time_ms`` ``(n,)``
    acquisition time of each image's k-space centre line (ms since midnight, 2.5 ms ticks);
    ``readouts_per_image`` and ``centre_readout`` (position of the centre line in acquisition order) of
    image 0; ``header`` the first readout header of the slice (geometry); ``fov_mm`` (x, y, z)."""

    slice_index: int
    images: np.ndarray
    centre_time_ms: np.ndarray
    readouts_per_image: int
    centre_readout: int
    header: ismrmrd.AcquisitionHeader
    fov_mm: tuple[float, float, float]


class MappingSeriesConfig(PluginConfig):
    """Parameters of the multi-image slice reconstruction."""

    coil_map_contrast: int = Field(
        0, ge=0, le=63, description="image whose calibration lines give the coil maps (LGE: 1, the reference)"
    )


@dataclass
class _Slice:
    kspace: np.ndarray  # (images, coils, ky, kx)
    sampled: np.ndarray
    calibration: np.ndarray
    header: ismrmrd.AcquisitionHeader
    imaging: set[int] = field(default_factory=set)
    centre_ticks: dict[int, int] = field(default_factory=dict)
    order: dict[int, list[int]] = field(default_factory=dict)


class MappingSeries(Plugin):
    """Per-slice multi-image reconstruction with one phase-preserving coil combination."""

    Config = MappingSeriesConfig
    accepts = (ismrmrd.Acquisition, StreamInterrupted)

    def __init__(self, config: MappingSeriesConfig, context: ChainContext) -> None:  # type: ignore[override]
        super().__init__(config, context)
        self.cfg = config
        self._slices: dict[int, _Slice] = {}

    def _new(self, acq: ismrmrd.Acquisition) -> _Slice:
        typed = mr_header(self.context.header)
        if typed is None or not typed.encodings:
            raise ValueError("the mapping reconstruction needs the ISMRMRD header (encoding, contrasts)")
        limit = typed.limit("contrast")
        n_images = limit.count if limit is not None else 1
        n_ky = typed.encodings[0].encoded.matrix[1]
        shape = (n_images, acq.data.shape[0], n_ky, acq.data.shape[1])
        return _Slice(np.zeros(shape, np.complex64), np.zeros(n_ky, bool), np.zeros(n_ky, bool),
                      ismrmrd.AcquisitionHeader.from_buffer_copy(acq.getHead()))  # fmt: skip

    def process(self, item: Any) -> Iterable[Any]:
        if isinstance(item, StreamInterrupted):
            cut = [IncompleteUnit(stage="mapping_series", kind="slice", index=s, readouts_received=int(b.sampled.sum()),
                                  missing="no end-of-slice readout") for s, b in sorted(self._slices.items())]  # fmt: skip
            self._slices.clear()
            return [*cut, item]
        acq: ismrmrd.Acquisition = item
        if acq.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT):
            return (acq,)
        s, c, ky = int(acq.idx.slice), int(acq.idx.contrast), int(acq.idx.kspace_encode_step_1)
        buf = self._slices.get(s) or self._slices.setdefault(s, self._new(acq))
        if c >= buf.kspace.shape[0]:
            raise ValueError(f"contrast index {c} but the header announces {buf.kspace.shape[0]} images")
        buf.kspace[c, :, ky] = acq.data
        buf.order.setdefault(c, []).append(ky)
        if c == 0:
            buf.sampled[ky] = True
            if acq.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION) or acq.is_flag_set(
                ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING
            ):
                buf.calibration[ky] = True
            if not acq.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION):
                buf.imaging.add(ky)
        if ky == buf.kspace.shape[2] // 2:
            buf.centre_ticks[c] = int(acq.acquisition_time_stamp)
        if acq.is_flag_set(ismrmrd.ACQ_LAST_IN_SLICE):
            return (self._reconstruct(s),)
        return ()

    def _reconstruct(self, s: int) -> ContrastSeries:
        buf = self._slices.pop(s)
        imaging = np.zeros_like(buf.sampled)
        imaging[sorted(buf.imaging)] = True
        r = detect_acceleration(torch.from_numpy(imaging)) if not buf.sampled.all() else 1
        kspace = torch.from_numpy(buf.kspace).to(self.context.device)
        sampled, calib = (torch.from_numpy(a).to(self.context.device) for a in (buf.sampled, buf.calibration))
        coil_images = series_coil_images(kspace, sampled, calib, r)
        ref = min(self.cfg.coil_map_contrast, kspace.shape[0] - 1)
        combined = combine_echoes(coil_images, kspace[ref], calib).cpu().numpy()
        typed = mr_header(self.context.header)
        assert typed is not None
        recon = typed.encodings[0].recon
        ny = recon.matrix[1]
        start = combined.shape[-2] // 2 - ny // 2
        images = combined[..., start : start + ny, :] if combined.shape[-2] > ny else combined
        n = buf.kspace.shape[0]
        times = np.array([buf.centre_ticks.get(c, -1) * TICK_MS for c in range(n)])
        order0 = buf.order.get(0, [])
        centre = order0.index(buf.kspace.shape[2] // 2) if buf.kspace.shape[2] // 2 in order0 else 0
        self.log.debug("slice %d: %d images (R=%d)", s, n, r)
        return ContrastSeries(
            s, images.astype(np.complex64), times, len(order0), centre, buf.header, recon.fov_mm
        )

    def finish(self) -> Iterable[Any]:
        return [self._reconstruct(s) for s in sorted(self._slices)]
