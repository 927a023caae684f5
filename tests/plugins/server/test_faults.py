"""Faults and bad input: each gets ``ERROR [plugin]: …`` then CLOSE, the journal keeps every byte that
arrived once the client sent a valid CONFIG (before that nothing is journaled: no folder), and a second
session running at the same time completes."""

from __future__ import annotations

import ctypes
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

import ismrmrd
import numpy as np
import pytest

from plugins.io.protocol import Close, ConfigFile, ConfigText, encode_message
from plugins.server.client import ClientResult, connect, exchange, send_session
from plugins.server.server import ReconServer
from tests.plugins.server.conftest import server_config
from tests.plugins.server.helpers import (
    EXPLODE_TOML,
    PASSTHROUGH_TOML,
    make_acquisitions,
    make_header,
    wait_for_session,
)


def _enc(*objs: object) -> bytes:
    return b"".join(encode_message(o) for o in objs)


def _good_start() -> bytes:
    return _enc(ConfigText(PASSTHROUGH_TOML), make_header())


def _nan_acquisition() -> bytes:
    acq = make_acquisitions(20, 1)[0]
    data = acq.data.copy()
    data[1, 5] = np.nan
    bad = ismrmrd.Acquisition.from_array(data)
    bad.scan_counter = 7
    return encode_message(bad)


def _absurd_acquisition() -> bytes:
    head = ismrmrd.AcquisitionHeader()
    head.number_of_samples = 65000
    head.active_channels = 4000
    head.available_channels = 4000
    return struct.pack("<H", 1008) + bytes(head)


def _mismatched_acquisition() -> bytes:
    """A header announcing 32 samples × 4 channels, followed by far fewer bytes (then the client closes)."""
    raw = encode_message(make_acquisitions(21, 1)[0])
    return raw[: 2 + ctypes.sizeof(ismrmrd.AcquisitionHeader) + 100]


# name → (bytes the client sends, expected start of the error text, expected outcome)
FAULTS: dict[str, tuple[Callable[[], bytes], str, str]] = {
    "unknown_chain": (
        lambda: _enc(ConfigFile("no_such_chain.xml"), make_header()),
        "ERROR [chain]: no chain named 'no_such_chain.xml'",
        "failed",
    ),
    "chain_path_from_client": (
        lambda: _enc(ConfigFile("/etc/reconstream/secret.toml"), make_header()),
        "ERROR [chain]: CONFIG_FILE '/etc/reconstream/secret.toml': give the name of a configured or shipped chain, "
        "not a path",
        "failed",
    ),
    "bad_chain_toml": (
        lambda: _enc(ConfigText("[[stage]\nplugin = "), make_header()),
        "ERROR [chain]: CONFIG_TEXT chain: not valid TOML",
        "failed",
    ),
    "bad_chain_key": (
        lambda: _enc(ConfigText(PASSTHROUGH_TOML + "log_every_n_items = -3\n"), make_header()),
        "ERROR [chain]: CONFIG_TEXT chain: stage 'passthrough': plugin 'passthrough': key "
        "'log_every_n_items' = -3",
        "failed",
    ),
    "absurd_header_size": (
        lambda: _enc(ConfigText(PASSTHROUGH_TOML)) + struct.pack("<HI", 3, 0xFFFFFFF0),
        "ERROR [protocol]: HEADER: announced length 4294967280 bytes exceeds the limit",
        "failed",
    ),
    "absurd_ndarray": (
        lambda: _good_start() + struct.pack("<HHHH3Q", 1030, 7, 0, 3, 1 << 20, 1 << 20, 1 << 10),
        "ERROR [protocol]: NDARRAY:",
        "failed",
    ),
    "absurd_acquisition": (
        lambda: _good_start() + _absurd_acquisition(),
        "ERROR [protocol]: ACQUISITION (scan_counter 0): number_of_samples = 65000 exceeds 256",
        "failed",
    ),
    "unknown_message_id": (
        lambda: _good_start() + struct.pack("<H", 4242) + b"junk",
        "ERROR [protocol]: message #3: unknown message id 4242",
        "failed",
    ),
    "nan_kspace": (
        lambda: _good_start() + _enc(*make_acquisitions(22, 2)) + _nan_acquisition(),
        "ERROR [protocol]: ACQUISITION (scan_counter 7): data contain NaN or Inf",
        "failed",
    ),
    "invalid_header_xml": (
        lambda: _enc(ConfigText(PASSTHROUGH_TOML)) + struct.pack("<HI", 3, 12) + b"<not-ismrmrd",
        "ERROR [protocol]: HEADER: invalid ISMRMRD XML header",
        "failed",
    ),
    "data_before_header": (
        lambda: _enc(ConfigText(PASSTHROUGH_TOML), *make_acquisitions(23, 2)),
        "ERROR [protocol]: ACQUISITION arrived before the HEADER",
        "failed",
    ),
    "missing_header": (
        lambda: _enc(ConfigText(PASSTHROUGH_TOML), Close()),
        "ERROR [protocol]: CLOSE arrived before the HEADER",
        "failed",
    ),
    "no_config": (
        lambda: _enc(make_header(), Close()),
        "ERROR [protocol]: HEADER arrived before any CONFIG_FILE or CONFIG_TEXT",
        "failed",
    ),
    "plugin_exception": (
        lambda: _enc(ConfigText(EXPLODE_TOML), make_header(), *make_acquisitions(24, 6), Close()),
        "ERROR [test_explode]: stage 'test_explode' (plugin 'test_explode') failed on item #3 "
        "(Acquisition scan_counter=2",
        "failed",
    ),
    "truncated_mid_message": (
        lambda: _good_start() + _mismatched_acquisition(),
        "ERROR [protocol]: the client disconnected mid-stream: connection closed inside "
        "message #3 (ACQUISITION)",
        "disconnected",
    ),
}


