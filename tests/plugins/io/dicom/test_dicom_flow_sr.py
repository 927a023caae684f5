"""The flow report as a DICOM SR (TID 1500): valid for dciodvfy, and every number read back from the SR
equals the one in flow_report.json (per vessel volumes, regurgitant fraction, peak velocity; Qp:Qs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pydicom
import pytest

from plugins.io.dicom.export import export_dicom
from tests.plugins.io.dicom.test_dicom_export import _dciodvfy_errors

KEYS = {
    "122645": "net_ml",
    "FWDVOL": "forward_ml",
    "BWDVOL": "backward_ml",
    "399301000": "regurgitant_fraction_percent",
    "20355-4": "peak_velocity_cm_per_s",
}
UNITS = {"net_ml": "ml", "forward_ml": "ml", "backward_ml": "ml", "regurgitant_fraction_percent": "%"}


def _groups(ds: pydicom.Dataset) -> dict[str, dict[str, tuple[float, str]]]:
    """Measurement groups of a TID 1500 report: tracking identifier → {concept code: (value, unit)}."""
    out: dict[str, dict[str, tuple[float, str]]] = {}

    def walk(items: Any) -> None:
        for item in items:
            name = item.ConceptNameCodeSequence[0].CodeValue if "ConceptNameCodeSequence" in item else ""
            if name == "125007":  # Measurement Group
                label, values = "", {}
                for child in item.ContentSequence:
                    code = child.ConceptNameCodeSequence[0].CodeValue
                    if code == "112039":  # Tracking Identifier
                        label = str(child.TextValue)
                    elif child.ValueType == "NUM":
                        mv = child.MeasuredValueSequence[0]
                        value = float(mv.get("FloatingPointValue", mv.NumericValue))
                        values[code] = (value, str(mv.MeasurementUnitsCodeSequence[0].CodeValue))
                out[label] = values
            elif "ContentSequence" in item:
                walk(item.ContentSequence)

    walk(ds.ContentSequence)
    return out


@pytest.fixture
def flow_run_with_qp_qs(flow_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(flow_run, run)
    report = json.loads((run / "flow_report.json").read_text())
    if report.get("qp_qs") is None:
        report["qp_qs"] = 1.234567891234
    (run / "flow_report.json").write_text(json.dumps(report))
    return run


def test_flow_report_sr_is_valid_and_reads_back_the_json(flow_run_with_qp_qs: Path, tmp_path: Path) -> None:
    instances = export_dicom(flow_run_with_qp_qs, tmp_path / "dcm")
    sr = [i for i in instances if i.kind == "flow_report"]
    assert len(sr) == 1 and sr[0].study_uid == instances[0].study_uid
    assert _dciodvfy_errors(sr[0].path) == []
    ds = pydicom.dcmread(sr[0].path)
    assert ds.SOPClassUID == pydicom.uid.Comprehensive3DSRStorage and ds.Modality == "SR"
    assert ds.ConceptNameCodeSequence[0].CodeValue == "126000"  # Imaging Measurement Report
    assert ds.PatientID == pydicom.dcmread(instances[0].path).PatientID
    report = json.loads((flow_run_with_qp_qs / "flow_report.json").read_text())
    groups = _groups(ds)
    vessels = report["vessels"]
    assert vessels and set(groups) == {v["label"] for v in vessels} | {"Qp:Qs"}
    for vessel in vessels:
        got = groups[vessel["label"]]
        want = {
            code: vessel["volumes"][key] for code, key in KEYS.items() if vessel["volumes"][key] is not None
        }
        assert set(got) == set(want)
        for code, value in want.items():
            assert got[code][0] == pytest.approx(value, rel=1e-12, abs=1e-12)
            assert got[code][1] == UNITS.get(KEYS[code], "cm/s")
    assert groups["Qp:Qs"] == {"251050008": (pytest.approx(report["qp_qs"], rel=1e-12), "{ratio}")}
    again = export_dicom(flow_run_with_qp_qs, tmp_path / "again")
    assert [i.sop_uid for i in again] == [i.sop_uid for i in instances]
