"""Cine function report: LV/RV volumes, EF, LV mass from a short-axis cine stack, cross-checked with flow.

The plugin passes every image through unchanged and keeps a copy of the magnitude images of the
analysed series (``image_series_index``, the ``cine_image`` output).  At the end of the stream it
segments every slice and phase (:mod:`recon.cine.function`), picks end-diastole and end-systole from the
LV volume curve and emits :class:`~plugins.runtime.items.Report` items: ``<basename>.json`` and ``.csv``
(volumes, EF, mass, BSA-indexed values, per-slice status and areas), ``<basename>_volumes.png`` (volume-
time curves) and ``<basename>_slice_NN.gif`` (contours on every phase of each slice).

With a flow report of the same session (``flow_report`` path, or a ``flow_report.json`` given as a
second ``--input``), the aortic and pulmonary forward volumes are set against the LV and RV stroke
volumes: mitral regurgitant volume = LV SV − aortic forward volume, tricuspid = RV SV − pulmonary
forward volume, and Qp:Qs from the flow (net pulmonary / net aortic) and from cine (RV SV / LV SV).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import ismrmrd
import numpy as np
from pydantic import Field

from plugins.mr.cine_function_render import (
    FunctionReport,
    render_csv,
    render_gifs,
    render_json,
    render_png,
)
from plugins.runtime.config import PluginConfig
from plugins.runtime.items import Report
from plugins.runtime.plugin import ChainContext, Plugin
from recon.cine.function.analysis import analyse_stack
from recon.cine.function.segment import SegmentationParameters
from recon.cine.function.volumes import flow_cross_check, mosteller_bsa_m2

REGURGITATION_NOTE_ML = 10.0
"""An atrioventricular regurgitant volume above this (ml) adds a note on the cine Qp:Qs."""


class CineFunctionConfig(PluginConfig):
    """Parameters of :class:`CineFunctionPlugin`."""

    image_series_index: int = Field(1, ge=0, le=65535, description="image series holding the cine magnitudes")
    min_ring_coverage: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="basal rule: a blood region counts as ventricle when its myocardial ring covers at least "
        "this fraction of the circumference",
    )
    max_wall_mm: float = Field(25.0, ge=5.0, le=50.0, description="thickest LV wall searched along a ray, mm")
    flow_report: str | None = Field(
        None,
        description="flow_report.json of the same session (None: a flow report given as an input, if any)",
    )
    contour_gifs: bool = Field(True, description="emit one contour-overlay GIF per slice")
    emit_label_images: bool = Field(
        False,
        description="also emit the segmentation as uint16 label images (1 LV blood, 2 LV myocardium, 3 RV)",
    )
    label_series_index: int = Field(20, ge=0, le=65535, description="image_series_index of the label images")
    report_basename: str = Field(
        "cine_function", pattern=r"^[A-Za-z0-9_\-]+$", description="file name stem of the reports"
    )


def _pixels_of(image: ismrmrd.Image) -> np.ndarray:
    """Magnitude on the reconstruction's scale (uint16 display values divided by DisplayScale)."""
    data = np.asarray(image.data, dtype=np.float64)[0, 0]
    meta = ismrmrd.Meta.deserialize(image.attribute_string) if image.attribute_string else {}
    scale = float(meta["DisplayScale"]) if "DisplayScale" in meta else 1.0
    return data / scale if scale > 0 else data


