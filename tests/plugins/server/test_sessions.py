"""The server over loopback: round trips, journals, concurrency, the ismrmrd package as a client."""

from __future__ import annotations

import io
import socket
import threading
from pathlib import Path

import ismrmrd
import numpy as np
from ismrmrd.serialization import ConfigText as IsmrmrdConfigText
from ismrmrd.serialization import ProtocolDeserializer, ProtocolSerializer

from plugins.io.protocol import Close, ConfigText, encode_message
from plugins.runtime.chain import parse_chain
from plugins.runtime.pipeline import run_chain
from plugins.runtime.plugin import ChainContext
from plugins.server.client import ClientResult, connect, exchange, send_session
from plugins.server.journal import verify_journal
from plugins.server.server import ReconServer
from tests.plugins.server.helpers import (
    PASSTHROUGH_TOML,
    RECON_TOML,
    make_acquisitions,
    make_header,
    wait_for_session,
)


def _run(server: ReconServer, messages: list[object]) -> tuple[ClientResult, int, bytes]:
    """Send ``messages``; returns the result, the client's port and the exact bytes sent."""
    sent = b"".join(m if isinstance(m, bytes) else encode_message(m) for m in messages)
    with connect(*server.address) as sock:
        port = sock.getsockname()[1]
        result = exchange(sock, [sent])
    return result, port, sent


def test_passthrough_round_trip_is_journaled_byte_for_byte(server: ReconServer) -> None:
    header, acqs = make_header(), make_acquisitions(seed=1)
    result, port, sent = _run(server, [ConfigText(PASSTHROUGH_TOML), header, *acqs, Close()])
    assert result.closed and not result.errors
    assert len(result.other) == len(acqs)
    for got, want in zip(result.other, acqs, strict=True):
        assert isinstance(got, ismrmrd.Acquisition)
        np.testing.assert_array_equal(got.data, want.data)
        assert got.idx.kspace_encode_step_1 == want.idx.kspace_encode_step_1
    folder, manifest = wait_for_session(server.config.journal_dir, port)
    assert (folder / "input.bin").read_bytes() == sent
    expected_out = b"".join(encode_message(a) for a in acqs) + encode_message(Close())
    assert (folder / "output.bin").read_bytes() == expected_out
    assert manifest["outcome"] == "completed" and manifest["error"] is None
    assert manifest["chain"] == "inline"
    assert manifest["messages_in"] == {"CONFIG_TEXT": 1, "HEADER": 1, "ACQUISITION": len(acqs), "CLOSE": 1}
    assert manifest["items_out"] == {"ACQUISITION": len(acqs), "CLOSE": 1}
    assert manifest["input"]["bytes"] == len(sent)
    assert verify_journal(folder)
    assert "Sørensen" not in (folder / "manifest.json").read_text(encoding="utf-8")


def test_images_through_server_equal_in_process_run(server: ReconServer) -> None:
    header, acqs = make_header(), make_acquisitions(seed=2)
    result = send_session(*server.address, ConfigText(RECON_TOML), header, acqs)
    assert result.closed and not result.errors
    chain = parse_chain(RECON_TOML, name="inline", source="test")
    local = run_chain(chain, make_acquisitions(seed=2), ChainContext("inline", header=header))
    local_images = [o for o in local if isinstance(o, ismrmrd.Image)]
    assert len(result.images) == len(local_images) == 1
    np.testing.assert_array_equal(result.images[0].data, local_images[0].data)
    assert len(result.reports) == 1 and result.reports[0].filename == "summary.json"
    assert result.reports[0].content == local[-1].content


def test_concurrent_sessions_are_isolated(server: ReconServer) -> None:
    header = make_header()
    results: dict[int, ClientResult] = {}

    def client(seed: int) -> None:
        results[seed] = send_session(
            *server.address, ConfigText(PASSTHROUGH_TOML), header, make_acquisitions(seed)
        )

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == list(range(6))
    for seed, result in results.items():
        assert result.closed and not result.errors
        for got, want in zip(result.other, make_acquisitions(seed), strict=True):
            np.testing.assert_array_equal(got.data, want.data)


def test_ismrmrd_package_serializer_as_client(server: ReconServer) -> None:
    """The ismrmrd package's own ProtocolSerializer/Deserializer, as is, with a non-ASCII patient name."""
    header, acqs = make_header("Sørensen^Åse"), make_acquisitions(seed=3)
    with connect(*server.address) as sock:
        port = sock.getsockname()[1]
        wfile = sock.makefile("wb")

        def send() -> None:
            with ProtocolSerializer(wfile) as serializer:
                serializer.serialize(IsmrmrdConfigText(RECON_TOML))
                serializer.serialize(header)
                for acq in acqs:
                    serializer.serialize(acq)
            wfile.flush()

        sender = threading.Thread(target=send)
        sender.start()
        replies = list(ProtocolDeserializer(sock.makefile("rb")).deserialize())
        sender.join()
    images = [r for r in replies if isinstance(r, ismrmrd.Image)]
    assert len(images) == 1 and images[0].data.shape[-2:] == (16, 32)
    assert any(isinstance(r, str) and '"type": "report"' in r for r in replies)
    _, manifest = wait_for_session(server.config.journal_dir, port)
    assert manifest["outcome"] == "completed"


