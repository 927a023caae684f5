"""The cine_function plugin on a synthetic ring stack: pass-through, reports, BSA, flow cross-check and
the flow report as a second input."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import ismrmrd
import ismrmrd.xsd as xsd
import pytest

from plugins.mr.cine_function import CineFunctionConfig, CineFunctionPlugin
from plugins.runtime.items import Report
from plugins.runtime.plugin import ChainContext
from plugins.runtime.session import combined_inputs
from tests.recon.cine.function_phantom import ring_images, ring_stack

FLOW = {
    "qp_qs": 1.05,
    "vessels": [
        {"label": "ascending_aorta", "volumes": {"forward_ml": 40.0, "net_ml": 38.0}},
        {"label": "pulmonary_artery", "volumes": {"forward_ml": 45.0, "net_ml": 44.0}},
    ],
}


@cache
def _images() -> tuple[ismrmrd.Image, ...]:
    return tuple(ring_images(ring_stack(n_slices=6, n_phases=10)))


def _run(extras: dict[str, Any] | None = None, header: Any = None, **config: Any) -> tuple[list[Any], dict]:
    plugin = CineFunctionPlugin(
        CineFunctionConfig(**config), ChainContext("cine-function", header=header, extras=extras or {})
    )
    out = list(plugin.run(iter(_images())))
    reports = {o.filename: o.content for o in out if isinstance(o, Report)}
    return out, reports


def test_images_pass_through_and_reports_are_emitted() -> None:
    out, reports = _run(emit_label_images=True)
    images = [o for o in out if isinstance(o, ismrmrd.Image)]
    assert sum(i.image_series_index == 1 for i in images) == len(_images())
    assert sum(i.image_series_index == 20 for i in images) == len(_images())  # label images
    assert set(reports) >= {"cine_function.json", "cine_function.csv", "cine_function_volumes.png"}
    assert {f"cine_function_slice_{s:02d}.gif" for s in range(6)} <= set(reports)
    report = json.loads(reports["cine_function.json"])
    assert report["slice_spacing_mm"] == pytest.approx(8.0)
    assert report["bsa_m2"] is None and any("height and weight" in n for n in report["notes"])
    assert report["failed_slices"] == [] and report["flow"] is None
    assert "basal" in report["basal_rule"]
    assert b"lv_edv," in reports["cine_function.csv"]


def test_bsa_from_the_header() -> None:
    header = xsd.ismrmrdHeader(
        subjectInformation=xsd.subjectInformationType(patientHeight_m=1.8, patientWeight_kg=80.0),
        experimentalConditions=xsd.experimentalConditionsType(H1resonanceFrequency_Hz=63_870_000),
        encoding=[],
    )
    _, reports = _run(header=header, contour_gifs=False)
    report = json.loads(reports["cine_function.json"])
    assert report["bsa_m2"] == pytest.approx((180.0 * 80.0 / 3600.0) ** 0.5)
    assert report["indexed"]["lv_mass_g_per_m2"] == pytest.approx(report["lv_mass_g"] / report["bsa_m2"])


def test_flow_cross_check_from_a_flow_report() -> None:
    _, reports = _run(extras={"flow_report": FLOW}, contour_gifs=False)
    report = json.loads(reports["cine_function.json"])
    flow = report["flow"]
    assert flow["mitral_regurgitant_ml"] == pytest.approx(report["lv"]["sv_ml"] - 40.0)
    assert flow["tricuspid_regurgitant_ml"] == pytest.approx(report["rv"]["sv_ml"] - 45.0)
    assert flow["qp_qs_flow"] == pytest.approx(1.05)
    assert flow["qp_qs_cine"] == pytest.approx(report["rv"]["sv_ml"] / report["lv"]["sv_ml"])
    if flow["mitral_regurgitant_ml"] > 10.0:
        assert any("mitral regurgitant volume" in n for n in report["notes"])


def test_flow_report_as_a_second_input(tmp_path: Path) -> None:
    path = tmp_path / "flow_report.json"
    path.write_text(json.dumps(FLOW), encoding="utf-8")
    header, extras, items = combined_inputs([path])
    assert header is None and extras["flow_report"] == FLOW and list(items) == []
    other = tmp_path / "other.json"
    other.write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match="flow report"):
        combined_inputs([other])
