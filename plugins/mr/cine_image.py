"""Turn a combined cine series into ``ismrmrd.Image`` magnitude images, one per (slice, phase)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import ismrmrd
import numpy as np
from pydantic import Field

from plugins.io.protocol import TICK_S
from plugins.mr.cine_header import cine_encoding
from plugins.mr.cine_items import CineImageSeries
from plugins.runtime.config import PluginConfig
from plugins.runtime.plugin import ChainContext, Plugin
from recon.cine.combine import display_scale, to_display


class CineImageOutputConfig(PluginConfig):
    """Parameters of the image output stage."""

    data_type: Literal["uint16", "float32"] = Field("uint16", description="pixel type of the output images")
    display_max: float = Field(
        4095.0, gt=0.0, le=65535.0, description="display value of the scaling percentile (uint16)"
    )
    scaling_percentile: float = Field(
        99.5, gt=0.0, le=100.0, description="magnitude percentile of the slice mapped to display_max, %"
    )
    image_series_index: int = Field(1, ge=0, le=65535, description="ISMRMRD image_series_index of the output")


def _field_of_view_mm(context: ChainContext, series: CineImageSeries) -> tuple[float, float, float]:
    enc = cine_encoding(context.header)
    if enc is not None:
        return enc.fov_mm
    return (float(series.images.shape[-1]), float(series.images.shape[-2]), 1.0)


class CineImageOutput(Plugin):
    """Emits magnitude images scaled for display, with geometry, phase index and trigger time."""

    Config = CineImageOutputConfig
    accepts = (CineImageSeries,)

    def __init__(self, config: CineImageOutputConfig, context: ChainContext) -> None:  # type: ignore[override]
        super().__init__(config, context)
        self.cfg = config
        self._index = 0

    def process(self, item: Any) -> Iterable[Any]:
        series: CineImageSeries = item
        if not series.is_combined:
            raise ValueError(
                f"slice {series.slice_index}: coil images reached image output; add a cine_combine stage"
            )
        magnitude = series.images[:, 0].abs()
        if self.cfg.data_type == "uint16":
            scale = display_scale(magnitude, self.cfg.scaling_percentile, self.cfg.display_max)
            pixels = to_display(magnitude, scale, self.cfg.display_max).cpu().numpy().astype(np.uint16)
        else:
            scale, pixels = 1.0, magnitude.cpu().numpy().astype(np.float32)
        fov = _field_of_view_mm(self.context, series)
        for phase in range(pixels.shape[0]):
            yield self._image(series, pixels[phase], phase, fov, scale)

    def _image(
        self,
        series: CineImageSeries,
        pixels: np.ndarray,
        phase: int,
        fov: tuple[float, float, float],
        scale: float,
    ) -> ismrmrd.Image:
        ref = series.reference
        image = ismrmrd.Image.from_array(pixels[None])  # (z=1, y, x)
        image.image_type = ismrmrd.IMTYPE_MAGNITUDE
        image.field_of_view = fov
        for name in ("position", "read_dir", "phase_dir", "slice_dir", "patient_table_position"):
            setattr(image, name, tuple(getattr(ref, name)))
        trigger_ms = float(series.trigger_times_ms[phase])
        image.physiology_time_stamp = (round(trigger_ms * 1e-3 / TICK_S), 0, 0)
        image.acquisition_time_stamp = int(ref.acquisition_time_stamp)
        image.measurement_uid = int(ref.measurement_uid)
        image.slice, image.phase = series.slice_index, phase
        image.image_series_index = self.cfg.image_series_index
        self._index += 1
        image.image_index = self._index
        meta = ismrmrd.Meta()
        meta["TriggerTime"] = f"{trigger_ms:.2f}"
        meta["CardiacPhase"] = str(phase)
        meta["ReconMethod"] = series.method
        meta["DisplayScale"] = f"{scale:.6g}"
        image.attribute_string = meta.serialize()
        return image
