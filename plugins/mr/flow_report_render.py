"""The flow report's content and its renderings: JSON, CSV and a PNG flow curve (drawn with Pillow)."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from recon.phasecontrast.flow import BeatVolumes, FlowCurve

_COLOURS = ((200, 30, 30), (30, 90, 200), (20, 150, 60), (200, 130, 0), (120, 40, 160), (0, 150, 150))


@dataclass(frozen=True)
class VesselReport:
    """Flow results of one automatically detected vessel.

    Attributes:
        slice_index: slice the vessel was found in.
        vessel_index: rank of the vessel in its slice (0 = strongest pulsatility).
        label: anatomical label (e.g. ``ascending_aorta``) or ``vessel_<slice>_<index>``.
        centroid_px: ``(y, x)`` centre of the region in pixels.
        centroid_mm: ``(x, y, z)`` centre in patient coordinates (mm), when the image geometry is known.
        n_pixels: pixels in the region.
        orientation_sign: +1 when forward is along the velocity maps' positive direction, −1 otherwise.
        forward_direction_lps: unit vector of the forward flow in patient coordinates (LPS), when known.
        curve: the per-phase flow curve (oriented so that forward is positive).
        volumes: beat volumes from the curve.
    """

    slice_index: int
    vessel_index: int
    label: str
    centroid_px: tuple[float, float]
    centroid_mm: tuple[float, float, float] | None
    n_pixels: int
    orientation_sign: int
    forward_direction_lps: tuple[float, float, float] | None
    curve: FlowCurve
    volumes: BeatVolumes

    def __post_init__(self) -> None:
        if self.orientation_sign not in (1, -1) or self.n_pixels <= 0:
            raise ValueError("orientation_sign must be ±1 and the region non-empty")


@dataclass(frozen=True)
class FlowReport:
    """Everything the flow report says.

    Attributes:
        venc_cm_per_s: encoding velocity (cm/s).
        flow_direction: +1/−1 from the header.
        rr_s: R–R interval the cardiac phases tile (s).
        rr_source: where ``rr_s`` came from (config, ECG waveforms, ...).
        vessels: per-vessel results.
        qp_qs: pulmonary / systemic net flow, when both vessels are labelled (else ``None``).
        notes: free-text remarks (e.g. why Qp:Qs is missing).
    """

    venc_cm_per_s: float
    flow_direction: int
    rr_s: float
    rr_source: str
    vessels: tuple[VesselReport, ...]
    qp_qs: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON data: NaN/inf → None, arrays and tuples → lists, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist"):
        return json_safe(value.tolist())
    return value


def report_dict(report: FlowReport) -> dict[str, Any]:
    """The report as plain JSON-able data (NaN → null)."""
    vessels = []
    for v in report.vessels:
        entry = {
            k: getattr(v, k)
            for k in (
                "slice_index",
                "vessel_index",
                "label",
                "centroid_px",
                "centroid_mm",
                "n_pixels",
                "orientation_sign",
                "forward_direction_lps",
            )
        }
        entry["area_cm2"] = v.curve.area_cm2
        entry["volumes"] = asdict(v.volumes)
        entry["phase_times_s"] = v.curve.phase_times_s
        entry["flow_ml_per_s"] = v.curve.flow_ml_per_s
        entry["mean_velocity_cm_per_s"] = v.curve.mean_velocity_cm_per_s
        entry["peak_velocity_cm_per_s"] = v.curve.peak_velocity_cm_per_s
        vessels.append(entry)
    data = {
        "venc_cm_per_s": report.venc_cm_per_s,
        "flow_direction": report.flow_direction,
        "rr_s": report.rr_s,
        "heart_rate_bpm": 60.0 / report.rr_s,
        "rr_source": report.rr_source,
        "qp_qs": report.qp_qs,
        "notes": list(report.notes),
        "vessels": vessels,
    }
    return dict(json_safe(data))


def render_json(report: FlowReport) -> bytes:
    return json.dumps(report_dict(report), indent=2).encode("utf-8")


def render_csv(report: FlowReport) -> bytes:
    """One row per vessel and cardiac phase."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "slice",
            "vessel",
            "label",
            "phase",
            "time_s",
            "flow_ml_per_s",
            "mean_velocity_cm_per_s",
            "peak_velocity_cm_per_s",
        ]
    )
    for v in report.vessels:
        c = v.curve
        for p in range(c.flow_ml_per_s.shape[0]):
            writer.writerow(
                [
                    v.slice_index,
                    v.vessel_index,
                    v.label,
                    p,
                    f"{c.phase_times_s[p]:.4f}",
                    f"{c.flow_ml_per_s[p]:.3f}",
                    f"{c.mean_velocity_cm_per_s[p]:.3f}",
                    f"{c.peak_velocity_cm_per_s[p]:.3f}",
                ]
            )
    return out.getvalue().encode("utf-8")


def _nice_range(lo: float, hi: float) -> tuple[float, float]:
    if hi - lo < 1e-6:
        lo, hi = lo - 1.0, hi + 1.0
    pad = 0.08 * (hi - lo)
    return lo - pad, hi + pad


def render_png(report: FlowReport, size: tuple[int, int] = (800, 480)) -> bytes:
    """Flow curves (ml/s against time in ms) of every vessel, with axes, a zero line and a legend."""
    width, height = size
    left, right, top, bottom = 70, 20, 30, 50
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    values = [f for v in report.vessels for f in v.curve.flow_ml_per_s.tolist()] or [0.0]
    y_lo, y_hi = _nice_range(min(0.0, *values), max(0.0, *values))
    t_hi = 1000.0 * report.rr_s

    def to_px(t_ms: float, q: float) -> tuple[float, float]:
        x = left + (width - left - right) * t_ms / t_hi
        y = top + (height - top - bottom) * (y_hi - q) / (y_hi - y_lo)
        return x, y

    draw.rectangle([left, top, width - right, height - bottom], outline=(0, 0, 0))
    draw.line([to_px(0.0, 0.0), to_px(t_hi, 0.0)], fill=(150, 150, 150))
    for k in range(5):
        q = y_lo + (y_hi - y_lo) * k / 4
        draw.text((5, to_px(0.0, q)[1] - 6), f"{q:7.1f}", fill=(0, 0, 0), font=font)
        t = t_hi * k / 4
        draw.text((to_px(t, y_lo)[0] - 12, height - bottom + 6), f"{t:.0f}", fill=(0, 0, 0), font=font)
    draw.text((left, height - 20), "time after R wave (ms)", fill=(0, 0, 0), font=font)
    draw.text((left, 8), "flow (ml/s)", fill=(0, 0, 0), font=font)
    for i, v in enumerate(report.vessels):
        colour = _COLOURS[i % len(_COLOURS)]
        pts = [
            to_px(1000.0 * t, q) for t, q in zip(v.curve.phase_times_s, v.curve.flow_ml_per_s, strict=True)
        ]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        legend = f"{v.label}: net {v.volumes.net_ml:.1f} ml"
        draw.text((width - right - 260, top + 8 + 14 * i), legend, fill=colour, font=font)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()
