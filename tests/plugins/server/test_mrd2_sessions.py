"""MRD v2 streaming sessions on the server's ISMRMRD port: detected from the first bytes, reconstructed,
answered as an MRD v2 stream, journaled and replayed like ISMRMRD v1 sessions."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ismrmrd
import ismrmrd.xsd
import pytest

from plugins.io.mrd2_files import read_mrd2, write_mrd2
from plugins.io.mrd2_protocol import read_replies
from plugins.io.protocol import Text
from plugins.server.replay import replay_session
from plugins.server.server import ReconServer
from tests.plugins.io.mrd2_cases import correlation, images_of, reference_images, write_phantom
from tests.plugins.server.conftest import server_config
from tests.plugins.server.helpers import wait_for_session


@pytest.fixture
def cartesian_server(tmp_path: Path) -> Iterator[ReconServer]:
    srv = ReconServer(server_config(tmp_path / "journal", default_chain="cartesian")).start()
    try:
        yield srv
    finally:
        srv.shutdown(grace_s=5.0)


def _session(address: tuple[str, int], payload: bytes, close_early: bool = False) -> tuple[list[Any], int]:
    """Send ``payload`` (an MRD v2 stream); the MRD v2 reply read to its end, and the client's port."""
    with socket.create_connection(address, timeout=60) as sock:
        port = int(sock.getsockname()[1])
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        sender.join()
        if close_early:
            sock.shutdown(socket.SHUT_WR)
        return list(read_replies(lambda n: sock.recv(n))), port


def test_mrd2_session_reconstructs_journals_and_replays(
    cartesian_server: ReconServer, tmp_path: Path
) -> None:
    source = write_phantom(tmp_path / "phantom.bin")
    replies, port = _session(cartesian_server.address, source.read_bytes())
    images = [r for r in replies if isinstance(r, ismrmrd.Image)]
    references = reference_images(source)
    assert len(images) == len(references) == 2
    for image, reference in zip(images_of(images), references, strict=True):
        assert correlation(image, reference) >= 0.97
    folder, manifest = wait_for_session(tmp_path / "journal", port)
    assert manifest["outcome"] == "completed" and manifest["chain"] == "cartesian"
    assert (folder / "input.bin").read_bytes() == source.read_bytes()  # the journal holds the MRD v2 bytes
    result = replay_session(folder, tmp_path / "replay")
    assert result.n_images == 2 and result.matches_journal is True and not result.truncated


def test_mrd2_session_naming_an_unknown_chain_gets_an_error(
    cartesian_server: ReconServer, tmp_path: Path
) -> None:
    raw = read_mrd2(write_phantom(tmp_path / "phantom.bin", matrix=32, n_repetitions=1))
    header = raw.header
    header.userParameters = ismrmrd.xsd.userParametersType(
        userParameterString=[ismrmrd.xsd.userParameterStringType(name="reconstream_chain", value="no-such")]
    )
    path = tmp_path / "named.bin"
    write_mrd2(path, header, raw.items)
    replies, _ = _session(cartesian_server.address, path.read_bytes())
    errors = [r for r in replies if isinstance(r, Text) and r.is_error]
    assert len(errors) == 1 and errors[0].text.startswith("ERROR [chain]") and "no-such" in errors[0].text


def test_cut_mrd2_session_is_journaled_as_disconnected(cartesian_server: ReconServer, tmp_path: Path) -> None:
    data = write_phantom(tmp_path / "phantom.bin", matrix=32, n_repetitions=1).read_bytes()
    replies, port = _session(cartesian_server.address, data[: len(data) // 2], close_early=True)
    assert any(isinstance(r, Text) and r.is_error and "disconnected" in r.text for r in replies)
    folder, manifest = wait_for_session(tmp_path / "journal", port)
    assert manifest["outcome"] == "disconnected"
    result = replay_session(folder, tmp_path / "replay")  # up to the last complete item
    assert result.truncated and result.summary.interrupted is not None