class CineFunctionPlugin(Plugin):
    """Segments a short-axis cine stack and reports ventricular volumes, EF, mass and the flow cross-check."""

    Config = CineFunctionConfig
    accepts = (ismrmrd.Image,)

    def __init__(self, config: CineFunctionConfig, context: ChainContext) -> None:  # type: ignore[override]
        super().__init__(config, context)
        self.cfg = config
        self.images: dict[tuple[int, int], np.ndarray] = {}
        self.geometry: dict[int, ismrmrd.Image] = {}

    def process(self, item: Any) -> Iterable[Any]:
        image: ismrmrd.Image = item
        if int(image.image_series_index) == self.cfg.image_series_index:
            self.images[(int(image.slice), int(image.phase))] = _pixels_of(image)
            self.geometry.setdefault(int(image.slice), image)
        yield item

    def finish(self) -> Iterable[Any]:
        if not self.images:
            self.log.warning("no cine images reached the function analysis: nothing to report")
            return
        slices = sorted(self.geometry)
        n_phases = 1 + max(p for _, p in self.images)
        missing = [(s, p) for s in slices for p in range(n_phases) if (s, p) not in self.images]
        if missing:
            raise ValueError(
                f"cine function: {len(missing)} images missing from the stack, e.g. {missing[0]}"
            )
        stack = np.stack([np.stack([self.images[(s, p)] for p in range(n_phases)]) for s in slices])
        pixel_mm, spacing_mm, notes = _geometry(self.geometry, slices, self.context.header)
        bsa = _bsa_m2(self.context.header, notes)
        prm = SegmentationParameters(
            min_ring_coverage=self.cfg.min_ring_coverage, max_wall_mm=self.cfg.max_wall_mm
        )
        analysis = analyse_stack(stack, pixel_mm, spacing_mm, bsa, prm)
        if analysis is None:
            raise ValueError("cine function: no left ventricle found in the stack (is it a short-axis cine?)")
        flow = self._flow_check(analysis.function, notes)
        report = FunctionReport(analysis, tuple(slices), pixel_mm, spacing_mm, flow, tuple(notes))
        self._log(report)
        name, source = self.cfg.report_basename, "cine_function"
        yield Report(f"{name}.json", render_json(report), "application/json", source)
        yield Report(f"{name}.csv", render_csv(report), "text/csv", source)
        yield Report(f"{name}_volumes.png", render_png(report), "image/png", source)
        if self.cfg.emit_label_images:
            yield from self._label_images(analysis, slices)
        if self.cfg.contour_gifs:
            for k, gif in enumerate(render_gifs(report, stack)):
                yield Report(f"{name}_slice_{slices[k]:02d}.gif", gif, "image/gif", source)

    def _label_images(self, analysis: Any, slices: list[int]) -> Iterable[ismrmrd.Image]:
        seg = analysis.segmentation
        labels = seg.lv_blood * np.uint16(1) + seg.lv_myocardium * np.uint16(2) + seg.rv_blood * np.uint16(3)
        for k, s in enumerate(slices):
            ref = self.geometry[s]
            for p in range(labels.shape[1]):
                image = ismrmrd.Image.from_array(labels[k, p][None].astype(np.uint16))
                for name in ("field_of_view", "position", "read_dir", "phase_dir", "slice_dir"):
                    setattr(image, name, tuple(getattr(ref, name)))
                image.slice, image.phase = s, p
                image.image_series_index = self.cfg.label_series_index
                meta = ismrmrd.Meta()
                meta["CineFunctionRole"] = "labels"
                image.attribute_string = meta.serialize()
                yield image

    def _flow_check(self, function: Any, notes: list[str]) -> Any:
        data = _flow_report_data(self.cfg.flow_report, self.context.extras)
        if data is None:
            return None
        forward = {v.get("label"): v.get("volumes", {}).get("forward_ml") for v in data.get("vessels", [])}
        aortic, pulmonary = forward.get("ascending_aorta"), forward.get("pulmonary_artery")
        if aortic is None and pulmonary is None:
            notes.append("flow report has no vessel labelled ascending_aorta or pulmonary_artery")
        check = flow_cross_check(function, aortic, pulmonary, data.get("qp_qs"))
        for valve, volume in (
            ("mitral", check.mitral_regurgitant_ml),
            ("tricuspid", check.tricuspid_regurgitant_ml),
        ):
            if volume is not None and volume > REGURGITATION_NOTE_ML:
                notes.append(
                    f"{valve} regurgitant volume {volume:.0f} ml: the cine Qp:Qs (RV SV / LV SV) counts "
                    "regurgitant volume as output; the flow Qp:Qs is the one to use"
                )
        return check

    def _log(self, report: FunctionReport) -> None:
        f = report.analysis.function
        self.log.info(
            "LV EDV %.1f ml, ESV %.1f ml, EF %.1f %%, mass %.1f g; RV EDV %.1f ml, ESV %.1f ml, EF %.1f %%",
            f.lv.edv_ml, f.lv.esv_ml, f.lv.ef_percent, f.lv_mass_g, f.rv.edv_ml, f.rv.esv_ml, f.rv.ef_percent,
        )  # fmt: skip
        for status in report.analysis.segmentation.status:
            if status.state == "failed":
                self.log.warning("slice %d: %s", report.slices[status.slice_index], status.message)


def _flow_report_data(path: str | None, extras: Any) -> dict[str, Any] | None:
    if path is not None:
        return dict(json.loads(Path(path).read_text(encoding="utf-8")))
    data = extras.get("flow_report") if extras else None
    return dict(data) if data is not None else None


def _geometry(
    first_images: dict[int, ismrmrd.Image], slices: list[int], header: Any
) -> tuple[tuple[float, float], float, list[str]]:
    """Pixel size (dy, dx) mm and slice spacing mm (from the slice positions, else the thickness)."""
    notes: list[str] = []
    image = first_images[slices[0]]
    fov, size = image.field_of_view, image.matrix_size
    pixel_mm = (float(fov[1]) / int(size[1]), float(fov[0]) / int(size[0]))
    thickness = float(fov[2])
    normal = np.asarray(image.slice_dir[:], dtype=np.float64)
    if len(slices) > 1 and np.linalg.norm(normal) > 0.5:
        positions = np.array([np.asarray(first_images[s].position[:], dtype=np.float64) for s in slices])
        steps = np.abs(np.diff(positions @ (normal / np.linalg.norm(normal))))
        if np.all(steps > 0.1):
            return pixel_mm, float(np.median(steps)), notes
    notes.append(f"slice spacing taken as the slice thickness ({thickness:g} mm): no slice positions")
    return pixel_mm, thickness, notes


def _bsa_m2(header: Any, notes: list[str]) -> float | None:
    subject = getattr(header, "subjectInformation", None)
    height = getattr(subject, "patientHeight_m", None)
    weight = getattr(subject, "patientWeight_kg", None)
    bsa = mosteller_bsa_m2(height, weight)
    if bsa is None:
        notes.append("no indexed values: patient height and weight not both in the header")
    return bsa
