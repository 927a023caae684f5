"""A reconstream chain as a Gadgetron external Python node: the test plays Gadgetron's side on loopback.

Gadgetron listens, starts ``python -m gadgetron PORT plugins.server.gadgetron_node run_chain``, the child
connects back, receives CONFIG (message 2, the node's XML configuration), HEADER, data and CLOSE, and
answers with outputs, then CLOSE (message 8 ERROR first when the chain fails).
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
from pathlib import Path
from xml.sax.saxutils import quoteattr

import ismrmrd
import numpy as np
import pytest

from plugins.io.ismrmrd_files import header_to_xml
from plugins.io.protocol import Close, MessageReader, Text, encode_message, exact_reader
from tests.plugins.server.helpers import PASSTHROUGH_TOML, make_acquisitions, make_header

REPO = Path(__file__).resolve().parents[3]


def _node_config(props: dict[str, str]) -> bytes:
    lines = "".join(f"<property name={quoteattr(k)} value={quoteattr(v)}/>" for k, v in props.items())
    return f"<configuration>{lines}</configuration>".encode()


def _play_gadgetron(props: dict[str, str], data: list[bytes]) -> tuple[list[object], int]:
    """Start the external node, feed it, collect everything it sends until CLOSE; returns (replies, exit code)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(60)
    port = listener.getsockname()[1]
    env = dict(os.environ, GADGETRON_EXTERNAL_LOG_LEVEL="WARNING", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    child = subprocess.Popen(
        [sys.executable, "-m", "gadgetron", str(port), "plugins.server.gadgetron_node", "run_chain"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        conn, _ = listener.accept()
        with conn:
            config = _node_config(props)
            header = header_to_xml(make_header()).encode("utf-8")
            conn.sendall(
                struct.pack("<HI", 2, len(config)) + config + struct.pack("<HI", 3, len(header)) + header
            )
            conn.sendall(b"".join(data) + encode_message(Close()))
            reader = MessageReader(exact_reader(conn.recv))
            replies: list[object] = []
            while True:
                _, obj = reader.next_message()
                if isinstance(obj, Close):
                    break
                replies.append(obj)
        code = child.wait(timeout=60)
    finally:
        listener.close()
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=10)
    return replies, code


def test_chain_runs_as_gadgetron_external_node() -> None:
    acqs = make_acquisitions(seed=11, n_lines=5)
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    data = [encode_message(a) for a in acqs] + [encode_message(array), encode_message(Text("a note"))]
    replies, code = _play_gadgetron(
        {"chain_toml": PASSTHROUGH_TOML, "passthrough.log_every_n_items": "2"}, data
    )
    assert code == 0
    back = [r for r in replies if isinstance(r, ismrmrd.Acquisition)]
    assert len(back) == 5
    for got, want in zip(back, acqs, strict=True):
        np.testing.assert_array_equal(got.data, want.data)
    arrays = [r for r in replies if isinstance(r, np.ndarray)]
    assert len(arrays) == 1  # NDARRAY, which the gadgetron package alone would stop at, went through
    np.testing.assert_array_equal(arrays[0], array)


def test_failure_reaches_gadgetron_as_message_8_then_close() -> None:
    replies, code = _play_gadgetron(
        {"chain": "no_such_chain"}, [encode_message(a) for a in make_acquisitions(12, 2)]
    )
    assert code == 0
    errors = [r for r in replies if isinstance(r, Text) and r.is_error]
    assert len(errors) == 1 and errors[0].text.startswith("ERROR [chain]: no chain named 'no_such_chain'"), (
        replies
    )


def _in_process(props: dict[str, str], data: list[bytes]) -> list[object]:
    """The same exchange with the package's ``Connection`` built in-process (no interpreter start-up)."""
    from gadgetron.external.connection import Connection

    from plugins.server.gadgetron_node import serve_connection

    parent, child = socket.socketpair()
    config = _node_config(props)
    header = header_to_xml(make_header()).encode("utf-8")
    parent.sendall(struct.pack("<HI", 2, len(config)) + config + struct.pack("<HI", 3, len(header)) + header)
    parent.sendall(b"".join(data))
    parent.shutdown(socket.SHUT_WR)
    with Connection(child) as conn:
        serve_connection(conn)
    reader = MessageReader(exact_reader(parent.recv))
    replies: list[object] = []
    while True:
        _, obj = reader.next_message()
        if isinstance(obj, Close):
            break
        replies.append(obj)
    parent.close()
    return replies


@pytest.mark.parametrize(
    ("props", "data", "expected"),
    [
        ({}, [], "ERROR [chain]: the Gadgetron node configuration names no chain"),
        (
            {"chain_toml": PASSTHROUGH_TOML},
            [struct.pack("<H", 4242)],
            "ERROR [protocol]: message #1: unknown message id 4242",
        ),
        (
            {"chain_toml": PASSTHROUGH_TOML},
            [encode_message(make_acquisitions(13, 1)[0])[:300]],
            "ERROR [protocol]: the client disconnected mid-stream: connection closed inside message #1 (ACQUISITION)",
        ),
        (
            {"chain_toml": PASSTHROUGH_TOML + "log_every_n_items = -1\n"},
            [],
            "ERROR [chain]: Gadgetron property chain_toml",
        ),
    ],
)
def test_node_failures_in_process(props: dict[str, str], data: list[bytes], expected: str) -> None:
    """Faults the package alone would hang on (peer closes mid-message) or swallow (unknown ids)."""
    replies = _in_process(props, data)
    errors = [r for r in replies if isinstance(r, Text) and r.is_error]
    assert len(errors) == 1 and errors[0].text.startswith(expected), replies
