"""Destinations that refuse: an association rejected by the peer, a wrong called AE title, and a TLS
destination against a plain DICOM port (fails closed) — each a one-line error naming the destination, with
every instance kept in the outbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pynetdicom import AE, StoragePresentationContexts

from plugins.cli import main
from plugins.io.dicom.delivery import DeliveryError, deliver
from plugins.io.dicom.export import ExportedInstance, export_dicom
from plugins.io.dicom.outbox import DicomDestination, Outbox
from tests.plugins.io.dicom.orthanc import OrthancServer, free_port


@pytest.fixture(scope="module")
def cine_dicom(cine_run: Path, tmp_path_factory: pytest.TempPathFactory) -> list[ExportedInstance]:
    return export_dicom(cine_run, tmp_path_factory.mktemp("cine_dicom"))


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    server = OrthancServer(tmp_path_factory.mktemp("pacs"), check_called_aet=True).start()
    try:
        yield server
    finally:
        server.stop()


def _queue(tmp_path: Path, destination: DicomDestination, instances: list[ExportedInstance]) -> Outbox:
    outbox = Outbox(tmp_path / "outbox")
    for i in instances:
        outbox.put(destination, i.path, i.study_uid, i.sop_uid)
    return outbox


def _retry_error(outbox: Outbox, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    args = ["outbox", "retry", "--outbox", str(outbox.root), "--attempts", "1"]
    assert main(args) == 1
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    return lines[0]


def test_rejected_association_is_named_and_data_stay(
    cine_dicom: list[ExportedInstance], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scp = AE(ae_title="STRICT")
    scp.supported_contexts = StoragePresentationContexts
    scp.require_calling_aet = ["MODALITY1"]  # we call as RECONSTREAM: refused
    port = free_port()
    server = scp.start_server(("127.0.0.1", port), block=False)
    assert server is not None
    try:
        dest = DicomDestination(ae_title="STRICT", host="127.0.0.1", port=port)
        outbox = _queue(tmp_path, dest, cine_dicom)
        line = _retry_error(outbox, capsys)
        assert f"STRICT@127.0.0.1:{port}" in line and "association rejected" in line
        assert "Calling AE title not recognised" in line
        assert len(outbox.pending(dest)) == 8
    finally:
        server.shutdown()


def test_wrong_called_ae_title_is_named_and_data_stay(
    orthanc: OrthancServer, cine_dicom: list[ExportedInstance], tmp_path: Path
) -> None:
    dest = DicomDestination(ae_title="NOTORTHANC", host="127.0.0.1", port=orthanc.dicom_port)
    outbox = _queue(tmp_path, dest, cine_dicom)
    with pytest.raises(DeliveryError) as info:
        deliver(outbox, dest, attempts=1, timeout_s=5.0)
    text = str(info.value)
    assert "\n" not in text and f"NOTORTHANC@127.0.0.1:{orthanc.dicom_port}" in text
    assert "Called AE title not recognised" in text and "'NOTORTHANC'" in text
    assert "8 instances stay in the outbox" in text
    assert len(outbox.pending(dest)) == 8
    assert orthanc.counts()[2] == 0


def test_tls_destination_against_a_plain_port_fails_closed(
    orthanc: OrthancServer, cine_dicom: list[ExportedInstance], tmp_path: Path
) -> None:
    dest = DicomDestination(ae_title=orthanc.aet, host="127.0.0.1", port=orthanc.dicom_port, tls=True)
    outbox = _queue(tmp_path, dest, cine_dicom)
    with pytest.raises(DeliveryError) as info:
        deliver(outbox, dest, attempts=1, timeout_s=5.0)
    text = str(info.value)
    assert "\n" not in text and f"ORTHANC@127.0.0.1:{orthanc.dicom_port}" in text
    assert "TLS handshake failed" in text and "not sent in clear" in text
    assert len(outbox.pending(dest)) == 8
    assert orthanc.counts()[2] == 0  # nothing went over plain TCP
    plain = dest.model_copy(update={"tls": False})
    assert sum(deliver(Outbox(tmp_path / "outbox"), plain, attempts=1).sent.values()) == 8
