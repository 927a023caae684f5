"""Flow report: automatic vessel regions, flow curves, beat volumes, regurgitant fraction and Qp:Qs.

The plugin passes every image through unchanged and keeps a copy of the magnitude and velocity series
of each slice; at the end of the stream it detects the vessels, quantifies them and emits three
:class:`~plugins.runtime.items.Report` items (``<basename>.json``, ``.csv`` and ``.png``) that the runtime
writes next to the ``--out`` output.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import ismrmrd
import numpy as np
import torch
from pydantic import Field

from plugins.mr.flow_common import (
    MAGNITUDE,
    VELOCITY,
    SliceBuffer,
    meta_value,
    pixel_area_mm2,
    role_of,
    stacks_of,
    velocity_encoding_from_header,
)
from plugins.mr.flow_labels import label_vessels, planned_vessels_from_header
from plugins.mr.flow_report_render import FlowReport, VesselReport, render_csv, render_json, render_png
from plugins.mr.flow_rr import RRSource
from plugins.runtime.config import PluginConfig
from plugins.runtime.items import Report
from plugins.runtime.plugin import ChainContext, Plugin
from recon.phasecontrast.flow import beat_volumes, flow_curve, orient_forward, qp_qs
from recon.phasecontrast.series import signal_mask_of
from recon.phasecontrast.vessels import find_vessels


class FlowReportConfig(PluginConfig):
    """Parameters of :class:`FlowReportPlugin`."""

    n_vessels: int = Field(3, ge=1, le=10, description="vessels to detect and report per slice")
    signal_threshold_fraction: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="noise mask: magnitude threshold as a fraction of the 99th percentile",
    )
    seed_fraction: float = Field(
        0.4, gt=0.0, lt=1.0, description="vessel seeds: fraction of the strongest pulsatility"
    )
    grow_factor: float = Field(
        3.0, ge=0.0, le=50.0, description="vessel growth: pulsatility above this × slice noise level"
    )
    edge_margin_pixels: int = Field(
        1, ge=0, le=5, description="pixels added around each vessel for partial volume"
    )
    labeling: Literal["none", "auto", "planned", "axial_great_vessels"] = Field(
        "auto",
        description="vessel labels: none; planned (the vessel each slice was planned on, header "
        "flow_plane_vessels); axial_great_vessels (axial rule); auto = planned when known, else axial",
    )
    orient_forward: bool = Field(
        True, description="report each vessel with its net flow direction as forward"
    )
    heart_rate_bpm: float | None = Field(
        None,
        ge=20.0,
        le=250.0,
        description="heart rate for beat volumes (None: from the cine trigger times or ECG)",
    )
    report_basename: str = Field(
        "flow_report", pattern=r"^[A-Za-z0-9_\-]+$", description="file name stem of the reports"
    )


class FlowReportPlugin(Plugin):
    """Detects vessels, quantifies flow per beat and emits the JSON/CSV/PNG flow report."""

    Config = FlowReportConfig
    accepts = (ismrmrd.Image, ismrmrd.Waveform)

    def __init__(self, config: FlowReportConfig, context: ChainContext) -> None:  # type: ignore[override]
        super().__init__(config, context)
        self.cfg = config
        self.encoding = velocity_encoding_from_header(context.header)
        self.buffer = SliceBuffer((MAGNITUDE, VELOCITY), None)
        self.rr = RRSource(config.heart_rate_bpm)

    def process(self, item: Any) -> Iterable[Any]:
        if isinstance(item, ismrmrd.Waveform):
            self.rr.add_waveform(item)
        else:
            role = role_of(item)
            if role in (MAGNITUDE, VELOCITY):
                self.buffer.add(item, role)
                rr_ms = meta_value(item, "rr_ms")
                if rr_ms is not None:
                    self.rr.add_rr_ms(float(rr_ms))
        yield item

    def finish(self) -> Iterable[Any]:
        slices = self.buffer.pop_all()
        if not slices:
            self.log.warning("no flow images reached the report: nothing to quantify")
            return
        rr_s, rr_source = self.rr.rr_s()
        vessels: list[VesselReport] = []
        centres: dict[int, tuple[float, float, float]] = {}
        for index, series in slices:
            vessels.extend(self._quantify_slice(index, series, rr_s))
            first = series.stack(VELOCITY)[1][0]
            centre = _centroid_mm(first, _image_centre_px(first))
            if centre is not None:
                centres[index] = centre
        notes: list[str] = []
        planned = planned_vessels_from_header(self.context.header)
        labelled = label_vessels(vessels, self.cfg.labeling, notes, planned, centres)
        report = FlowReport(
            self.encoding.venc_cm_per_s,
            self.encoding.flow_direction,
            rr_s,
            rr_source,
            tuple(labelled),
            _qp_qs(labelled, notes),
            tuple(notes),
        )
        for v in labelled:
            self.log.info(
                "%s: net %.1f ml, forward %.1f ml, RF %.1f %%, peak %.1f cm/s",
                v.label,
                v.volumes.net_ml,
                v.volumes.forward_ml,
                v.volumes.regurgitant_fraction_percent,
                v.volumes.peak_velocity_cm_per_s,
            )
        name, source = self.cfg.report_basename, "flow_report"
        yield Report(f"{name}.json", render_json(report), "application/json", source)
        yield Report(f"{name}.csv", render_csv(report), "text/csv", source)
        yield Report(f"{name}.png", render_png(report), "image/png", source)

    def _quantify_slice(self, slice_index: int, series: Any, rr_s: float) -> list[VesselReport]:
        mag, vel, _, vel_images = stacks_of(series)
        velocity = torch.from_numpy(vel.astype(np.float64))
        signal = signal_mask_of(torch.from_numpy(mag), self.cfg.signal_threshold_fraction)
        rois = find_vessels(
            velocity,
            signal,
            n_vessels=self.cfg.n_vessels,
            seed_fraction=self.cfg.seed_fraction,
            grow_factor=self.cfg.grow_factor,
            edge_margin_pixels=self.cfg.edge_margin_pixels,
        )
        area = pixel_area_mm2(vel_images[0])
        out = []
        for k, roi in enumerate(rois):
            oriented, sign = orient_forward(velocity, roi.mask) if self.cfg.orient_forward else (velocity, 1)
            curve = flow_curve(oriented, roi.mask, area, rr_s)
            out.append(
                VesselReport(
                    slice_index,
                    k,
                    f"vessel_{slice_index}_{k}",
                    roi.centroid_yx,
                    _centroid_mm(vel_images[0], roi.centroid_yx),
                    roi.n_pixels,
                    sign,
                    _forward_direction(vel_images[0], sign),
                    curve,
                    beat_volumes(curve, rr_s),
                )
            )
        return out


def _centroid_mm(image: ismrmrd.Image, centroid_yx: tuple[float, float]) -> tuple[float, float, float] | None:
    """Patient coordinates (mm) of a pixel position, from the image's position and direction cosines."""
    read = np.asarray(image.read_dir[:], dtype=np.float64)
    phase = np.asarray(image.phase_dir[:], dtype=np.float64)
    if not (np.linalg.norm(read) > 0.5 and np.linalg.norm(phase) > 0.5):
        return None
    size, fov = image.matrix_size, image.field_of_view
    dx, dy = float(fov[0]) / int(size[0]), float(fov[1]) / int(size[1])
    offset = (centroid_yx[1] - int(size[0]) // 2) * dx * read + (
        centroid_yx[0] - int(size[1]) // 2
    ) * dy * phase
    pos = np.asarray(image.position[:], dtype=np.float64) + offset
    return (float(pos[0]), float(pos[1]), float(pos[2]))