def test_header_with_non_ascii_name_declared_ascii(server: ReconServer) -> None:
    """``toXML()`` declares ASCII and writes UTF-8: the server reads it as UTF-8."""
    header = make_header("Müller^Jörg")
    xml = header.toXML().encode("utf-8")
    assert "Müller" in xml.decode("utf-8") and b'encoding="ascii"' in xml.lower()
    raw_header = (3).to_bytes(2, "little") + len(xml).to_bytes(4, "little") + xml
    result, _, _ = _run(server, [ConfigText(PASSTHROUGH_TOML), raw_header, *make_acquisitions(4, 2), Close()])
    assert result.closed and not result.errors and len(result.other) == 2


def test_stream_recording_is_a_valid_ismrmrd_stream(server: ReconServer) -> None:
    """``input.bin`` reads back with the ismrmrd package's deserializer (it is a plain protocol stream)."""
    _, port, _ = _run(
        server, [ConfigText(PASSTHROUGH_TOML), make_header(), *make_acquisitions(5, 3), Close()]
    )
    folder, _ = wait_for_session(server.config.journal_dir, port)
    items = list(ProtocolDeserializer(io.BytesIO((folder / "input.bin").read_bytes())).deserialize())
    assert sum(isinstance(i, ismrmrd.Acquisition) for i in items) == 3


def test_connection_limit_rejects_with_error_and_keeps_serving(tmp_path: Path, test_plugins: None) -> None:
    from tests.plugins.server.conftest import server_config

    with ReconServer(server_config(tmp_path / "j", max_connections=1)) as srv:
        holder = socket.create_connection(srv.address)
        holder.sendall(encode_message(ConfigText(PASSTHROUGH_TOML)))
        try:
            second = send_session(
                *srv.address, ConfigText(PASSTHROUGH_TOML), make_header(), make_acquisitions(6, 2)
            )
            assert second.errors and second.errors[0].startswith(
                "ERROR [server]: too many sessions (limit 1)"
            )
            assert second.closed
        finally:
            holder.close()
        # the slot frees up once the first session ends
        for _ in range(100):
            if srv.n_active_sessions == 0:
                break
            threading.Event().wait(0.05)
        third = send_session(
            *srv.address, ConfigText(PASSTHROUGH_TOML), make_header(), make_acquisitions(7, 2)
        )
        assert third.closed and not third.errors


def test_shutdown_interrupts_a_stalled_session_and_journals_it(tmp_path: Path, test_plugins: None) -> None:
    from tests.plugins.server.conftest import server_config

    srv = ReconServer(server_config(tmp_path / "j", idle_timeout_s=30.0)).start()
    sock = connect(*srv.address)
    port = sock.getsockname()[1]
    first = (
        encode_message(ConfigText(PASSTHROUGH_TOML))
        + encode_message(make_header())
        + b"".join(encode_message(a) for a in make_acquisitions(8, 2))
    )
    sock.sendall(first)
    stopper = threading.Thread(target=srv.shutdown, kwargs={"grace_s": 0.3})
    stopper.start()
    result = exchange(sock, [])
    stopper.join(timeout=30)
    sock.close()
    assert not stopper.is_alive()
    assert result.errors and result.errors[0].startswith("ERROR [server]: the server is shutting down")
    assert len(result.other) == 2  # what was processed before the shutdown was still sent back
    folder, manifest = wait_for_session(tmp_path / "j", port)
    assert manifest["outcome"] == "interrupted"
    assert (folder / "input.bin").read_bytes() == first


def test_configured_chain_folder_is_searched_before_shipped_chains(
    tmp_path: Path, test_plugins: None
) -> None:
    from plugins.io.protocol import ConfigFile
    from tests.plugins.server.conftest import server_config

    chains = tmp_path / "chains"
    chains.mkdir()
    (chains / "site_recon.toml").write_text(RECON_TOML, encoding="utf-8")
    with ReconServer(server_config(tmp_path / "j", chain_dirs=(chains,))) as srv:
        result = send_session(*srv.address, ConfigFile("site_recon.xml"), make_header(), make_acquisitions(9))
    assert result.closed and not result.errors and len(result.images) == 1
