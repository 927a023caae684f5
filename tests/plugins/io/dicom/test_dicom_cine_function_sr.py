"""The cine function report as a DICOM SR (TID 1500): valid for dciodvfy, and the numbers read back from
the SR equal those of cine_function.json (ventricles, indexed values, flow cross-check)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest

from plugins.io.dicom.export import export_dicom
from tests.plugins.io.dicom.test_dicom_export import _dciodvfy_errors
from tests.plugins.io.dicom.test_dicom_flow_sr import _groups

REPORT = {
    "lv": {"edv_ml": 123.4, "esv_ml": 51.2, "sv_ml": 72.2, "ef_percent": 58.51},
    "rv": {"edv_ml": 130.1, "esv_ml": 59.6, "sv_ml": 70.5, "ef_percent": 54.19},
    "lv_mass_g": 121.1,
    "indexed": {"lv_edv_ml_per_m2": 64.6, "lv_mass_g_per_m2": 63.4, "rv_esv_ml_per_m2": 31.2},
    "flow": {
        "aortic_forward_ml": 70.0,
        "pulmonary_forward_ml": 69.0,
        "mitral_regurgitant_ml": 2.2,
        "tricuspid_regurgitant_ml": 1.5,
        "qp_qs_flow": None,
        "qp_qs_cine": 0.976,
    },
}


def test_cine_function_sr_is_valid_and_reads_back_the_json(cine_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(cine_run, run)
    (run / "cine_function.json").write_text(json.dumps(REPORT))
    instances = export_dicom(run, tmp_path / "dcm")
    sr = [i for i in instances if i.kind == "cine_function"]
    assert len(sr) == 1 and sr[0].study_uid == instances[0].study_uid
    assert _dciodvfy_errors(sr[0].path) == []
    ds = pydicom.dcmread(sr[0].path)
    assert ds.Modality == "SR" and ds.ConceptNameCodeSequence[0].CodeValue == "126000"
    groups = _groups(ds)
    assert set(groups) == {"left_ventricle", "right_ventricle", "flow_cross_check"}
    lv, rv, flow = groups["left_ventricle"], groups["right_ventricle"], groups["flow_cross_check"]
    assert lv["LVEDV"] == (pytest.approx(123.4), "ml")
    assert lv["10230-1"] == (pytest.approx(58.51), "%")
    assert lv["LVMASS"] == (pytest.approx(121.1), "g")
    assert lv["LVEDVI"] == (pytest.approx(64.6), "ml/m2") and lv["LVMASSI"] == (pytest.approx(63.4), "g/m2")
    assert "LVESVI" not in lv  # not in the report: left out
    assert rv["RVEF"] == (pytest.approx(54.19), "%") and rv["RVESVI"] == (pytest.approx(31.2), "ml/m2")
    assert flow["MRVOL"] == (pytest.approx(2.2), "ml") and "251050008" not in flow
    assert flow["QPQSCINE"] == (pytest.approx(0.976), "{ratio}")
