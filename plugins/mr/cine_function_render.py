"""The cine function report's content and its renderings: JSON, CSV, a volume-time PNG and contour GIFs."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from plugins.mr.flow_report_render import json_safe
from recon.cine.function.analysis import StackAnalysis
from recon.cine.function.volumes import FlowCrossCheck, VentricleVolumes

BASAL_RULE = (
    "A blood region on a slice and phase counts as ventricle when a myocardial ring (dark wall up to the "
    "epicardial fat or the RV) covers at least half of its circumference; above the descending mitral "
    "annulus the basal slices show atrium and outflow tracts without such a ring and are left out phase by "
    "phase (the LV outflow tract is never counted as LV). The RV is counted on a slice and phase only where "
    "the LV is (one base plane), so the RV outflow tract above it is not counted; towards the apex the RV is "
    "counted where found. Papillary muscles and trabeculae are myocardium (in the mass, not in the volumes)."
)
METHOD = (
    "Classical: heart localised by temporal signal variation; LV blood pool = bright region tracked from a "
    "mid-ventricular seed slice by slice and phase by phase (threshold midway between blood and myocardium "
    "intensities of the slice); LV myocardium = dark band from the pool to the first bright structure along "
    "64 rays; RV = largest bright region next to the LV wall. Volumes by disc summation over the slice "
    "spacing; ED/ES = max/min LV volume (ED: of the phases within 1 % of the maximum, the one nearest the R-wave; same phases for the RV); mass = ED myocardial volume x 1.05 g/ml; "
    "BSA by Mosteller."
)


@dataclass(frozen=True)
class FunctionReport:
    """Everything the cine function report says.

    Attributes:
        analysis: segmentation and function of the stack.
        slices: ISMRMRD slice index of each stack position (S,).
        pixel_mm: (dy, dx) pixel size, mm; slice_spacing_mm: disc thickness used, mm.
        flow: the cross-check with a flow report of the session, or None.
        notes: free-text remarks (missing BSA, spacing taken from thickness, ...).
    """

    analysis: StackAnalysis
    slices: tuple[int, ...]
    pixel_mm: tuple[float, float]
    slice_spacing_mm: float
    flow: FlowCrossCheck | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def _ventricle(v: VentricleVolumes) -> dict[str, Any]:
    return {
        "edv_ml": v.edv_ml,
        "esv_ml": v.esv_ml,
        "sv_ml": v.sv_ml,
        "ef_percent": v.ef_percent,
        "volume_curve_ml": v.volume_curve_ml,
    }


def _slice_entries(report: FunctionReport) -> list[dict[str, Any]]:
    a = report.analysis
    ed, es = a.function.end_diastolic_phase, a.function.end_systolic_phase
    out = []
    for k, status in enumerate(a.segmentation.status):
        out.append(
            {
                "slice": report.slices[k],
                "state": status.state,
                "n_phases_counted": status.n_phases_counted,
                "message": status.message,
                "lv_area_ed_mm2": a.areas_mm2[0, k, ed],
                "lv_area_es_mm2": a.areas_mm2[0, k, es],
                "rv_area_ed_mm2": a.areas_mm2[1, k, ed],
                "rv_area_es_mm2": a.areas_mm2[1, k, es],
                "lv_myocardium_area_ed_mm2": a.areas_mm2[2, k, ed],
            }
        )
    return out


def report_dict(report: FunctionReport) -> dict[str, Any]:
    """The report as plain JSON-able data (NaN → null)."""
    f = report.analysis.function
    data = {
        "end_diastolic_phase": f.end_diastolic_phase,
        "end_systolic_phase": f.end_systolic_phase,
        "lv": _ventricle(f.lv),
        "rv": _ventricle(f.rv),
        "lv_mass_g": f.lv_mass_g,
        "lv_myocardium_curve_ml": f.lv_myocardium_curve_ml,
        "bsa_m2": f.bsa_m2,
        "indexed": f.indexed(),
        "slice_spacing_mm": report.slice_spacing_mm,
        "pixel_mm": report.pixel_mm,
        "failed_slices": [s["slice"] for s in _slice_entries(report) if s["state"] == "failed"],
        "slices": _slice_entries(report),
        "flow": asdict(report.flow) if report.flow is not None else None,
        "method": METHOD,
        "basal_rule": BASAL_RULE,
        "notes": list(report.notes),
    }
    return dict(json_safe(data))


def render_json(report: FunctionReport) -> bytes:
    return json.dumps(report_dict(report), indent=2).encode("utf-8")


def _summary_rows(report: FunctionReport) -> list[tuple[str, Any, str]]:
    f = report.analysis.function
    rows: list[tuple[str, Any, str]] = [
        ("end_diastolic_phase", f.end_diastolic_phase, ""),
        ("end_systolic_phase", f.end_systolic_phase, ""),
    ]
    for name, v in (("lv", f.lv), ("rv", f.rv)):
        rows += [(f"{name}_edv", v.edv_ml, "ml"), (f"{name}_esv", v.esv_ml, "ml")]
        rows += [(f"{name}_sv", v.sv_ml, "ml"), (f"{name}_ef", v.ef_percent, "%")]
    rows += [("lv_mass", f.lv_mass_g, "g"), ("bsa", f.bsa_m2, "m2")]
    for k, value in f.indexed().items():
        unit = "g/m2" if k.endswith("_g_per_m2") else "ml/m2"
        rows.append((k.removesuffix("_ml_per_m2").removesuffix("_g_per_m2") + "_indexed", value, unit))
    if report.flow is not None:
        for k, value in asdict(report.flow).items():
            rows.append((k.removesuffix("_ml"), value, "ml" if k.endswith("_ml") else ""))
    return rows


def render_csv(report: FunctionReport) -> bytes:
    """One row per measurement (name, value, unit), then one row per slice's status."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["measurement", "value", "unit"])
    for name, value, unit in _summary_rows(report):
        text = "" if value is None else (f"{value:.2f}" if isinstance(value, float) else str(value))
        writer.writerow([name, text, unit])
    for s in _slice_entries(report):
        writer.writerow([f"slice_{s['slice']}_state", s["state"], s["message"]])
    return out.getvalue().encode("utf-8")


