"""The cine function report (``cine_function.json``) as a DICOM Comprehensive 3D SR measurement report
(TID 1500, highdicom), built like the flow report's SR (:mod:`plugins.io.dicom.flow_sr`): one measurement
group per ventricle (tracking identifiers ``left_ventricle`` and ``right_ventricle``) and, with a flow
report of the session, one for the cross-check with flow.

Concepts: LV ejection fraction LOINC 10230-1 (``%``); the volumes (EDV, ESV, SV; ``ml``, indexed
``ml/m2``), LV mass (``g``, ``g/m2``), RV EF, the atrioventricular regurgitant volumes and the two Qp:Qs
estimates use the private scheme ``99RECONSTREAM`` (no standard concept verified for them here); Qp:Qs
from flow is SCT 251050008.  Values the report leaves empty (``null``) are left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import highdicom as hd
from pydicom.dataset import Dataset

from plugins.io.dicom.flow_sr import PRIVATE_SCHEME, QP_QS, measurement_report_sr
from plugins.io.dicom.identity import uid_for

UNITS = {
    "ml": hd.sr.CodedConcept("ml", "UCUM", "milliliter"),
    "ml/m2": hd.sr.CodedConcept("ml/m2", "UCUM", "milliliter per square meter"),
    "g": hd.sr.CodedConcept("g", "UCUM", "gram"),
    "g/m2": hd.sr.CodedConcept("g/m2", "UCUM", "gram per square meter"),
    "%": hd.sr.CodedConcept("%", "UCUM", "Percent"),
    "{ratio}": hd.sr.CodedConcept("{ratio}", "UCUM", "ratio"),
}
LV_EF = hd.sr.CodedConcept("10230-1", "LN", "Left ventricular Ejection fraction")


def _private(code: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(code, PRIVATE_SCHEME, meaning)


def _ventricle_values(report: dict[str, Any], side: str) -> list[tuple[Any, hd.sr.CodedConcept, str]]:
    v, indexed, name = report[side], report.get("indexed") or {}, side.upper()
    values = [
        (v["edv_ml"], _private(f"{name}EDV", f"{name} end-diastolic volume"), "ml"),
        (v["esv_ml"], _private(f"{name}ESV", f"{name} end-systolic volume"), "ml"),
        (v["sv_ml"], _private(f"{name}SV", f"{name} stroke volume"), "ml"),
        (v["ef_percent"], LV_EF if side == "lv" else _private("RVEF", "RV ejection fraction"), "%"),
    ]
    for key, unit in (("edv", "ml/m2"), ("esv", "ml/m2"), ("sv", "ml/m2")):
        value = indexed.get(f"{side}_{key}_ml_per_m2")
        values.append(
            (value, _private(f"{name}{key.upper()}I", f"{name} {key.upper()} indexed to BSA"), unit)
        )
    if side == "lv":
        values.append((report["lv_mass_g"], _private("LVMASS", "LV myocardial mass"), "g"))
        values.append(
            (indexed.get("lv_mass_g_per_m2"), _private("LVMASSI", "LV mass indexed to BSA"), "g/m2")
        )
    return values


def _flow_values(flow: dict[str, Any]) -> list[tuple[Any, hd.sr.CodedConcept, str]]:
    return [
        (flow.get("aortic_forward_ml"), _private("AOFWD", "Aortic forward volume per beat"), "ml"),
        (flow.get("pulmonary_forward_ml"), _private("PAFWD", "Pulmonary forward volume per beat"), "ml"),
        (flow.get("mitral_regurgitant_ml"), _private("MRVOL", "Mitral regurgitant volume (LV SV - Ao fwd)"), "ml"),
        (flow.get("tricuspid_regurgitant_ml"), _private("TRVOL", "Tricuspid regurgitant volume (RV SV - PA fwd)"), "ml"),
        (flow.get("qp_qs_flow"), QP_QS, "{ratio}"),
        (flow.get("qp_qs_cine"), _private("QPQSCINE", "Qp:Qs from RV SV / LV SV"), "{ratio}"),
    ]  # fmt: skip


def _group(session_key: str, label: str, values: list[tuple[Any, hd.sr.CodedConcept, str]]) -> Any:
    measurements = [
        hd.sr.Measurement(name=concept, value=float(value), unit=UNITS[unit])
        for value, concept, unit in values
        if value is not None
    ]
    tracking = hd.sr.TrackingIdentifier(uid=uid_for(session_key, "cine_function", label), identifier=label)
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking, measurements=measurements
    )


def cine_function_sr(
    report_path: Path,
    evidence: list[Dataset],
    session_key: str,
    series_uid: str,
    series_number: int,
    sop_uid: str,
) -> hd.sr.Comprehensive3DSR:
    """The SR of ``cine_function.json`` at ``report_path``, referencing ``evidence`` (the cine images)."""
    report = json.loads(Path(report_path).read_text(encoding="utf-8"))
    groups = [
        _group(session_key, "left_ventricle", _ventricle_values(report, "lv")),
        _group(session_key, "right_ventricle", _ventricle_values(report, "rv")),
    ]
    if report.get("flow"):
        groups.append(_group(session_key, "flow_cross_check", _flow_values(report["flow"])))
    return measurement_report_sr(
        groups, evidence, session_key, series_uid, series_number, sop_uid, "Cine function report (TID 1500)"
    )
