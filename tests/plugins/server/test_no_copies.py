"""Messages in parts (no joining copies): decoding into arrays, encoding as views, writev/sendmsg, batches."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ismrmrd
import numpy as np
import pytest

from plugins.io.protocol import (
    MessageReader,
    ProtocolError,
    encode_message,
    encode_parts,
    exact_reader,
)
from plugins.server.journal import Journal, read_manifest, verify_journal, write_all
from plugins.server.session import waiting_batches
from plugins.server.stream import send_parts


def _acquisition(seed: int, n_traj: int = 2) -> ismrmrd.Acquisition:
    rng = np.random.default_rng(seed)
    data = (rng.standard_normal((4, 40)) + 1j * rng.standard_normal((4, 40))).astype(np.complex64)
    traj = rng.standard_normal((40, n_traj)).astype(np.float32)
    acq = ismrmrd.Acquisition.from_array(data, trajectory=traj)
    acq.scan_counter = seed
    return acq


def test_encode_parts_are_the_librarys_bytes_and_views_of_the_arrays() -> None:
    acq = _acquisition(1)
    parts = encode_parts(acq)
    library = (1008).to_bytes(2, "little") + acq.to_bytes()
    assert b"".join(parts) == encode_message(acq) == library
    assert np.shares_memory(np.frombuffer(parts[-1], dtype=np.complex64), acq.data)  # the samples, no copy


@pytest.mark.parametrize("n_traj", [0, 2])
def test_decoding_into_arrays_equals_decoding_from_bytes(n_traj: int) -> None:
    raw = b"".join(encode_message(_acquisition(s, n_traj)) for s in range(3))
    by_bytes = MessageReader(exact_reader(io.BytesIO(raw).read))
    stream = io.BytesIO(raw)
    in_place = MessageReader(exact_reader(stream.read, stream.readinto))
    assert in_place.read_into is not None and by_bytes.read_into is None
    for seed in range(3):
        _, expected = by_bytes.next_message()
        _, got = in_place.next_message()
        assert got == expected == _acquisition(seed, n_traj)


def test_a_nan_sample_is_refused_when_decoding_in_place() -> None:
    acq = _acquisition(2)
    acq.data[1, 3] = np.nan
    stream = io.BytesIO(encode_message(acq))
    with pytest.raises(ProtocolError, match="NaN or Inf"):
        MessageReader(exact_reader(stream.read, stream.readinto)).next_message()


def test_write_all_finishes_partial_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.writev

    def at_most_5_bytes(fd: int, buffers: list[memoryview]) -> int:
        return real(fd, [bytes(b"".join(buffers)[:5])])

    monkeypatch.setattr(os, "writev", at_most_5_bytes)
    parts = [b"abc", memoryview(b""), memoryview(b"defghijkl"), b"mn"]
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    assert write_all(fd, parts) == 14
    os.close(fd)
    assert (tmp_path / "f").read_bytes() == b"abcdefghijklmn"


def test_journal_records_messages_in_parts_with_their_checksum_and_kinds(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "p", fsync_interval_s=0.0)
    first, second = encode_parts(_acquisition(3)), encode_parts(_acquisition(4))
    journal.record_outputs([*first, *second], ["ACQUISITION", "ACQUISITION"])
    journal.record_output(b"tail", "TEXT")
    manifest = journal.close("completed")
    expected = b"".join([*first, *second]) + b"tail"
    assert (journal.folder / "output.bin").read_bytes() == expected
    assert manifest["output"]["sha256"] == hashlib.sha256(expected).hexdigest()
    assert manifest["output"]["bytes"] == len(expected) and verify_journal(journal.folder)
    assert read_manifest(journal.folder)["items_out"] == {"ACQUISITION": 2, "TEXT": 1}


def test_send_parts_sends_every_byte_in_order_beyond_the_socket_buffer() -> None:
    left, right = socket.socketpair()
    big = np.arange(1 << 20, dtype=np.uint8)  # 1 MiB: sendmsg returns partial counts
    parts = [b"head", memoryview(big), b"", b"tail"]
    received = bytearray()

    def read_all() -> None:
        while len(received) < 8 + big.nbytes:
            received.extend(right.recv(1 << 16))

    reader = threading.Thread(target=read_all)
    reader.start()
    send_parts(left, parts)
    reader.join(timeout=10)
    left.close()
    right.close()
    assert bytes(received) == b"head" + big.tobytes() + b"tail"


def test_waiting_batches_never_hold_an_item_and_keep_items_before_a_failure() -> None:
    waiting = iter([2, 1, 0, 0, 5, 4, 3, 2])

    assert list(waiting_batches(iter("abcdefgh"), lambda: next(waiting), max_items=3)) == [
        ["a", "b", "c"], ["d"], ["e", "f", "g"], ["h"]
    ]  # fmt: skip

    def failing() -> Iterator[Any]:
        yield "x"
        yield "y"
        raise RuntimeError("stage failed")

    got: list[list[Any]] = []
    with pytest.raises(RuntimeError, match="stage failed"):
        for batch in waiting_batches(failing(), lambda: 1, max_items=8):
            got.append(batch)
    assert got == [["x", "y"]]
