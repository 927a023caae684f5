"""Delivery to a real Orthanc on loopback: counts queried back, PACS down → outbox → retry, no duplicates
on redelivery, and a bad destination named in a one-line error with the data kept in the outbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugins.cli import main
from plugins.io.dicom.delivery import DeliveryError, deliver, send_study, study_instance_count
from plugins.io.dicom.export import ExportedInstance, export_dicom
from plugins.io.dicom.outbox import DicomDestination, Outbox
from tests.plugins.io.dicom.orthanc import OrthancServer, free_port


@pytest.fixture(scope="module")
def cine_dicom(cine_run: Path, tmp_path_factory: pytest.TempPathFactory) -> list[ExportedInstance]:
    return export_dicom(cine_run, tmp_path_factory.mktemp("cine_dicom"))


def _files(instances: list[ExportedInstance]) -> list[tuple[str, str, str]]:
    return [(str(i.path), i.study_uid, i.sop_uid) for i in instances]


def test_deliver_query_back_and_redeliver_without_duplicates(
    cine_dicom: list[ExportedInstance], tmp_path: Path
) -> None:
    orthanc = OrthancServer(tmp_path / "pacs").start()
    try:
        dest = DicomDestination(ae_title=orthanc.aet, host="127.0.0.1", port=orthanc.dicom_port)
        outbox = Outbox(tmp_path / "outbox")
        result, counts = send_study(outbox, dest, _files(cine_dicom), backoff_s=0.1)
        assert sum(result.sent.values()) == 8 and result.remaining == 0
        assert counts == {cine_dicom[0].study_uid: 8}
        assert orthanc.counts() == (1, 1, 8)
        assert outbox.pending(dest) == []
        send_study(outbox, dest, _files(cine_dicom), backoff_s=0.1)  # the same session again
        assert orthanc.counts() == (1, 1, 8)
        assert study_instance_count(dest, cine_dicom[0].study_uid) == 8
    finally:
        orthanc.stop()


def test_pacs_down_keeps_the_outbox_until_retry_delivers_everything(
    cine_dicom: list[ExportedInstance], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    dest = DicomDestination(ae_title="ORTHANC", host="127.0.0.1", port=port)
    outbox = Outbox(tmp_path / "outbox")
    with pytest.raises(DeliveryError, match=f"ORTHANC@127.0.0.1:{port}"):
        send_study(outbox, dest, _files(cine_dicom), attempts=2, backoff_s=0.05)
    assert len(outbox.pending(dest)) == 8
    assert main(["outbox", "list", "--outbox", str(outbox.root)]) == 0
    assert f"ORTHANC@127.0.0.1:{port}: 8 instances in 1 studies queued" in capsys.readouterr().out
    orthanc = OrthancServer(tmp_path / "pacs", dicom_port=port).start()
    try:
        assert main(["outbox", "retry", "--outbox", str(outbox.root), "--backoff-s", "0.05"]) == 0
        assert "8 delivered, 0 failed, 0 left in the outbox" in capsys.readouterr().out
        assert orthanc.counts() == (1, 1, 8)
        assert outbox.pending(dest) == []
    finally:
        orthanc.stop()


def test_bad_destination_is_named_in_one_line_and_data_stay(
    cine_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    outbox = tmp_path / "outbox"
    code = main(
        ["export", str(cine_run), "--dicom", "--out", str(tmp_path / "dcm"),
         "--deliver", f"NOPACS@127.0.0.1:{port}", "--outbox", str(outbox)]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"NOPACS@127.0.0.1:{port}" in err and "outbox" in err
    assert len(list(outbox.rglob("*.dcm"))) == 8
    dest = DicomDestination.parse(f"NOPACS@127.0.0.1:{port}")
    with pytest.raises(DeliveryError):
        deliver(Outbox(outbox), dest, attempts=1)
    assert main(["outbox", "purge", "--older-than", "0", "--outbox", str(outbox)]) == 0
    assert list(outbox.rglob("*.dcm")) == []