def _image_centre_px(image: ismrmrd.Image) -> tuple[float, float]:
    """(y, x) pixel index of the image's position (the centred-FFT centre n // 2)."""
    size = image.matrix_size
    return (float(int(size[1]) // 2), float(int(size[0]) // 2))


def _forward_direction(image: ismrmrd.Image, sign: int) -> tuple[float, float, float] | None:
    """Forward flow direction in patient coordinates: positive velocities point along the slice normal."""
    normal = np.asarray(image.slice_dir[:], dtype=np.float64)
    if not np.linalg.norm(normal) > 0.5:
        return None
    d = sign * normal / np.linalg.norm(normal)
    return (float(d[0]), float(d[1]), float(d[2]))


def _qp_qs(vessels: list[VesselReport], notes: list[str]) -> float | None:
    """Mean Qp:Qs over the slices that have both a pulmonary artery and an ascending aorta."""
    ratios = []
    for s in sorted({v.slice_index for v in vessels}):
        by_label = {v.label: v for v in vessels if v.slice_index == s}
        pa, ao = by_label.get("pulmonary_artery"), by_label.get("ascending_aorta")
        if pa is not None and ao is not None:
            ratios.append(qp_qs(pa.volumes, ao.volumes))
    if not ratios:
        pas = [v for v in vessels if v.label == "pulmonary_artery"]
        aos = [v for v in vessels if v.label == "ascending_aorta"]
        if len(pas) == 1 and len(aos) == 1:  # planned planes: one slice each
            return float(qp_qs(pas[0].volumes, aos[0].volumes))
        notes.append(
            "Qp:Qs not computed: needs a vessel labelled pulmonary_artery and one labelled ascending_aorta"
        )
        return None
    return float(np.mean(ratios))
