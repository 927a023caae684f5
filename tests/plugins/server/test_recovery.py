"""Never lose, always tell: a server killed mid-session, an interrupted stream, partial data.

A two-slice cine exam is cut inside its second slice (a ``kill -9`` of the server, or a truncated file):
the first slice is reconstructed, the second is named as incomplete with the lines that never came,
images say the input was interrupted, and the commands exit with the partial-data status 6.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import ismrmrd
import pytest

from plugins.cli import EXIT_PARTIAL, main
from plugins.io.protocol import Close, ConfigFile, encode_message
from plugins.server.journal import read_manifest, verify_journal
from plugins.server.retention import RetentionPolicy, apply_retention
from tests.plugins.server.helpers import small_two_slice_cine_config

REPO = Path(__file__).resolve().parents[3]


def _two_slice_exam() -> Any:
    pytest.importorskip("hardware_sim.mr.exam")
    from hardware_sim.mr import simulate_exam

    return simulate_exam(small_two_slice_cine_config(11))


def _messages_cut_inside_slice_1(exam: Any) -> tuple[bytes, bytes]:
    """(config + header + every message up to the middle of slice 1, the rest + CLOSE)."""
    head = [encode_message(ConfigFile("cine")), encode_message(exam.header)]
    items = list(exam.items())
    slice_1 = [
        i
        for i, item in enumerate(items)
        if isinstance(item, ismrmrd.Acquisition) and int(item.idx.slice) == 1
    ]
    cut = slice_1[len(slice_1) // 2]
    first = b"".join([*head, *(encode_message(item) for item in items[:cut])])
    # and half of the next message: the cut falls inside a message, as a crash would leave it
    next_message = encode_message(items[cut])
    first += next_message[: len(next_message) // 2]
    rest = next_message[len(next_message) // 2 :] + b"".join(encode_message(i) for i in items[cut + 1 :])
    return first, rest + encode_message(Close())


def _check_partial_outputs(out: Path) -> None:
    note = json.loads((out / "incomplete.json").read_text())
    assert "without CLOSE" in note["interrupted"]
    (unit,) = note["incomplete_units"]
    assert unit["kind"] == "slice" and unit["index"] == 1 and unit["readouts_received"] > 0
    assert "ky lines never received" in unit["missing"]
    dataset = ismrmrd.Dataset(str(out / "images.h5"), "dataset", create_if_needed=False)
    try:
        images = [
            dataset.read_image(group, k)
            for group in dataset.list()
            if group.startswith("image_")
            for k in range(dataset.number_of_images(group))
        ]
    finally:
        dataset.close()
    assert images and {int(image.slice) for image in images} == {0}  # slice 0 complete, slice 1 not made
    meta = ismrmrd.Meta.deserialize(images[0].attribute_string)
    assert "without CLOSE" in str(meta["StreamInterrupted"]) and str(meta["IncompleteUnits"]) == "slice 1"


def test_run_on_a_truncated_stream_file_reconstructs_the_complete_slice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, _ = _messages_cut_inside_slice_1(_two_slice_exam())
    truncated = tmp_path / "cut.bin"
    truncated.write_bytes(first[len(encode_message(ConfigFile("cine"))) :])  # a stream file has no CONFIG
    status = main(["run", "--chain", "cine", "--input", str(truncated), "--out", str(tmp_path / "out")])
    assert status == EXIT_PARTIAL
    assert "partial: slice 1 not reconstructed" in capsys.readouterr().out
    _check_partial_outputs(tmp_path / "out")


def _serve(journal: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "plugins.cli", "serve", "--port", str(port), "--journal", str(journal)]
    proc = subprocess.Popen(
        [*command, "--device", "cpu", *extra],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "reconstream server on" in line, line + (proc.stderr.read() if proc.stderr else "")
    return proc


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_server_killed_mid_session_is_recovered_listed_and_replayed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, _ = _messages_cut_inside_slice_1(_two_slice_exam())
    journal, port = tmp_path / "journal", _free_port()
    server = _serve(journal, port)
    try:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(first)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # every byte sent is in the journal before the crash
            inputs = list(journal.glob("*/input.bin"))
            if inputs and inputs[0].stat().st_size == len(first):
                break
            time.sleep(0.05)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        sock.close()
    finally:
        server.kill()
        server.communicate(timeout=30)
    (folder,) = [p for p in journal.iterdir() if p.is_dir()]
    assert read_manifest(folder)["outcome"] == "running"  # what the crash left
    # restart, configured to replay what a crash interrupted
    server = _serve(journal, port, "--replay-interrupted")
    try:
        deadline = time.monotonic() + 600
        while "replay" not in read_manifest(folder) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    manifest = read_manifest(folder)
    assert manifest["outcome"] == "interrupted" and verify_journal(folder)
    assert manifest["input"]["bytes"] == len(first) and manifest["last_complete_message"] == "ACQUISITION"
    assert manifest["replay"]["outcome"] == "partial" and manifest["replay"]["n_images"] > 0
    assert "ALERT session" in stderr and "interrupted by a server crash" in stderr
    _check_partial_outputs(folder / "replay")
    # listed, left alone by retention, and replayable by hand with the partial-data status
    assert main(["journal", "list", "--journal", str(journal), "--outcome", "interrupted"]) == 0
    listing = capsys.readouterr().out
    assert folder.name in listing and "[replayed: partial]" in listing and "1 sessions" in listing
    policy = RetentionPolicy(max_age_days=0, max_total_bytes=0, delete_failed=True, failed_max_age_days=0)
    assert folder.name not in apply_retention(journal, policy).deleted
    status = main(["replay", folder.name, "--journal", str(journal), "--out", str(tmp_path / "again")])
    assert status == EXIT_PARTIAL
    _check_partial_outputs(tmp_path / "again")
