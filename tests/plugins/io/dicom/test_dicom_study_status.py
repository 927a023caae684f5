"""A study is called delivered only after a C-FIND at the PACS counts every instance queued for it (the
outbox's per-study state, shown by ``reconstream outbox list``), and the sessions of one exam (a cine and
a flow scan whose ISMRMRD headers share a studyInstanceUID) land in one DICOM study with distinct series;
both against a real Orthanc on loopback."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pydicom
import pytest

from plugins.cli import main
from plugins.io.dicom.identity import session_identity, uid_for
from plugins.io.dicom.outbox import DicomDestination, Outbox
from tests.plugins.io.dicom.orthanc import OrthancServer, free_port
from tests.plugins.io.dicom.processes import simulate_raw, start_serve, stop_serve

SIZE = {"n_slices": 1, "n_coils": 8, "n_readout": 64, "n_phase_encodes": 52, "n_phases": 4}
SHARED_STUDY = uid_for("reconstream tests", "one exam: cine + flow")


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("raw")
    return {p: simulate_raw(p, folder / f"{p}.h5", SIZE, SHARED_STUDY) for p in ("cine", "flow")}


def test_server_marks_a_study_delivered_only_after_the_cfind_count_matches(
    raw: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from plugins.server.client import send_file

    dicom_port, server_port = free_port(), free_port()
    target = f"ORTHANC@127.0.0.1:{dicom_port}"
    destination, outbox = DicomDestination.parse(target), Outbox(tmp_path / "outbox")
    proc = start_serve(tmp_path, server_port, target, outbox.root)
    orthanc = None
    try:  # the PACS is down: the study is queued and stays pending
        result = send_file(raw["cine"], "cine", "127.0.0.1", server_port, tmp_path / "client")
        assert result.closed and not result.errors
        deadline = time.monotonic() + 30  # the worker's first failed attempt is recorded
        while "last_failure_utc" not in outbox.destination_status(destination):
            assert time.monotonic() < deadline, "no failed attempt recorded"
            time.sleep(0.2)
        study = outbox.study(destination, SHARED_STUDY)
        assert study is not None and (study.state, study.expected, study.stored) == ("pending", 4, None)
        assert main(["outbox", "list", "--outbox", str(outbox.root)]) == 0
        listing = capsys.readouterr().out
        assert f"{target}: 4 instances in 1 studies queued" in listing
        assert "last failure: " in listing and "cannot connect" in listing
        assert f"study {SHARED_STUDY}: pending, ? of 4 instances" in listing

        orthanc = OrthancServer(tmp_path / "pacs", dicom_port=dicom_port).start()
        deadline = time.monotonic() + 60
        while (s := outbox.study(destination, SHARED_STUDY)) is None or s.state == "pending":
            assert time.monotonic() < deadline, f"still pending: {s}"
            time.sleep(0.2)
        assert (s.state, s.expected, s.stored) == ("delivered", 4, 4)
        assert orthanc.counts() == (1, 1, 4) and outbox.pending(destination) == []
        assert main(["outbox", "list", "--outbox", str(outbox.root)]) == 0
        listing = capsys.readouterr().out
        assert f"{target}: 0 instances in 0 studies queued" in listing
        assert "last success: " in listing and "4 delivered, 0 failed, 0 left in the outbox" in listing
        assert f"study {SHARED_STUDY}: delivered, 4 of 4 instances" in listing
        assert "verified by C-FIND: 4 of 4 instances" in listing
    finally:
        stop_serve(proc)
        if orthanc is not None:
            orthanc.stop()


def test_cine_and_flow_of_one_exam_land_in_one_study_with_distinct_series(
    raw: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    orthanc = OrthancServer(tmp_path / "pacs").start()
    try:
        target = f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"
        outbox = Outbox(tmp_path / "outbox")
        for protocol in ("cine", "flow"):
            argv = [
                "run",
                "--chain",
                protocol,
                "--input",
                str(raw[protocol]),
                "--out",
                str(tmp_path / protocol),
            ]
            assert main([*argv, "--device", "cpu", "--deliver", target, "--outbox", str(outbox.root)]) == 0
        files = sorted((tmp_path / "cine" / "dicom").rglob("*.dcm"))
        files += sorted((tmp_path / "flow" / "dicom").rglob("*.dcm"))
        headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
        assert {h.StudyInstanceUID for h in headers} == {SHARED_STUDY}
        series = {h.SeriesInstanceUID for h in headers}
        assert len(series) == len({f.parent for f in files}) >= 3  # cine + flow magnitude/velocity (+ SR)
        assert len({h.SOPInstanceUID for h in headers}) == len(files)
        assert orthanc.counts() == (1, len(series), len(files))
        study = outbox.study(DicomDestination.parse(target), SHARED_STUDY)
        assert study is not None
        assert (study.state, study.expected, study.stored) == ("delivered", len(files), len(files))
        out = capsys.readouterr().out
        assert f"verified by C-FIND: {len(files)} instances in the study" in out
    finally:
        orthanc.stop()


def _header(study: dict[str, str], patient_id: str = "P1") -> SimpleNamespace:
    return SimpleNamespace(
        subjectInformation=SimpleNamespace(patientID=patient_id, patientName=patient_id),
        studyInformation=SimpleNamespace(**study),
        acquisitionSystemInformation=SimpleNamespace(institutionName="Site A"),
    )


def test_study_uid_follows_the_headers_study_identity_and_series_stay_per_session() -> None:
    def uid(study: dict[str, str], key: str, patient_id: str = "P1") -> str:
        return session_identity(_header(study, patient_id), key).study_uid

    assert uid({"studyInstanceUID": "1.2.3.4"}, "a") == uid({"studyInstanceUID": "1.2.3.4"}, "b") == "1.2.3.4"
    acc = {"accessionNumber": "ACC17"}
    assert uid(acc, "a") == uid(acc, "b") != uid({"accessionNumber": "ACC18"}, "a")
    assert uid(acc, "a") != uid(acc, "a", patient_id="P2")
    dated = {"studyID": "42", "studyDate": "2026-12-04"}
    assert uid(dated, "a") == uid(dated, "b") != uid({**dated, "studyDate": "2026-12-05"}, "a")
    # a Study ID alone (the simulator's constant "reconstream-sim") does not merge sessions
    assert uid({"studyID": "42"}, "a") != uid({"studyID": "42"}, "b")
    a, b = (session_identity(_header(acc), k) for k in ("a", "b"))
    assert a.series_uid("cine", 1) != b.series_uid("cine", 1)
    assert a.instance_uid("cine", 1, (0,)) != b.instance_uid("cine", 1, (0,))
    # an anonymous patient follows the study, so both sessions are one patient at the PACS
    anon = [session_identity(_header(acc, patient_id=""), k) for k in ("a", "b")]
    assert anon[0].placeholder and anon[0].patient_id == anon[1].patient_id
    alone = [session_identity(_header({}, patient_id=""), k) for k in ("a", "b")]
    assert alone[0].patient_id != alone[1].patient_id


def test_a_study_short_at_the_pacs_is_failed_not_delivered(
    synthetic_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from plugins.io.dicom.delivery import DeliveryError, send_study
    from plugins.io.dicom.export import export_dicom

    instances = export_dicom(synthetic_run, tmp_path / "dcm")
    files = [(str(i.path), i.study_uid, i.sop_uid) for i in instances]
    study_uid = instances[0].study_uid
    orthanc = OrthancServer(tmp_path / "pacs").start()
    try:
        dest = DicomDestination(ae_title=orthanc.aet, host="127.0.0.1", port=orthanc.dicom_port)
        outbox = Outbox(tmp_path / "outbox")
        n = len(instances)
        outbox.record_queued(dest, study_uid, [uid_for("never sent")])  # queued, then lost before sending
        with pytest.raises(DeliveryError, match=f"C-FIND reports {n} of {n + 1} instances"):
            send_study(outbox, dest, files, backoff_s=0.05)
        study = outbox.study(dest, study_uid)
        assert study is not None and (study.state, study.expected, study.stored) == ("failed", n + 1, n)
        assert main(["outbox", "retry", "--outbox", str(outbox.root), "--backoff-s", "0.05"]) == 1
        assert (
            f"study {study_uid}: failed (C-FIND reports {n} of {n + 1} instances)" in capsys.readouterr().out
        )
    finally:
        orthanc.stop()
