"""Velocity maps from the reference (set 0) and velocity-encoded (set 1) cine images of a flow series.

Upstream, the cine plugins reconstruct each velocity encoding like any cine series (noise adjustment,
oversampling removal, ECG binning, parallel-imaging unfolding, complex coil combination with the
same coil maps for both sets); this plugin pairs the two encodings per slice and cardiac phase and
emits, per phase, a magnitude image and a velocity image in cm/s (see :mod:`plugins.mr.flow_common`).
Coil-resolved complex images (channels > 1) are combined with the noise-weighted phase difference.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Literal

import ismrmrd
import numpy as np
import torch
from pydantic import Field

from plugins.mr.cine_items import CineImageSeries
from plugins.mr.flow_common import (
    MAGNITUDE,
    ROLE_KEY,
    VELOCITY,
    SliceBuffer,
    SliceSeries,
    announced_n_phases,
    check_set_limits,
    make_image,
    template_from_acquisition,
    velocity_encoding_from_header,
    velocity_window,
)
from plugins.runtime.config import PluginConfig
from plugins.runtime.plugin import ChainContext, Plugin
from recon.phasecontrast.velocity import (
    VelocityEncoding,
    combined_magnitude,
    phase_difference_and_magnitude,
    velocity_from_complex_difference,
    velocity_from_phase,
)

_SETS = ("set0", "set1")


class FlowVelocityConfig(PluginConfig):
    """Parameters of :class:`FlowVelocity`."""

    method: Literal["phase_difference", "complex_difference"] = Field(
        "phase_difference", description="velocity estimate: phase difference (signed) or complex difference"
    )
    n_phases: int | None = Field(
        None, ge=1, le=200, description="cardiac phases per slice (None: from the header)"
    )
    magnitude_series_index: int = Field(
        1, ge=0, le=65535, description="image_series_index of the magnitude images"
    )
    velocity_series_index: int = Field(
        2, ge=0, le=65535, description="image_series_index of the velocity images"
    )


def velocity_maps(
    reference: torch.Tensor,
    encoded: torch.Tensor,
    encoding: VelocityEncoding,
    method: str,
    coil_dim: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(magnitude, velocity in cm/s) of paired complex images; ``coil_dim`` for coil-resolved input."""
    if method == "complex_difference":
        magnitude = combined_magnitude(reference, encoded, coil_dim)
        return magnitude, velocity_from_complex_difference(reference, encoded, encoding, coil_dim)
    delta_phase, magnitude = phase_difference_and_magnitude(reference, encoded, coil_dim)
    return magnitude, velocity_from_phase(delta_phase, encoding)


def _complex_stack(series: SliceSeries, role: str) -> tuple[torch.Tensor, list[ismrmrd.Image]]:
    ordered = [series.images[(role, p)] for p in series.phases(role)]
    for im in ordered:
        if not np.iscomplexobj(im.data):
            raise ValueError(
                f"flow_velocity needs complex images (phase kept), got data_type {im.data_type} for slice "
                f"{im.slice} phase {im.phase}: use a complex coil combination upstream, not root-sum-of-squares"
            )
    pixels = np.stack([np.asarray(im.data)[:, 0] for im in ordered])  # (phases, channels, y, x)
    return torch.from_numpy(pixels), ordered


def _series_rr_ms(trigger_times_ms: torch.Tensor) -> float | None:
    """R–R (ms) that the phases tile: ``n_phases`` × the spacing of the phase trigger times."""
    n = trigger_times_ms.shape[0]
    if n < 2:
        return None
    spacing = float(torch.diff(trigger_times_ms.to(torch.float64)).median())
    return n * spacing if spacing > 0 else None


