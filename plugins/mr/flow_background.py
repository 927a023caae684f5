"""Background (eddy-current) offset correction of velocity images, per slice (see recon.phasecontrast.series)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import ismrmrd
import torch
from pydantic import Field

from plugins.mr.flow_common import (
    OFFSET,
    ROLE_KEY,
    FlowSlicePlugin,
    SliceSeries,
    field_strength_t,
    image_positions_m,
    make_image,
    pixel_area_mm2,
    replace_pixels,
    stacks_of,
)
from plugins.runtime.config import PluginConfig
from plugins.runtime.plugin import ChainContext
from recon.phasecontrast.maxwell import ConcomitantMoments, correct_maxwell
from recon.phasecontrast.series import BackgroundSettings, correct_background


class FlowBackgroundConfig(PluginConfig):
    """Parameters of :class:`FlowBackground`."""

    polynomial_order: int = Field(
        6, ge=0, le=8, description="order of the 2-D background polynomial (0 = constant)"
    )
    signal_threshold_fraction: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="noise mask: magnitude threshold as a fraction of the 99th percentile",
    )
    static_percentile: float = Field(
        90.0,
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
    local_sigma_mm: float = Field(
        60.0,
        ge=0.0,
        le=300.0,
        description="around each detected vessel, refit the offset with static tissue weighted by a "
        "Gaussian of this width (mm) of its distance to the vessel; 0 = slice-wide fit only",
    )
    local_order: int = Field(3, ge=0, le=8, description="polynomial order of the vessel-local fits")
    n_phases: int | None = Field(
        None, ge=1, le=200, description="cardiac phases per slice (None: from the header)"
    )
    zero_outside_body: bool = Field(
        True, description="set velocities outside the body (signal with holes filled) to 0 cm/s"
    )
    emit_offset_image: bool = Field(
        False, description="also emit the subtracted offset map (cm/s) per slice, for quality control"
    )
    offset_series_index: int = Field(3, ge=0, le=65535, description="image_series_index of the offset images")
    maxwell_moments_mt2_ms_per_m2: tuple[float, float, float, float, float] | None = Field(
        None,
        description="Maxwell correction: encoded−reference ∫GxGx, GyGy, GzGz, GxGz, GyGz dt in (mT/m)²·ms (None = off)",
    )


class FlowBackground(FlowSlicePlugin):
    """Fits a polynomial to static tissue and subtracts it from every velocity image of the slice.

    The offset is subtracted inside the body only, clamped to the range the polynomial takes on the static
    pixels (no wild extrapolation); outside the body the velocity is 0 (``zero_outside_body``).

    With ``maxwell_moments_mt2_ms_per_m2`` set, the concomitant-field velocity offset computed from the
    sequence's gradient moments is removed first (before the empirical fit).
    """

    Config = FlowBackgroundConfig

    def __init__(self, config: FlowBackgroundConfig, context: ChainContext) -> None:  # type: ignore[override]
        super().__init__(config, context, config.n_phases)
        self.cfg = config
        self.settings = BackgroundSettings(
            order=config.polynomial_order,
            local_order=config.local_order,
            signal_threshold_fraction=config.signal_threshold_fraction,
            static_percentile=config.static_percentile,
            exclude_margin_pixels=config.exclude_margin_pixels,
            n_exclude_vessels=config.n_exclude_vessels,
            zero_outside_body=config.zero_outside_body,
        )
        moments = config.maxwell_moments_mt2_ms_per_m2
        self.moments = ConcomitantMoments(*moments) if moments is not None else None
        self.field_strength_t = field_strength_t(context.header) if moments is not None else 0.0

    def process_slice(self, slice_index: int, series: SliceSeries) -> Iterator[Any]:
        mag, vel, mag_images, vel_images = stacks_of(series)
        device = self.context.device
        velocity = torch.from_numpy(vel).to(device)
        if self.moments is not None:
            positions = image_positions_m(vel_images[0]).to(device)
            velocity = correct_maxwell(
                velocity, positions, self.moments, self.field_strength_t, self.encoding
            )
        pixel_mm = math.sqrt(pixel_area_mm2(vel_images[0]))
        settings = replace(self.settings, local_sigma_pixels=self.cfg.local_sigma_mm / pixel_mm)
        result = correct_background(velocity, torch.from_numpy(mag).to(device), settings)
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
        if self.cfg.emit_offset_image:
            offset = (velocity - result.velocity_cm_per_s).mean(dim=0).cpu().numpy()
            yield make_image(
                offset,
                vel_images[0],
                ismrmrd.IMTYPE_PHASE,
                self.cfg.offset_series_index,
                {ROLE_KEY: OFFSET, "units": "cm/s", "scale": "1", "offset": "0"},
            )
        for p, (mag_image, vel_image) in enumerate(zip(mag_images, vel_images, strict=True)):
            yield mag_image
            yield replace_pixels(vel_image, corrected[p], extra)