def _concurrent_good_session(server: ReconServer, out: dict[str, ClientResult]) -> threading.Thread:
    def run() -> None:
        out["good"] = send_session(
            *server.address, ConfigText(PASSTHROUGH_TOML), make_header(), make_acquisitions(99, 12)
        )

    thread = threading.Thread(target=run)
    thread.start()
    return thread


#: Faults before a valid CONFIG: the client is told, nothing is journaled.
NOT_JOURNALED = {"unknown_chain", "chain_path_from_client", "bad_chain_toml", "bad_chain_key", "no_config"}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_gets_error_then_close_journal_keeps_bytes(server: ReconServer, fault: str) -> None:
    make_bytes, expected, outcome = FAULTS[fault]
    sent = make_bytes()
    good: dict[str, ClientResult] = {}
    other = _concurrent_good_session(server, good)
    with connect(*server.address) as sock:
        port = sock.getsockname()[1]
        sock.sendall(sent)
        sock.shutdown(socket.SHUT_WR)  # a client that stops sending (it may also just disconnect)
        result = exchange(sock, [])
    other.join(timeout=60)
    assert result.errors, f"no error for {fault}; texts {result.texts}"
    assert result.errors[0].startswith(expected), result.errors[0]
    assert result.closed
    if fault in NOT_JOURNALED:
        assert good["good"].closed and not good["good"].errors
        folders = [p for p in server.config.journal_dir.iterdir() if p.is_dir()]
        assert len(folders) == 1  # the good session's
        return
    folder, manifest = wait_for_session(server.config.journal_dir, port)
    assert (folder / "input.bin").read_bytes() == sent
    assert manifest["outcome"] == outcome
    assert result.errors[0] == f"ERROR [{manifest['error_plugin']}]: {manifest['error']}"
    assert good["good"].closed and not good["good"].errors and len(good["good"].other) == 12


def test_client_disconnect_mid_stream_is_journaled(server: ReconServer) -> None:
    """The client vanishes (socket closed) half-way through a message: nothing to answer, all journaled."""
    sent = _good_start() + _enc(*make_acquisitions(25, 3)) + encode_message(make_acquisitions(26, 1)[0])[:200]
    good: dict[str, ClientResult] = {}
    other = _concurrent_good_session(server, good)
    sock = connect(*server.address)
    port = sock.getsockname()[1]
    sock.sendall(sent)
    sock.close()
    other.join(timeout=60)
    folder, manifest = wait_for_session(server.config.journal_dir, port)
    assert manifest["outcome"] == "disconnected"
    assert "the client disconnected" in manifest["error"]
    assert (folder / "input.bin").read_bytes() == sent
    assert good["good"].closed and not good["good"].errors


def test_stalled_client_gets_idle_timeout_error(tmp_path: Path, test_plugins: None) -> None:
    with ReconServer(server_config(tmp_path / "j", idle_timeout_s=0.5)) as srv:
        sent = _good_start() + _enc(*make_acquisitions(27, 2))
        with connect(*srv.address) as sock:
            port = sock.getsockname()[1]
            sock.sendall(sent)
            start = time.monotonic()
            result = exchange(sock, [])
            waited = time.monotonic() - start
        assert result.errors[0].startswith("ERROR [server]: the client sent nothing for 0.5 s (idle timeout)")
        assert waited < 10.0
        assert len(result.other) == 2
        folder, manifest = wait_for_session(tmp_path / "j", port)
        assert manifest["outcome"] == "disconnected"
        assert (folder / "input.bin").read_bytes() == sent


def test_header_errors_are_logged_without_header_values(
    server: ReconServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A header value (here a malformed birth date next to the patient's name) never reaches the log."""
    xml = (
        b'<?xml version="1.0"?><ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"><subjectInformation>'
        b"<patientName>Doe^Jane</patientName><patientBirthdate>1970-13-45-secret</patientBirthdate>"
        b"</subjectInformation></ismrmrdHeader>"
    )
    sent = _enc(ConfigText(PASSTHROUGH_TOML)) + struct.pack("<HI", 3, len(xml)) + xml
    with caplog.at_level(logging.DEBUG), connect(*server.address) as sock:
        port = sock.getsockname()[1]
        sock.sendall(sent)
        sock.shutdown(socket.SHUT_WR)
        result = exchange(sock, [])
        wait_for_session(server.config.journal_dir, port)
    assert result.errors and result.errors[0].startswith(
        "ERROR [protocol]: HEADER: invalid ISMRMRD XML header"
    )
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "HEADER: invalid ISMRMRD XML header" in logged
    assert "secret" not in logged and "Doe^Jane" not in logged
