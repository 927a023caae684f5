"""Patient, study and session identity for DICOM export, and deterministic UIDs.

Every UID is ``2.25.<name-based UUID (v5) of the session key and the object's identity>`` (DICOM PS3.5
B.2), so exporting or delivering the same session again yields the same Study/Series/SOP Instance UIDs and a
PACS replaces instead of duplicating.  The session key (chosen by the caller, see
:func:`plugins.io.dicom.run_folder.session_key`) is the SHA-256 of the run's first raw input when
``provenance.json`` has it (the same raw data → the same UIDs, whatever folder it was run into), else the
ISMRMRD ``measurementID``, else the run folder's name.

The Study Instance UID comes from the header's study identity so that the sessions of one exam (a cine
and a flow scan of one patient) land in one DICOM study, each with its own series: the header's
``studyInstanceUID``, else a UID derived from the accession number (with institution and patient ID),
else from the Study ID with patient ID and study date (a Study ID alone repeats across days and patients);
only without any of these is the study the session's own.  Series and SOP Instance UIDs stay keyed by the
session, so two sessions in one study never share a series.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any

ANONYMOUS_NAME = "Anonymous"
PLACEHOLDER_NOTE = "no subject in the ISMRMRD header: placeholder identity"


# Not pydicom.uid.generate_uid(prefix=None, entropy_srcs=...): pydicom 3.0 ignores the entropy sources
# when prefix is None and returns a random UUID UID (measured: two calls with the same sources differ).
UID_NAMESPACE = uuid.UUID("5b0b5c6e-8f1a-4a47-9d0e-2a6f0d1c9e41")


def uid_for(*parts: object) -> str:
    """A ``2.25.`` UID that depends only on ``parts`` (the same parts give the same UID)."""
    return f"2.25.{uuid.uuid5(UID_NAMESPACE, chr(31).join(str(p) for p in parts)).int}"


@dataclass(frozen=True)
class SessionIdentity:
    """Who and what a run's images belong to (DICOM Patient, General Study and Frame of Reference).

    ``placeholder``: True when the header named no patient, so the name and ID are placeholders and the
    objects say so (Patient Identity Removed = YES with the reason).  Dates are ``YYYYMMDD``, times
    ``HHMMSS`` (empty when unknown), weight in kg, height in m.
    """

    session_key: str
    patient_name: str
    patient_id: str
    birth_date: str
    sex: str
    weight_kg: float | None
    height_m: float | None
    placeholder: bool
    study_uid: str
    study_id: str
    study_date: str
    study_time: str
    study_description: str
    accession_number: str
    referring_physician: str
    frame_of_reference_uid: str
    protocol_name: str
    patient_position: str
    sequence_name: str
    institution: str
    manufacturer: str
    model: str
    field_strength_t: float | None
    tr_ms: float | None
    te_ms: float | None
    flip_angle_deg: float | None
    ti_ms: float | None = None
    """First inversion time of the header (LGE: the TI of the IR image), ms."""

    def series_uid(self, chain: str, series_index: int) -> str:
        return uid_for(self.session_key, "series", chain, series_index)

    def instance_uid(self, chain: str, series_index: int, image_key: tuple[int, ...]) -> str:
        return uid_for(self.session_key, "instance", chain, series_index, *image_key)


def _date(value: Any) -> str:
    text = re.sub(r"[^0-9]", "", str(value or ""))
    return text[:8] if len(text) >= 8 else ""


def _time(value: Any) -> str:
    text = re.sub(r"[^0-9.]", "", str(value or ""))
    return text.split(".")[0][:6]


def _first(values: Any) -> float | None:
    if values is None:
        return None
    if isinstance(values, list | tuple):
        return float(values[0]) if values else None
    return float(values)


def _sex(value: Any) -> str:
    text = str(getattr(value, "value", value) or "").upper()
    return text if text in ("M", "F", "O") else ""


def study_identity(header: Any) -> tuple[str, str] | None:
    """``(Study Instance UID, key)`` from the header's study identity (see the module docstring), or
    ``None`` when the header does not identify a study beyond this session."""
    study = getattr(header, "studyInformation", None)
    subject = getattr(header, "subjectInformation", None)
    system = getattr(header, "acquisitionSystemInformation", None)
    pid = str(getattr(subject, "patientID", None) or "")
    institution = str(getattr(system, "institutionName", None) or "")
    uid = str(getattr(study, "studyInstanceUID", None) or "").strip()
    if uid:
        return uid, f"study-uid:{uid}"
    accession = str(getattr(study, "accessionNumber", None) or "").strip()
    if accession:
        key = f"accession:{institution}:{pid}:{accession}"
        return uid_for(key, "study"), key
    study_id = str(getattr(study, "studyID", None) or "").strip()
    date = _date(getattr(study, "studyDate", None))
    if study_id and pid and date:
        key = f"study-id:{institution}:{pid}:{study_id}:{date}"
        return uid_for(key, "study"), key
    return None


def session_identity(header: Any, key: str, created_utc: str = "") -> SessionIdentity:
    """The identity of a run from its ISMRMRD header (``None`` for PET-only runs: all placeholders).

    ``key`` keys the UIDs; ``created_utc`` (ISO 8601) dates the study when the header does not.
    """
    subject = getattr(header, "subjectInformation", None)
    study = getattr(header, "studyInformation", None)
    meas = getattr(header, "measurementInformation", None)
    system = getattr(header, "acquisitionSystemInformation", None)
    seq = getattr(header, "sequenceParameters", None)
    name = str(getattr(subject, "patientName", None) or "")
    pid = str(getattr(subject, "patientID", None) or "")
    placeholder = not (name or pid)
    shared = study_identity(header)
    # a placeholder patient follows the study, so that sessions of one study share one (anonymous) patient
    digest = hashlib.sha256((shared[1] if shared else key).encode()).hexdigest()[:12].upper()
    fallback_date, fallback_time = _date(created_utc[:10]), _time(created_utc[11:19])
    return SessionIdentity(
        session_key=key,
        patient_name=name or ANONYMOUS_NAME,
        patient_id=pid or f"ANON-{digest}",
        birth_date=_date(getattr(subject, "patientBirthdate", None)),
        sex=_sex(getattr(subject, "patientGender", None)),
        weight_kg=_first(getattr(subject, "patientWeight_kg", None)),
        height_m=_first(getattr(subject, "patientHeight_m", None)),
        placeholder=placeholder,
        study_uid=shared[0] if shared else uid_for(key, "study"),
        study_id=str(getattr(study, "studyID", None) or "")[:16],
        study_date=_date(getattr(study, "studyDate", None)) or fallback_date,
        study_time=_time(getattr(study, "studyTime", None)) or fallback_time,
        study_description=str(getattr(study, "studyDescription", None) or ""),
        accession_number=str(getattr(study, "accessionNumber", None) or "")[:16],
        referring_physician=str(getattr(study, "referringPhysicianName", None) or ""),
        frame_of_reference_uid=str(
            getattr(meas, "frameOfReferenceUID", None) or uid_for(key, "frame_of_reference")
        ),
        protocol_name=str(getattr(meas, "protocolName", None) or ""),
        patient_position=str(getattr(getattr(meas, "patientPosition", None), "value", "") or ""),
        sequence_name=str(getattr(meas, "sequenceName", None) or ""),
        institution=str(getattr(system, "institutionName", None) or ""),
        manufacturer=str(getattr(system, "systemVendor", None) or "reconstream"),
        model=str(getattr(system, "systemModel", None) or ""),
        field_strength_t=_first(getattr(system, "systemFieldStrength_T", None)),
        tr_ms=_first(getattr(seq, "TR", None)),
        te_ms=_first(getattr(seq, "TE", None)),
        flip_angle_deg=_first(getattr(seq, "flipAngle_deg", None)),
        ti_ms=_first(getattr(seq, "TI", None)),
    )
