"""Dixon reconstruction: multi-echo Cartesian acquisitions → water, fat, fat fraction and B0 map.

Each slice is reconstructed as soon as its last readout arrives (``ACQ_LAST_IN_SLICE``): coil images per
echo (FFT, or GRAPPA when accelerated), then one phase-preserving coil combination for all echoes.  At the
end of the stream the slices are stacked into a volume located in patient coordinates from the readout
headers, separated (2-point for two echoes, multi-echo with a B0 estimate and swap correction for three),
and emitted as a :class:`~plugins.mr.dixon_items.DixonVolume` plus water / fat / fat-fraction / B0 images.
Echo times and field strength come from the header.  Place after noise adjust and oversampling removal.
A :class:`~plugins.runtime.items.StreamInterrupted` input drops the slices it cut (named as
:class:`~plugins.runtime.items.IncompleteUnit`); the volume is made from the complete slices.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import ismrmrd
import numpy as np
import torch
from pydantic import Field

from plugins.mr.dixon_header import DixonProtocol, dixon_protocol
from plugins.mr.dixon_images import volume_to_images
from plugins.mr.dixon_items import DixonVolume
from plugins.runtime.config import PluginConfig
from plugins.runtime.executor import UnitJob
from plugins.runtime.items import IncompleteUnit, StreamInterrupted
from plugins.runtime.plugin import ChainContext, Plugin
from recon.cine.unfold import detect_acceleration
from recon.petmr_ac.dixon_coils import combine_echoes, echo_coil_images
from recon.petmr_ac.dixon_display import (
    body_mask,
    fat_fraction_percent,
    signal_mask,
    smooth_field_map,
    symmetric_window_hz,
)
from recon.petmr_ac.grid import VoxelGrid, grid_from_ismrmrd
from recon.petmr_ac.pipeline import MuMapSettings, separate


class DixonReconConfig(PluginConfig):
    """Parameters of the Dixon reconstruction."""

    field_map_downsample: int = Field(
        0, ge=0, le=4, description="in-plane block size of the B0 estimate, voxels (0 = blocks of about 7 mm)"
    )
    correct_swaps: bool = Field(True, description="detect and correct fat-water swaps (multi-echo)")
    emit_images: bool = Field(True, description="emit water, fat, fat-fraction (%) and B0 (Hz) images")
    field_map_smoothing_mm: float = Field(
        6.0,
        gt=0.0,
        le=50.0,
        description="Gaussian σ of the B0 image (the displayed map; the separation uses its own estimate), mm",
    )
    image_series_index: int = Field(
        10, ge=0, le=65000, description="series of the water images; fat, FF and B0 follow (+1, +2, +3)"
    )


@dataclass
class _SliceBuffer:
    kspace: np.ndarray  # (echoes, coils, ky, kx) complex64
    sampled: np.ndarray  # (ky,) bool
    calibration: np.ndarray  # (ky,) bool
    header: ismrmrd.AcquisitionHeader
    imaging_seen: set[int] = field(default_factory=set)


class DixonReconstruction(Plugin):
    """Multi-echo Dixon: per-slice coil images and combination, then water/fat separation with a B0 map."""

    Config = DixonReconConfig
    accepts = (ismrmrd.Acquisition, StreamInterrupted)
    unit_kind = "Dixon volume"

    def __init__(self, config: DixonReconConfig, context: ChainContext) -> None:  # type: ignore[override]
        super().__init__(config, context)
        self.cfg = config
        self._protocol: DixonProtocol | None = None
        self._buffers: dict[int, _SliceBuffer] = {}
        self._slices: dict[int, tuple[np.ndarray, ismrmrd.AcquisitionHeader]] = {}
        self._last_stamp = 0
        self._uid = 0

    def _proto(self) -> DixonProtocol:
        if self._protocol is None:
            self._protocol = dixon_protocol(self.context.header)
        return self._protocol

    def process(self, item: Any) -> Iterable[Any]:
        if isinstance(item, StreamInterrupted):  # the slices it cut are named, never half-reconstructed
            cut = [self._incomplete(s) for s in sorted(self._buffers)]
            return [*cut, item]
        acq: ismrmrd.Acquisition = item
        if acq.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT):
            return (acq,)
        proto = self._proto()
        s, echo, ky = int(acq.idx.slice), int(acq.idx.contrast), int(acq.idx.kspace_encode_step_1)
        if echo >= len(proto.echo_times_s):
            raise ValueError(
                f"contrast index {echo} but the header lists {len(proto.echo_times_s)} echo times"
            )
        buf = self._buffers.get(s)
        if buf is None:
            data = acq.data
            shape = (len(proto.echo_times_s), data.shape[0], proto.n_ky, data.shape[1])
            buf = _SliceBuffer(
                np.zeros(shape, np.complex64),
                np.zeros(proto.n_ky, bool),
                np.zeros(proto.n_ky, bool),
                ismrmrd.AcquisitionHeader.from_buffer_copy(acq.getHead()),
            )
            self._buffers[s] = buf
        buf.kspace[echo, :, ky, :] = acq.data
        if echo == 0:
            buf.sampled[ky] = True
            if acq.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION) or acq.is_flag_set(
                ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING
            ):
                buf.calibration[ky] = True
            if not acq.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION):
                buf.imaging_seen.add(ky)
        self._last_stamp, self._uid = int(acq.acquisition_time_stamp), int(acq.measurement_uid)
        if acq.is_flag_set(ismrmrd.ACQ_LAST_IN_SLICE):
            self._reconstruct_slice(s)
        if acq.is_flag_set(ismrmrd.ACQ_LAST_IN_MEASUREMENT):
            return self._volume_outputs()  # the μ-map stage must not wait for the end of the session
        return ()

    def _reconstruct_slice(self, s: int) -> None:
        buf = self._buffers.pop(s)
        imaging = np.zeros_like(buf.sampled)
        imaging[sorted(buf.imaging_seen)] = True
        acceleration = detect_acceleration(torch.from_numpy(imaging)) if not buf.sampled.all() else 1
        kspace = torch.from_numpy(buf.kspace)
        coil_images = echo_coil_images(
            kspace, torch.from_numpy(buf.sampled), torch.from_numpy(buf.calibration), acceleration
        )
        combined = combine_echoes(coil_images, kspace[0], torch.from_numpy(buf.calibration))
        proto = self._proto()
        self._slices[s] = (_crop_phase(combined.numpy(), proto.n_y), buf.header)
        self.log.debug("slice %d: %d echoes combined (R=%d)", s, combined.shape[0], acceleration)

    def finish(self) -> Iterable[Any]:
        return self._volume_outputs()

    def _incomplete(self, s: int) -> IncompleteUnit:
        buf = self._buffers.pop(s)
        missing = np.flatnonzero(~buf.sampled).tolist()
        self.log.warning("slice %d: the stream was interrupted inside it; not reconstructed", s)
        return IncompleteUnit(
            stage="dixon_recon",
            kind="slice",
            index=s,
            readouts_received=int(buf.sampled.sum()),
            missing=f"no end-of-slice readout; ky lines never received: {len(missing)} of {buf.sampled.size} "
            f"(first {missing[0] if missing else '-'}); the volume and μ-map lack this slice",
        )

    def _volume_outputs(self) -> Iterator[Any]:
        """Stack the buffered slices (once) into one Dixon volume unit: its images and :class:`DixonVolume`."""
        for s in list(self._buffers):
            self._reconstruct_slice(s)
        if not self._slices:
            return
        proto = self._proto()
        order = sorted(self._slices)
        echoes = np.stack([self._slices[s][0] for s in order], axis=1)  # (echoes, z, y, x)
        grid = _volume_grid([self._slices[s][1] for s in order], proto, echoes.shape[-2:])
        self._slices = {}
        yield UnitJob(
            self.unit_kind or "", self._uid, "volume_unit", (echoes, grid, self._uid, self._last_stamp)
        )

    def volume_unit(
        self, echoes: np.ndarray, grid: Any, measurement_uid: int, last_readout_time_stamp: int
    ) -> list[Any]:
        """Water/fat separation of one volume ``echoes`` ``(echoes, z, y, x)`` complex on ``grid``: the
        images (when ``emit_images``) then the :class:`DixonVolume` — wherever the executor runs it."""
        proto = self._proto()
        settings = MuMapSettings(
            field_map_downsample=self.cfg.field_map_downsample, correct_swaps=self.cfg.correct_swaps
        )
        result = separate(echoes, proto.echo_times_s, proto.larmor_hz, grid.voxel_size_mm, settings)
        volume = DixonVolume(
            result=result,
            grid=grid,
            field_strength_t=proto.field_strength_t,
            echo_times_s=proto.echo_times_s,
            method="two-point" if len(proto.echo_times_s) == 2 else "multi-echo",
            measurement_uid=measurement_uid,
            last_readout_time_stamp=last_readout_time_stamp,
        )
        self.log.info(
            "Dixon %s: %d slices, %d swap-corrected voxels",
            volume.method,
            echoes.shape[1],
            result.n_swap_corrected_voxels,
        )
        images = list(self._images(volume)) if self.cfg.emit_images else []
        return [*images, volume]

    def _images(self, volume: DixonVolume) -> Iterable[ismrmrd.Image]:
        """Water, fat, fat fraction (%, 0–100, 0 outside the signal) and a smooth B0 map (Hz, 0 outside the
        body); see :mod:`recon.petmr_ac.dixon_display`."""
        r, base = volume.result, self.cfg.image_series_index
        water, fat = np.abs(r.water), np.abs(r.fat)
        signal = signal_mask(water + fat)
        body = body_mask(signal)
        period_s = float(np.min(np.diff(np.asarray(volume.echo_times_s, dtype=np.float64))))
        b0 = smooth_field_map(
            r.field_map_hz, signal.astype(np.float32), body, volume.grid.voxel_size_mm, period_s,
            sigma_mm=self.cfg.field_map_smoothing_mm,
        )  # fmt: skip
        ff_meta = {"WindowCenter": "50", "WindowWidth": "100", "Mask": "signal"}
        b0_meta = {
            "WindowCenter": "0",
            "WindowWidth": f"{2.0 * symmetric_window_hz(b0, body):g}",
            "Mask": "body",
            "SmoothingSigma_mm": f"{self.cfg.field_map_smoothing_mm:g}",
        }
        maps: tuple[tuple[str, np.ndarray, str, dict[str, str]], ...] = (
            ("water", water, "a.u.", {}),
            ("fat", fat, "a.u.", {}),
            ("fat_fraction", fat_fraction_percent(r.fat_fraction, signal), "percent", ff_meta),
            ("b0", b0, "Hz", b0_meta),
        )
        for i, (name, data, unit, extra) in enumerate(maps):
            meta = {"DixonMap": name, "Unit": unit, "DixonMethod": volume.method, **extra}
            yield from volume_to_images(
                data, volume.grid, base + i, meta, volume.measurement_uid, volume.last_readout_time_stamp
            )


def _crop_phase(images: np.ndarray, n_y: int) -> np.ndarray:
    """Crop (…, ny_encoded, x) to the recon matrix along y (centred), when the encoding is larger."""
    ny = images.shape[-2]
    if ny <= n_y:
        return images
    start = ny // 2 - n_y // 2
    return images[..., start : start + n_y, :]


def _volume_grid(
    headers: list[ismrmrd.AcquisitionHeader], proto: DixonProtocol, shape_yx: tuple[int, ...]
) -> VoxelGrid:
    """MR grid from the first slice's readout header and the spacing of the slice positions."""
    first = headers[0]
    normal = np.asarray(first.slice_dir[:], dtype=np.float64)
    positions = np.array([h.position[:] for h in headers], dtype=np.float64)
    if len(headers) > 1:
        steps = np.diff(positions @ normal)
        if np.any(steps <= 0) or not np.allclose(steps, steps[0], rtol=1e-3, atol=1e-3):
            raise ValueError(f"Dixon slices must be equally spaced along the slice normal, got steps {steps}")
        spacing = float(steps[0])
    else:
        spacing = proto.fov_mm[2]
    ny, nx = int(shape_yx[0]), int(shape_yx[1])
    return grid_from_ismrmrd(
        positions[0],
        first.read_dir[:],
        first.phase_dir[:],
        first.slice_dir[:],
        (proto.fov_mm[0], proto.fov_mm[1] * ny / proto.n_y),
        (nx, ny, len(headers)),
        spacing,
    )
