"""Delivery by configuration: ``run --deliver`` and a chain's ``[delivery]`` table send a simulated cine + flow
session to a real Orthanc (counts exact, velocity read back through Real World Value Mapping); a
``reconstream serve --deliver`` process killed with SIGKILL while its outbox is undelivered resumes at
restart, losing and duplicating nothing."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path

import ismrmrd
import numpy as np
import pydicom
import pytest

from plugins.cli import main
from plugins.io.dicom.identity import session_identity
from plugins.io.dicom.outbox import DicomDestination, Outbox
from plugins.io.dicom.run_folder import read_run
from plugins.io.dicom.series import image_meta
from plugins.runtime.chain import ChainConfigError, parse_chain
from tests.plugins.io.dicom.orthanc import OrthancServer, free_port
from tests.plugins.io.dicom.processes import simulate_raw, start_serve, stop_serve

SIZE = {"n_slices": 2, "n_coils": 8, "n_readout": 64, "n_phase_encodes": 52, "n_phases": 4}


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("raw")
    return {p: simulate_raw(p, folder / f"{p}.h5", SIZE) for p in ("cine", "flow")}


def _lookup(orthanc: OrthancServer, sop_uid: str) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{orthanc.http_port}/tools/lookup", data=sop_uid.encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        found = [m for m in json.loads(response.read()) if m["Type"] == "Instance"]
    assert len(found) == 1, sop_uid
    return str(found[0]["ID"])


def _download(orthanc: OrthancServer, instance_id: str) -> pydicom.Dataset:
    url = f"http://127.0.0.1:{orthanc.http_port}/instances/{instance_id}/file"
    with urllib.request.urlopen(url, timeout=5) as response:
        return pydicom.dcmread(pydicom.filebase.DicomBytesIO(response.read()))


def _velocity_images(run_dir: Path) -> list[ismrmrd.Image]:
    return [i for i in read_run(run_dir).images if image_meta(i).get("PC_role") == "velocity"]


def test_run_deliver_sends_cine_and_flow_with_exact_counts_and_velocities(
    raw: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    orthanc = OrthancServer(tmp_path / "pacs").start()
    try:
        target = f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"
        outbox = tmp_path / "outbox"
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
            assert main([*argv, "--device", "cpu", "--deliver", target, "--outbox", str(outbox)]) == 0
        out = capsys.readouterr().out
        files = {p: sorted((tmp_path / p / "dicom").rglob("*.dcm")) for p in ("cine", "flow")}
        series = {p: {f.parent.name for f in fs} for p, fs in files.items()}
        n_instances = sum(len(fs) for fs in files.values())
        assert len(files["cine"]) == 2 * 4 and series["cine"] == {"S001_cine"}
        assert {s.split("_", 1)[1] for s in series["flow"]} == {"mr", "velocity", "flow_report"}
        velocity = [f for f in files["flow"] if f.parent.name.endswith("_velocity")]
        assert len(velocity) == 2 * 4
        assert orthanc.counts() == (2, len(series["cine"]) + len(series["flow"]), n_instances)
        assert f"{len(files['flow'])} delivered, 0 failed, 0 left in the outbox" in out
        assert Outbox(outbox).pending(DicomDestination.parse(target)) == []
        _check_velocities(orthanc, tmp_path / "flow")
        assert main([*argv, "--device", "cpu", "--deliver", target, "--outbox", str(outbox)]) == 0
        assert orthanc.counts()[2] == n_instances  # delivered again: replaced, not duplicated
    finally:
        orthanc.stop()


def _check_velocities(orthanc: OrthancServer, run_dir: Path) -> None:
    """Each velocity image (ISMRMRD, cm/s) against its instance downloaded from Orthanc, via RWV."""
    run = read_run(run_dir)
    identity = session_identity(run.header, run.session_key, run.created_utc)
    images = _velocity_images(run_dir)
    assert len(images) == 2 * 4
    for image in images:
        key = (
            int(image.slice), int(image.phase), int(image.contrast), int(image.set),
            int(image.repetition), int(image.average), int(image.image_index), 0, 0,
        )  # fmt: skip
        sop = identity.instance_uid(run.chain, int(image.image_series_index), key)
        ds = _download(orthanc, _lookup(orthanc, sop))
        rwv = ds.RealWorldValueMappingSequence[0]
        assert rwv.MeasurementUnitsCodeSequence[0].CodeValue == "cm/s"
        values = ds.pixel_array * float(rwv.RealWorldValueSlope) + float(rwv.RealWorldValueIntercept)
        truth = np.asarray(image.data)[0, 0]
        assert np.max(np.abs(values - truth)) <= 0.1
        assert np.max(np.abs(truth)) > 1.0  # a velocity map, not zeros


def test_chain_delivery_table_is_validated_and_kept_in_the_effective_chain() -> None:
    base = 'description = "t"\n[[stage]]\nplugin = "cine_noise_adjust"\n'
    good = (
        base
        + '[delivery]\noutbox = "ob"\n[[delivery.destination]]\nae_title = "PACS"\nhost = "h"\nport = 104\n'
    )
    chain = parse_chain(good, name="t", source="t.toml")
    assert chain.delivery is not None and chain.delivery.destination[0].label == "PACS@h:104"
    again = parse_chain(chain.effective_toml(), name="t", source="effective")
    assert again.delivery == chain.delivery
    with pytest.raises(ChainConfigError, match=r"t\.toml: \[delivery\]: unknown key 'outbx'"):
        parse_chain(base + '[delivery]\noutbx = "ob"\n', name="t", source="t.toml")
    with pytest.raises(ChainConfigError, match=r"unknown key 'destination\.0\.aet'"):
        parse_chain(
            base + '[[delivery.destination]]\naet = "P"\nhost = "h"\nport = 1\n', name="t", source="t.toml"
        )
    with pytest.raises(ChainConfigError, match=r"key 'destination\.0\.port' = 70000"):
        parse_chain(
            base + '[[delivery.destination]]\nae_title = "P"\nhost = "h"\nport = 70000\n',
            name="t",
            source="t",
        )
    with pytest.raises(ChainConfigError, match="allowed: description, stage, delivery"):
        parse_chain(base + "[output]\nx = 1\n", name="t", source="t.toml")


def test_server_killed_with_undelivered_outbox_resumes_at_restart(
    raw: dict[str, Path], tmp_path: Path
) -> None:
    from plugins.server.client import send_file

    dicom_port, server_port = free_port(), free_port()
    target = f"ORTHANC@127.0.0.1:{dicom_port}"
    destination, outbox = DicomDestination.parse(target), Outbox(tmp_path / "outbox")
    proc = start_serve(tmp_path, server_port, target, outbox.root)
    try:  # the PACS is down: the session's DICOM waits in the outbox while the worker retries
        result = send_file(raw["cine"], "cine", "127.0.0.1", server_port, tmp_path / "client")
        assert result.closed and not result.errors
        queued = outbox.pending(destination)
        assert len(queued) == 8  # queued (fsync'ed) before the client got CLOSE
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    orthanc = OrthancServer(tmp_path / "pacs", dicom_port=dicom_port).start()
    try:
        # sent but not yet removed when the process died: Orthanc already has half the instances
        for item in queued[:4]:
            url = f"http://127.0.0.1:{orthanc.http_port}/instances"
            request = urllib.request.Request(url, data=item.path.read_bytes(), method="POST")
            urllib.request.urlopen(request, timeout=10).close()
        assert orthanc.counts() == (1, 1, 4)
        proc = start_serve(tmp_path, server_port, target, outbox.root)
        deadline = time.monotonic() + 60
        while outbox.pending(destination) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert outbox.pending(destination) == []
        assert orthanc.counts() == (1, 1, 8)  # nothing lost, nothing twice
    finally:
        stop_serve(proc)
        orthanc.stop()
