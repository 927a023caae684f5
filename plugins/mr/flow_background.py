"""Background (eddy-current) offset correction of velocity images, per slice (see recon.phasecontrast.series)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from pydantic import Field

from plugins.mr.flow_common import FlowSlicePlugin, SliceSeries, replace_pixels, stacks_of
from plugins.runtime.config import PluginConfig
from plugins.runtime.plugin import ChainContext
from recon.phasecontrast.series import BackgroundSettings, correct_background


class FlowBackgroundConfig(PluginConfig):
    """Parameters of :class:`FlowBackground`."""

    polynomial_order: int = Field(
        2, ge=0, le=6, description="order of the 2-D background polynomial (0 = constant)"
    )
    signal_threshold_fraction: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="noise mask: magnitude threshold as a fraction of the 99th percentile",
    )
    static_percentile: float = Field(
        50.0,
        gt=0.0,
        le=100.0,
        description="percent of signal pixels (lowest temporal velocity std) used as static",
    )
    exclude_margin_pixels: int = Field(
        3, ge=0, le=20, description="margin around detected vessels kept out of the fit, pixels"
    )
    n_exclude_vessels: int = Field(
        4, ge=0, le=20, description="pulsatile regions detected and excluded from the fit"
    )
    n_phases: int | None = Field(
        None, ge=1, le=200, description="cardiac phases per slice (None: from the header)"
    )


class FlowBackground(FlowSlicePlugin):
    """Fits a polynomial to static tissue and subtracts it from every velocity image of the slice."""

    Config = FlowBackgroundConfig

    def __init__(self, config: FlowBackgroundConfig, context: ChainContext) -> None:  # type: ignore[override]
        super().__init__(config, context, config.n_phases)
        self.settings = BackgroundSettings(
            order=config.polynomial_order,
            signal_threshold_fraction=config.signal_threshold_fraction,
            static_percentile=config.static_percentile,
            exclude_margin_pixels=config.exclude_margin_pixels,
            n_exclude_vessels=config.n_exclude_vessels,
        )

    def process_slice(self, slice_index: int, series: SliceSeries) -> Iterator[Any]:
        mag, vel, mag_images, vel_images = stacks_of(series)
        device = self.context.device
        result = correct_background(
            torch.from_numpy(vel).to(device), torch.from_numpy(mag).to(device), self.settings
        )
        fit = result.fit
        self.log.info(
            "slice %d: background order %d from %d static pixels, residual rms %.2f cm/s, offset range %.2f..%.2f cm/s",
            slice_index,
            fit.order,
            fit.n_static_pixels,
            fit.residual_rms_cm_per_s,
            float(fit.offset_cm_per_s.min()),
            float(fit.offset_cm_per_s.max()),
        )
        extra = {
            "background_order": str(fit.order),
            "background_residual_rms_cm_per_s": f"{fit.residual_rms_cm_per_s:.4f}",
        }
        corrected = result.velocity_cm_per_s.cpu().numpy()
        for p, (mag_image, vel_image) in enumerate(zip(mag_images, vel_images, strict=True)):
            yield mag_image
            yield replace_pixels(vel_image, corrected[p], extra)
