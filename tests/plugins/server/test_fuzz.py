"""Property-based tests of the message parser and of the server under random and mutated byte streams."""

from __future__ import annotations

import io
import socket
import threading
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugins.io.protocol import (
    Close,
    ConfigText,
    MessageReader,
    ProtocolError,
    ProtocolLimits,
    StreamClosed,
    encode_message,
    exact_reader,
)
from plugins.server.client import connect, exchange, send_session
from plugins.server.server import ReconServer
from tests.plugins.server.conftest import server_config
from tests.plugins.server.helpers import PASSTHROUGH_TOML, make_acquisitions, make_header

LIMITS = ProtocolLimits(max_text_bytes=1 << 16, max_payload_bytes=1 << 22)


def _valid_stream() -> bytes:
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    return b"".join(
        encode_message(m)
        for m in (ConfigText(PASSTHROUGH_TOML), make_header(), *make_acquisitions(5, 2), arr, Close())
    )


VALID = _valid_stream()
IDS = [1, 2, 3, 4, 5, 6, 7, 8, 1008, 1022, 1026, 1030, 1100]


def _parse_all(data: bytes) -> int:
    """Parse until the end; only clean protocol outcomes are allowed to escape."""
    reader = MessageReader(exact_reader(io.BytesIO(data).read), LIMITS)
    n = 0
    try:
        while True:
            reader.next_message()
            n += 1
    except (ProtocolError, StreamClosed):
        return n


@st.composite
def mutated_streams(draw: st.DrawFn) -> bytes:
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "id"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
        else:
            data[pos:pos] = draw(st.sampled_from(IDS)).to_bytes(2, "little") + draw(st.binary(max_size=64))
    return bytes(data)


@st.composite
def id_prefixed_noise(draw: st.DrawFn) -> bytes:
    """A known message id followed by random bytes (exercises every decoder's size checks)."""
    return draw(st.sampled_from(IDS)).to_bytes(2, "little") + draw(st.binary(min_size=0, max_size=600))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=2048), mutated_streams(), id_prefixed_noise()))
def test_parser_gives_objects_or_a_clean_protocol_error(data: bytes) -> None:
    _parse_all(data)


def test_valid_stream_parses_completely() -> None:
    assert _parse_all(VALID) == 6  # config, header, 2 acquisitions, ndarray, close; then a clean end


def test_server_survives_fuzzed_sessions_and_serves_a_valid_one(tmp_path: Path, test_plugins: None) -> None:
    config = server_config(tmp_path / "j", idle_timeout_s=2.0, drain_timeout_s=0.5, limits=LIMITS)
    with ReconServer(config) as srv:
        threads_before = threading.active_count()

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.one_of(mutated_streams(), id_prefixed_noise()))
        def fuzz_session(data: bytes) -> None:
            with connect(*srv.address) as sock:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
                result = exchange(sock, [])
            assert result.closed or not result.errors  # an answer always ends with CLOSE
            for error in result.errors:
                assert error.startswith(("ERROR [protocol]:", "ERROR [chain]:", "ERROR [server]:")), error
                assert "internal error" not in error

        fuzz_session()
        good = send_session(
            *srv.address, ConfigText(PASSTHROUGH_TOML), make_header(), make_acquisitions(6, 4)
        )
        assert good.closed and not good.errors and len(good.other) == 4
        for _ in range(200):
            if srv.n_active_sessions == 0:
                break
            threading.Event().wait(0.05)
        assert srv.n_active_sessions == 0
        assert threading.active_count() <= threads_before + 1  # no session threads left behind
