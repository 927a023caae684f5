"""The flow report (``flow_report.json``) as a DICOM Comprehensive 3D SR measurement report (TID 1500,
highdicom): one measurement group per vessel (tracking identifier = the vessel's label) and one for the
session's Qp:Qs, so a registry imports the numbers without retyping them.

Concepts (units UCUM): net forward volume (DCM 122645, ``ml``), forward and backward volume per beat
(private scheme ``99RECONSTREAM``: no standard concept found for these two), regurgitant fraction (SCT
399301000, ``%``), peak velocity (LN 20355-4 Peak Blood Velocity, ``cm/s``), Qp:Qs (SCT 251050008, ``{ratio}``).
A value the report leaves empty (``null``: e.g. no forward flow, or no Qp:Qs without both great vessels) is
left out.  The report's patient and study come from the series it accompanies (``evidence``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from plugins.io.dicom.identity import uid_for
from plugins.io.outputs import software_version

PRIVATE_SCHEME = "99RECONSTREAM"
NET_FORWARD_VOLUME = hd.sr.CodedConcept("122645", "DCM", "Net Forward Volume")
FORWARD_VOLUME = hd.sr.CodedConcept("FWDVOL", PRIVATE_SCHEME, "Forward flow volume per beat")
BACKWARD_VOLUME = hd.sr.CodedConcept("BWDVOL", PRIVATE_SCHEME, "Backward flow volume per beat")
REGURGITANT_FRACTION = hd.sr.CodedConcept("399301000", "SCT", "Regurgitant Fraction")
PEAK_VELOCITY = hd.sr.CodedConcept("20355-4", "LN", "Peak Blood Velocity")
QP_QS = hd.sr.CodedConcept("251050008", "SCT", "Pulmonary to systemic flow ratio")
CARDIAC_MRI = hd.sr.CodedConcept("241620005", "SCT", "Cardiac MRI")
UNITS = {
    "ml": hd.sr.CodedConcept("ml", "UCUM", "milliliter"),
    "%": hd.sr.CodedConcept("%", "UCUM", "Percent"),
    "cm/s": hd.sr.CodedConcept("cm/s", "UCUM", "centimeter/second"),
    "{ratio}": hd.sr.CodedConcept("{ratio}", "UCUM", "ratio"),
}
# (flow_report.json key under "volumes", concept, unit)
VESSEL_VALUES = (
    ("net_ml", NET_FORWARD_VOLUME, "ml"),
    ("forward_ml", FORWARD_VOLUME, "ml"),
    ("backward_ml", BACKWARD_VOLUME, "ml"),
    ("regurgitant_fraction_percent", REGURGITANT_FRACTION, "%"),
    ("peak_velocity_cm_per_s", PEAK_VELOCITY, "cm/s"),
)


def _measurements(values: list[tuple[Any, hd.sr.CodedConcept, str]]) -> list[hd.sr.Measurement]:
    return [
        hd.sr.Measurement(name=concept, value=float(value), unit=UNITS[unit])
        for value, concept, unit in values
        if value is not None
    ]


def _group(session_key: str, label: str, measurements: list[hd.sr.Measurement]) -> Any:
    tracking = hd.sr.TrackingIdentifier(uid=uid_for(session_key, "flow_report", label), identifier=label)
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking, measurements=measurements
    )


def flow_report_sr(
    report_path: Path,
    evidence: list[Dataset],
    session_key: str,
    series_uid: str,
    series_number: int,
    sop_uid: str,
) -> hd.sr.Comprehensive3DSR:
    """The SR of ``flow_report.json`` at ``report_path``, referencing ``evidence`` (the velocity images)."""
    report = json.loads(Path(report_path).read_text(encoding="utf-8"))
    groups = []
    for vessel in report.get("vessels", []):
        volumes = vessel.get("volumes") or {}
        values = [(volumes.get(key), concept, unit) for key, concept, unit in VESSEL_VALUES]
        groups.append(_group(session_key, str(vessel["label"]), _measurements(values)))
    if report.get("qp_qs") is not None:
        groups.append(_group(session_key, "Qp:Qs", _measurements([(report["qp_qs"], QP_QS, "{ratio}")])))
    return measurement_report_sr(
        groups, evidence, session_key, series_uid, series_number, sop_uid, "Flow report (TID 1500)"
    )


def measurement_report_sr(
    groups: list[Any],
    evidence: list[Dataset],
    session_key: str,
    series_uid: str,
    series_number: int,
    sop_uid: str,
    series_description: str,
) -> hd.sr.Comprehensive3DSR:
    """A TID 1500 measurement report of a cardiac MRI with the given measurement ``groups``, observed by
    this software (a device observer), referencing ``evidence``; shared by every report's SR."""
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=uid_for(session_key, "device"), name=f"reconstream {software_version()}"[:64]
    )
    context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )
    content = hd.sr.MeasurementReport(
        observation_context=context, procedure_reported=CARDIAC_MRI, imaging_measurements=groups
    )
    return hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=content[0],
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer="reconstream",
        is_complete=True,
        series_description=series_description,
    )
