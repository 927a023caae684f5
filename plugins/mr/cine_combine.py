"""Coil combination of cine coil images (root-sum-of-squares or B1-weighted); combined series pass through."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from plugins.mr.cine_items import CineImageSeries
from plugins.runtime.config import PluginConfig
from plugins.runtime.plugin import ChainContext, MapPlugin
from recon.cine import coilmaps, combine
from recon.common.fft import fftc


class CineCombineConfig(PluginConfig):
    """Parameters of the coil-combination stage."""

    method: Literal["b1", "rss"] = Field(
        "b1",
        description="b1: Σ C*·m with low-resolution maps from the calibration lines (complex); rss: √Σ|m|²",
    )
    n_calibration_lines: int = Field(
        24,
        ge=4,
        le=256,
        description="central lines used for the maps when the data carry no calibration block",
    )


class CineCombine(MapPlugin):
    """Combines coil images into one image per frame; already-combined series pass through unchanged."""

    Config = CineCombineConfig
    accepts = (CineImageSeries,)

    def __init__(self, config: CineCombineConfig, context: ChainContext) -> None:  # type: ignore[override]
        super().__init__(config, context)
        self.cfg = config

    def map(self, item: Any) -> Any:
        series: CineImageSeries = item
        if series.is_combined:
            return series
        coil_images = series.images
        if self.cfg.method == "rss":
            combined = combine.rss_combine(coil_images, coil_dim=1).to(coil_images.dtype)
        else:
            calib = series.calibration
            if calib is None or calib.shape[0] != coil_images.shape[1]:
                k = fftc(coil_images.mean(dim=0))
                calib = coilmaps.crop_centre(k, (min(self.cfg.n_calibration_lines, k.shape[-2]), k.shape[-1]))
            maps = coilmaps.lowres_coil_maps(
                calib.to(coil_images.device), (coil_images.shape[-2], coil_images.shape[-1])
            )
            combined = combine.b1_combine(coil_images, maps, coil_dim=1)
        return CineImageSeries(
            series.slice_index,
            combined[:, None],
            True,
            series.calibration,
            series.trigger_times_ms,
            series.method,
            series.reference,
        )