class FlowVelocity(Plugin):
    """Pairs reference/encoded cine images (set 0/1) and emits magnitude and velocity (cm/s) images.

    Accepts the cine reconstruction's :class:`~plugins.mr.cine_items.CineImageSeries` (coil-resolved or
    combined complex images, ``reference.idx.set`` = encoding) or complex ``ismrmrd.Image`` items.
    """

    Config = FlowVelocityConfig
    accepts = (ismrmrd.Image, CineImageSeries)

    def __init__(self, config: FlowVelocityConfig, context: ChainContext) -> None:  # type: ignore[override]
        super().__init__(config, context)
        self.cfg = config
        self.encoding = velocity_encoding_from_header(context.header)
        check_set_limits(context.header)
        n_phases = config.n_phases or announced_n_phases(context.header)
        self.buffer = SliceBuffer(_SETS, n_phases)
        self.series: dict[tuple[int, int], CineImageSeries] = {}

    def process(self, item: Any) -> Iterable[Any]:
        if isinstance(item, CineImageSeries):
            yield from self._process_series(item)
            return
        image: ismrmrd.Image = item
        if int(image.set) not in (0, 1):
            raise ValueError(
                f"flow image with set={image.set}: only 0 (reference) and 1 (velocity-encoded) exist"
            )
        complete = self.buffer.add(image, _SETS[int(image.set)])
        if complete is not None:
            series = self.buffer.pop(complete)
            ref, templates = _complex_stack(series, "set0")
            enc, _ = _complex_stack(series, "set1")
            yield from self._emit(ref, enc, templates, meta_rr_ms=None)

    def _process_series(self, item: CineImageSeries) -> Iterator[ismrmrd.Image]:
        set_index = int(item.reference.idx.set)
        if set_index not in (0, 1):
            raise ValueError(
                f"cine series with idx.set={set_index}: only 0 (reference) and 1 (encoded) exist"
            )
        self.series[(item.slice_index, set_index)] = item
        ref_series, enc_series = (
            self.series.get((item.slice_index, 0)),
            self.series.get((item.slice_index, 1)),
        )
        if ref_series is None or enc_series is None:
            return
        del self.series[(item.slice_index, 0)], self.series[(item.slice_index, 1)]
        if ref_series.images.shape != enc_series.images.shape:
            raise ValueError(
                f"slice {item.slice_index}: reference {tuple(ref_series.images.shape)} and encoded "
                f"{tuple(enc_series.images.shape)} series differ in shape"
            )
        shape_yx = (int(ref_series.images.shape[-2]), int(ref_series.images.shape[-1]))
        templates = [
            template_from_acquisition(ref_series.reference, self.context.header, shape_yx, p, float(t))
            for p, t in enumerate(ref_series.trigger_times_ms.tolist())
        ]
        rr_ms = _series_rr_ms(ref_series.trigger_times_ms)
        yield from self._emit(ref_series.images, enc_series.images, templates, rr_ms)

    def finish(self) -> Iterable[Any]:
        for _, series in self.buffer.pop_all():
            if series.phases("set0") != series.phases("set1"):
                raise ValueError(
                    f"reference phases {series.phases('set0')} and encoded phases {series.phases('set1')} differ"
                )
            ref, templates = _complex_stack(series, "set0")
            enc, _ = _complex_stack(series, "set1")
            yield from self._emit(ref, enc, templates, meta_rr_ms=None)
        if self.series:
            missing = sorted(self.series)
            raise ValueError(f"flow series without their partner encoding (slice, set): {missing}")

    def _emit(
        self, ref: torch.Tensor, enc: torch.Tensor, templates: list[ismrmrd.Image], meta_rr_ms: float | None
    ) -> Iterator[ismrmrd.Image]:
        """``ref``/``enc``: ``(phases, coils_or_1, y, x)`` complex."""
        device = self.context.device
        coil_dim = 1 if ref.shape[1] > 1 else None
        mag, vel = velocity_maps(ref.to(device), enc.to(device), self.encoding, self.cfg.method, coil_dim)
        mag = mag if coil_dim is not None else mag[:, 0]
        vel = vel if coil_dim is not None else vel[:, 0]
        meta = {
            "VENC_cm_per_s": f"{self.encoding.venc_cm_per_s:g}",
            "flow_direction": str(self.encoding.flow_direction),
        }
        if meta_rr_ms is not None:
            meta["rr_ms"] = f"{meta_rr_ms:.3f}"
        window = velocity_window(self.encoding.venc_cm_per_s)
        mag_np, vel_np = mag.cpu().numpy(), vel.cpu().numpy()
        for p, template in enumerate(templates):
            yield make_image(
                mag_np[p],
                template,
                ismrmrd.IMTYPE_MAGNITUDE,
                self.cfg.magnitude_series_index,
                {ROLE_KEY: MAGNITUDE, **meta},
            )
            yield make_image(
                vel_np[p],
                template,
                ismrmrd.IMTYPE_PHASE,
                self.cfg.velocity_series_index,
                {ROLE_KEY: VELOCITY, "units": "cm/s", "scale": "1", "offset": "0", **window, **meta},
            )