_W, _H, _M = 640, 400, 50


def render_png(report: FunctionReport) -> bytes:
    """Volume-time curves of the LV and RV blood pools (ml per phase) with ED/ES marked."""
    f = report.analysis.function
    img = Image.new("RGB", (_W, _H), "white")
    draw = ImageDraw.Draw(img)
    curves = ((f.lv.volume_curve_ml, (200, 30, 30), "LV"), (f.rv.volume_curve_ml, (30, 90, 200), "RV"))
    top = max(1.0, max(float(c.max()) for c, _, _ in curves)) * 1.1
    n = f.lv.volume_curve_ml.size

    def xy(p: float, v: float) -> tuple[float, float]:
        return (_M + p / max(n - 1, 1) * (_W - 2 * _M), _H - _M - v / top * (_H - 2 * _M))

    draw.rectangle((_M, _M, _W - _M, _H - _M), outline="black")
    _axis_ticks(draw, xy, top, n)
    for p, label in ((f.end_diastolic_phase, "ED"), (f.end_systolic_phase, "ES")):
        x = xy(p, 0)[0]
        draw.line((x, _M, x, _H - _M), fill=(150, 150, 150))
        draw.text((x + 3, _M + 3), label, fill="black")
    for k, (curve, colour, name) in enumerate(curves):
        draw.line([xy(p, float(v)) for p, v in enumerate(curve)], fill=colour, width=2)
        v = f.lv if name == "LV" else f.rv
        text = f"{name}: EDV {v.edv_ml:.0f} ml  ESV {v.esv_ml:.0f} ml  EF {v.ef_percent:.0f} %"
        draw.text((_M + 5, _H - _M + 18 + 14 * k), text, fill=colour)
    draw.text(
        (_M, 15), f"blood-pool volume (ml) per cardiac phase; LV mass {f.lv_mass_g:.0f} g", fill="black"
    )
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _axis_ticks(draw: ImageDraw.ImageDraw, xy: Any, top_ml: float, n_phases: int) -> None:
    """Volume ticks every 25/50/100 ml (labelled left of the frame) and phase ticks every 5 phases."""
    step = next(s for s in (25.0, 50.0, 100.0, 200.0, 500.0) if top_ml / s <= 8)
    for k in range(int(top_ml // step) + 1):
        x, y = xy(0, k * step)
        draw.line((x - 4, y, x, y), fill="black")
        draw.text((x - 34, y - 6), f"{k * step:.0f}", fill="black")
    for p in range(0, n_phases, 5):
        x, y = xy(p, 0)
        draw.line((x, y, x, y + 4), fill="black")
        draw.text((x - 3, y + 5), str(p), fill="black")


def _outline(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:-1, 1:-1] &= mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    return np.asarray(mask & ~inner)


def _window(report: FunctionReport, shape: tuple[int, ...]) -> tuple[slice, slice]:
    seg = report.analysis.segmentation
    any_mask = (seg.lv_blood | seg.lv_myocardium | seg.rv_blood).any(axis=(0, 1))
    if not any_mask.any():
        cy, cx = seg.location.lv_centre_yx
        return slice(max(0, int(cy) - 40), int(cy) + 40), slice(max(0, int(cx) - 40), int(cx) + 40)
    ys, xs = np.nonzero(any_mask)
    return (
        slice(max(0, ys.min() - 8), min(shape[-2], ys.max() + 9)),
        slice(max(0, xs.min() - 8), min(shape[-1], xs.max() + 9)),
    )


_CONTOUR_INDEX = {"lv": 252, "myocardium": 253, "rv": 254}
_PALETTE = [v for g in range(252) for v in (g * 255 // 251,) * 3] + [
    255,
    40,
    40,
    40,
    220,
    40,
    60,
    120,
    255,
    255,
    255,
    0,
]


def render_gifs(report: FunctionReport, stack: np.ndarray, frame_ms: int = 60) -> list[bytes]:
    """One animated GIF per slice: every phase with the LV (red), myocardium (green) and RV (blue)
    contours; a failed slice says so on every frame (yellow text)."""
    seg = report.analysis.segmentation
    box = _window(report, stack.shape)
    out = []
    for s in range(stack.shape[0]):
        crop = stack[s][:, box[0], box[1]]
        scale = 251.0 / max(float(np.percentile(crop, 99.5)), 1e-12)
        index = np.clip(crop * scale, 0, 251).astype(np.uint8)
        for mask, key in ((seg.lv_blood, "lv"), (seg.lv_myocardium, "myocardium"), (seg.rv_blood, "rv")):
            for p in range(index.shape[0]):
                index[p][_outline(mask[s, p][box])] = _CONTOUR_INDEX[key]
        index = index.repeat(2, axis=1).repeat(2, axis=2)
        frames = []
        for p in range(index.shape[0]):
            frame = Image.fromarray(index[p], mode="P")
            frame.putpalette(_PALETTE)
            if seg.status[s].state == "failed":
                ImageDraw.Draw(frame).text((3, 3), f"slice {report.slices[s]}: segmentation failed", fill=255)
            frames.append(frame)
        buf = io.BytesIO()
        frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
        out.append(buf.getvalue())
    return out
