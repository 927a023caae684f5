"""The server under attack on loopback (issue: a server a hospital can expose).

Each attack runs beside well-behaved sessions, which must complete: slow and silent sockets, oversized
and out-of-order messages, a full journal disk, chains that name files outside the output folder, TLS
misconfiguration, client strings aimed at the log, probes; and the journal as a protected record.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import socket
import ssl
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugins.cli import build_parser
from plugins.io.protocol import Close, ConfigFile, ConfigText, encode_message
from plugins.server.cli import config_from_args
from plugins.server.client import ClientResult, collect_replies, connect, exchange, send_session
from plugins.server.config import ServerConfig, TLSSettings
from plugins.server.journal import Journal, read_manifest, verify_journal
from plugins.server.journal_crypto import JournalCipher, write_key_file
from plugins.server.replay import replay_session
from plugins.server.retention import RetentionPolicy, apply_retention
from plugins.server.server import ReconServer
from plugins.server.stream import SessionFailure
from tests.plugins.server.conftest import server_config
from tests.plugins.server.helpers import (
    PASSTHROUGH_TOML,
    RECON_TOML,
    make_acquisitions,
    make_cert,
    make_header,
    send_command,
    start_slow_attackers,
    wait_for_session,
    write_small_raw,
)

REPO = Path(__file__).resolve().parents[3]
NEEDS_OPENSSL = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="openssl makes the test certificates"
)


def _good_session(address: tuple[str, int], seed: int = 1, tls: ssl.SSLContext | None = None) -> ClientResult:
    return send_session(
        *address,
        ConfigText(PASSTHROUGH_TOML),
        make_header(),
        make_acquisitions(seed, 6),
        tls=tls,
        timeout_s=30,
    )


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


# ---------------------------------------------------------------------------------------------- lock-out


def test_slow_and_silent_sockets_never_lock_out_scanners(tmp_path: Path, test_plugins: None) -> None:
    """15 sockets trickling one byte per second plus one silent socket, for 30 s, reconnecting when
    dropped: every good session in that time completes, quickly."""
    config = server_config(tmp_path / "j", idle_timeout_s=60.0, drain_timeout_s=2.0)
    assert config.max_connections == 16 and config.handshake_timeout_s == 10.0  # the shipped defaults
    with ReconServer(config) as srv:
        stop = threading.Event()
        attackers = start_slow_attackers(srv.address, stop)
        time.sleep(1.0)
        durations: list[float] = []
        threads_seen = 0
        start = time.monotonic()
        seed = 0
        while time.monotonic() - start < 30.0:
            seed += 1
            t0 = time.monotonic()
            result = _good_session(srv.address, seed)
            durations.append(time.monotonic() - t0)
            assert result.closed and not result.errors, result.errors
            assert len(result.other) == 6
            threads_seen = max(threads_seen, threading.active_count())
            time.sleep(1.0)
        stop.set()
        for thread in attackers:
            thread.join(timeout=10)
    assert len(durations) >= 10
    assert max(durations) < 5.0, durations
    assert threads_seen < 16 + config.max_pending + 40  # attackers + pending + a session's threads


@NEEDS_OPENSSL
def test_tls_connections_without_hello_hold_no_slot_and_no_thread_pile(
    tmp_path: Path, test_plugins: None
) -> None:
    """116 connections that never send a ClientHello: threads stay bounded, a TLS scanner gets through."""
    ca_key, ca_crt = make_cert(tmp_path, "ca", None)
    srv_key, srv_crt = make_cert(tmp_path, "server", (ca_key, ca_crt))
    tls = TLSSettings(srv_crt, srv_key)
    config = server_config(tmp_path / "j", tls=tls)
    baseline = threading.active_count()
    with ReconServer(config) as srv:
        idle = [socket.create_connection(srv.address) for _ in range(116)]
        try:
            time.sleep(1.0)
            assert srv.n_pending <= config.max_pending
            assert threading.active_count() - baseline <= config.max_pending + 4
            result = _good_session(srv.address, 5, ssl.create_default_context(cafile=str(ca_crt)))
            assert result.closed and not result.errors and len(result.other) == 6
        finally:
            for sock in idle:
                sock.close()
    assert len([p for p in (tmp_path / "j").iterdir() if p.is_dir()]) == 1  # the scanner's session only


def test_probes_leave_no_journal_folder(server: ReconServer) -> None:
    """200 TCP probes (connect, close; connect, junk, close) create no journal folder."""
    for k in range(200):
        with socket.create_connection(server.address) as sock:
            if k % 2:
                sock.sendall(b"\x16\x03\x01 GET / HTTP/1.0\r\n\r\n")
    deadline = time.monotonic() + 10
    while server.n_active_sessions and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p for p in server.config.journal_dir.iterdir() if p.is_dir()] == []


# ------------------------------------------------------------------------------------ memory and bytes


def _oversized(address: tuple[str, int], prefix: bytes, out: dict[str, ClientResult], key: str) -> None:
    """Announce a 200 MB NDARRAY after ``prefix`` and stream zeros until the server stops reading."""
    announced = 200 * 1000 * 1000
    head = struct.pack("<HHHHQ", 1030, 7, 0, 1, announced // 4)  # float32, 1-D
    chunk = bytes(1 << 20)
    sock = connect(*address)
    sock.settimeout(10)
    received = bytearray()
    try:
        sock.sendall(prefix + head)
        for _ in range(announced // len(chunk)):
            sock.sendall(chunk)
    except OSError:
        pass
    try:
        while data := sock.recv(1 << 16):
            received += data
    except OSError:
        pass
    sock.close()
    out[key] = collect_replies(io.BytesIO(bytes(received)).read, ClientResult())


def test_oversized_and_out_of_order_messages_are_refused_before_their_payload(
    server: ReconServer,
) -> None:
    """Three 200 MB NDARRAYs before the HEADER and one to a chain that takes no NDARRAY: each refused by
    its message id alone; the server's memory grows by less than 60 MB; a good session completes."""
    before_header = encode_message(ConfigText(PASSTHROUGH_TOML))
    wrong_kind = encode_message(ConfigText(RECON_TOML)) + encode_message(make_header())
    out: dict[str, ClientResult] = {}
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.01)

    baseline = _rss_bytes()
    sampler = threading.Thread(target=sample)
    sampler.start()
    attacks = [
        threading.Thread(target=_oversized, args=(server.address, before_header, out, f"early{k}"))
        for k in range(3)
    ]
    attacks.append(threading.Thread(target=_oversized, args=(server.address, wrong_kind, out, "kind")))
    for thread in attacks:
        thread.start()
    good = _good_session(server.address, 9)
    for thread in attacks:
        thread.join(timeout=60)
    done.set()
    sampler.join()
    assert good.closed and not good.errors
    for k in range(3):
        assert out[f"early{k}"].errors[0].startswith("ERROR [protocol]: NDARRAY arrived before the HEADER")
        assert out[f"early{k}"].closed
    assert (
        out["kind"]
        .errors[0]
        .startswith(
            "ERROR [protocol]: NDARRAY: chain 'inline' does not handle these (it handles ACQUISITION)"
        )
    )
    assert peak[0] - baseline < 60e6, f"RSS grew by {(peak[0] - baseline) / 1e6:.0f} MB"


def test_header_derived_quota_stops_a_session_that_sends_too_much(tmp_path: Path, test_plugins: None) -> None:
    """Streamed, and all at once in one write (everything may arrive before the header is parsed)."""
    config = server_config(tmp_path / "j", session_quota_factor=1.0, min_session_quota_bytes=0)
    acquisitions = make_acquisitions(3, 16) * 3
    with ReconServer(config) as srv:
        streamed = send_session(*srv.address, ConfigText(PASSTHROUGH_TOML), make_header(), acquisitions)
        with connect(*srv.address) as sock:
            sock.sendall(
                b"".join(
                    encode_message(m) for m in (ConfigText(PASSTHROUGH_TOML), make_header(), *acquisitions)
                )
                + encode_message(Close())
            )
            at_once = exchange(sock, [])
    for result in (streamed, at_once):
        assert result.errors, (result.texts, result.send_error, result.closed, len(result.other))
        assert result.errors[0].startswith("ERROR [server]: the session sent more than its quota of")


# ------------------------------------------------------------------------------------------ full disk


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 32 MB tmpfs (needs the right to mount; skipped otherwise)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount_point)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({made.stderr.decode().strip() or 'not permitted'})")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def test_full_journal_disk_refuses_clearly_and_recovers(
    small_disk: Path, test_plugins: None, caplog: pytest.LogCaptureFixture
) -> None:
    config = server_config(small_disk / "journal", journal_min_free_bytes=8 << 20)
    filler = small_disk / "filler.bin"
    with ReconServer(config) as srv, caplog.at_level(logging.WARNING):
        assert _good_session(srv.address, 1).closed
        free = shutil.disk_usage(small_disk).free
        with filler.open("wb") as fh:
            fh.write(bytes(free - (2 << 20)))
        refused = _good_session(srv.address, 2)
        assert refused.closed, "the client must get an answer, not a reset"
        assert refused.errors[0].startswith("ERROR [server]: the server's journal disk is nearly full")
        assert any("ALERT journal disk" in r.getMessage() for r in caplog.records)
        filler.unlink()
        again = _good_session(srv.address, 3)
        assert again.closed and not again.errors and len(again.other) == 6


# ----------------------------------------------------------------------------- client-chosen file paths

_OUTSIDE = {
    "relative": '[[stage]]\nplugin = "petsird_writer"\nfilename = "../../escaped.petsird"\n',
    "absolute": '[[stage]]\nplugin = "petsird_writer"\nfilename = "{target}"\n',
    "server_file": '[[stage]]\nplugin = "pet_tof_osem"\nmumap_file = "/etc/passwd"\n',
    "delivery": '[[stage]]\nplugin = "passthrough"\n[delivery]\noutbox = "{target}"\n',
}


@pytest.mark.parametrize("case", sorted(_OUTSIDE))
def test_chains_naming_outside_paths_are_refused_live_and_in_replay(
    server: ReconServer, tmp_path: Path, case: str
) -> None:
    target = tmp_path / "outside" / "victim.bin"
    toml = _OUTSIDE[case].format(target=target)
    live = send_session(*server.address, ConfigText(toml), make_header(), make_acquisitions(1, 2))
    assert live.errors and live.errors[0].startswith("ERROR [chain]: CONFIG_TEXT chain")
    assert [p for p in server.config.journal_dir.iterdir() if p.is_dir()] == []  # not a valid CONFIG
    # a journal written by an older server (or by hand) holding the same chain: replay refuses it
    journal = Journal(tmp_path / "old-journal", "10.0.0.9:4000")
    journal.record_input(encode_message(ConfigText(toml)) + encode_message(make_header()))
    journal.record_input(
        b"".join(encode_message(a) for a in make_acquisitions(1, 2)) + encode_message(Close())
    )
    journal.close("failed", "chain failed", "chain")
    with pytest.raises(SessionFailure, match="not allowed|may not"):
        replay_session(journal.folder, tmp_path / "replayed")
    assert not target.exists() and not (tmp_path / "escaped.petsird").exists()


def test_config_file_never_loads_a_chain_from_the_working_directory(
    server: ReconServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil.toml").write_text(PASSTHROUGH_TOML)
    result = send_session(*server.address, ConfigFile("evil.toml"), make_header(), make_acquisitions(1, 2))
    assert result.errors[0].startswith("ERROR [chain]: no chain named 'evil.toml'")


# ------------------------------------------------------------------------------------------------- TLS


def _serve_args(*extra: str) -> ServerConfig:
    return config_from_args(build_parser().parse_args(["serve", "--port", "0", *extra]))


@NEEDS_OPENSSL
def test_every_tls_misconfiguration_is_refused_at_start(tmp_path: Path) -> None:
    ca_key, ca_crt = make_cert(tmp_path, "ca", None)
    key, crt = make_cert(tmp_path, "server", (ca_key, ca_crt))
    with pytest.raises(ValueError, match="TLS needs both --tls-cert and --tls-key"):
        _serve_args("--tls-client-ca", str(ca_crt))
    with pytest.raises(ValueError, match="TLS needs both"):
        _serve_args("--tls-cert", str(crt))
    with pytest.raises(ValueError, match="need a client CA"):
        _serve_args("--tls-cert", str(crt), "--tls-key", str(key), "--tls-allow-subject", "CN=scanner")
    with pytest.raises(ValueError, match="without TLS would send patient data in clear text"):
        _serve_args("--host", "0.0.0.0")
    assert _serve_args("--host", "0.0.0.0", "--insecure-plaintext").allow_plaintext_network
    with pytest.raises(ValueError, match="is not a readable file"):
        _serve_args("--tls-cert", str(tmp_path / "missing.crt"), "--tls-key", str(key))
    with pytest.raises(ValueError, match="TLS: the certificate, key or client CA cannot be used"):
        ReconServer(_serve_args("--tls-cert", str(ca_crt), "--tls-key", str(key)))  # key of another cert
    send = build_parser().parse_args(
        ["send", "x.h5", "--chain", "cine", "--out", "o", "--tls-cert", str(crt), "--tls-key", str(key)]
    )
    from plugins.server.client_cli import tls_context

    with pytest.raises(ValueError, match="without --tls-ca"):
        tls_context(send)
    # the command itself: one line, exit status 2, no traceback
    proc = subprocess.run(
        [sys.executable, "-m", "plugins.cli", "serve", "--port", "0", "--tls-client-ca", str(ca_crt)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "TLS needs both" in proc.stderr


@NEEDS_OPENSSL
def test_mutual_tls_allow_list_and_plaintext_clients_get_one_clear_line(
    tmp_path: Path, test_plugins: None, caplog: pytest.LogCaptureFixture
) -> None:
    ca_key, ca_crt = make_cert(tmp_path, "ca", None)
    srv_key, srv_crt = make_cert(tmp_path, "server", (ca_key, ca_crt))
    scanner = make_cert(tmp_path, "scanner-3t", (ca_key, ca_crt))
    intruder = make_cert(tmp_path, "laptop", (ca_key, ca_crt))
    tls = TLSSettings(srv_crt, srv_key, ca_crt, allowed_subjects=("CN=scanner-3t",))

    def context(cert: tuple[Path, Path]) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(ca_crt))
        ctx.load_cert_chain(str(cert[1]), str(cert[0]))
        return ctx

    with ReconServer(server_config(tmp_path / "j", tls=tls)) as srv, caplog.at_level(logging.INFO):
        ok = _good_session(srv.address, 1, context(scanner))
        assert ok.closed and not ok.errors and len(ok.other) == 6
        refused = _good_session(srv.address, 2, context(intruder))
        assert refused.errors == [
            "ERROR [server]: client certificate 'CN=laptop' is not allowed on this server"
        ]
        plain = _good_session(srv.address, 3)
        assert plain.errors[0].startswith("ERROR [server]: this server speaks TLS only")
        port = srv.address[1]
        raw = tmp_path / "raw.h5"
        write_small_raw(raw)
        proc = subprocess.run(
            [
                *send_command(raw, port, tmp_path / "o"),
                *("--tls-ca", str(ca_crt), "--tls-cert", str(intruder[1]), "--tls-key", str(intruder[0])),
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
        )
    assert "Traceback" not in proc.stderr and proc.returncode == 1, proc.stderr
    assert "not allowed on this server" in proc.stdout
    lines = [
        r.getMessage()
        for r in caplog.records
        if "allow-list" in r.getMessage() or "TLS only" in r.getMessage()
    ]
    assert lines and all(line.startswith("[127.0.0.1:") for line in lines)


def test_send_to_a_closed_port_is_one_line_with_the_network_exit_code(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    raw = tmp_path / "raw.h5"
    write_small_raw(raw)
    proc = subprocess.run(
        send_command(raw, port, tmp_path / "o"),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip()
        == f"reconstream send: error: 127.0.0.1:{port}: connection refused (is a reconstream server listening there?)"
    )


# -------------------------------------------------------------------------------- the journal at rest


def test_journal_files_are_private(server: ReconServer) -> None:
    with connect(*server.address) as sock:
        port = sock.getsockname()[1]
        result = exchange(
            sock, [ConfigText(PASSTHROUGH_TOML), make_header(), *make_acquisitions(1, 3), Close()]
        )
    assert result.closed
    folder, _ = wait_for_session(server.config.journal_dir, port)
    assert stat.S_IMODE(server.config.journal_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("input.bin", "output.bin", "manifest.json"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name


def test_encrypted_journal_hides_patient_data_and_replays_with_its_key(
    tmp_path: Path, test_plugins: None
) -> None:
    key = write_key_file(tmp_path / "journal.key")
    config = server_config(tmp_path / "j", journal_key_file=key)
    with ReconServer(config) as srv, connect(*srv.address) as sock:
        port = sock.getsockname()[1]
        result = exchange(
            sock, [ConfigText(RECON_TOML), make_header("Sørensen^Åse"), *make_acquisitions(1, 16), Close()]
        )
        folder, manifest = wait_for_session(tmp_path / "j", port)
    assert result.closed and len(result.images) == 1
    stored = (folder / "input.bin").read_bytes()
    assert "Sørensen".encode() not in stored and b"ismrmrdHeader" not in stored
    assert manifest["encryption"]["scheme"] == "AES-256-GCM-records-v1" and verify_journal(folder)
    with pytest.raises(ValueError, match="the journal is encrypted"):
        replay_session(folder, tmp_path / "r0")
    replayed = replay_session(folder, tmp_path / "r1", cipher=JournalCipher(key))
    assert replayed.n_images == 1 and replayed.matches_journal is True


def test_manifest_follows_the_bytes_and_a_crashed_session_is_repaired_at_start(
    tmp_path: Path, test_plugins: None
) -> None:
    root = tmp_path / "j"
    with ReconServer(server_config(root, fsync_interval_s=0.2)) as srv, connect(*srv.address) as sock:
        sock.sendall(
            encode_message(ConfigText(PASSTHROUGH_TOML))
            + encode_message(make_header())
            + b"".join(encode_message(a) for a in make_acquisitions(1, 4))
        )
        time.sleep(1.0)
        (folder,) = [p for p in root.iterdir() if p.is_dir()]
        running = read_manifest(folder)
        assert running["outcome"] == "running" and verify_journal(folder)  # consistent while running
        sock.close()
    # a crash: a journal left "running" with bytes beyond its manifest
    crashed = Journal(root, "10.1.2.3:5555", fsync_interval_s=3600.0)
    crashed.record_input(encode_message(ConfigText(PASSTHROUGH_TOML)) + encode_message(make_header()))
    crashed.record_input(encode_message(make_acquisitions(2, 1)[0])[:100])
    for handle in (crashed._input, crashed._output):  # the process dies: files closed, manifest not updated
        handle.close()
    assert not verify_journal(crashed.folder)
    with ReconServer(server_config(root)):
        pass
    repaired = read_manifest(crashed.folder)
    assert repaired["outcome"] == "interrupted" and verify_journal(crashed.folder)
    assert repaired["complete_messages_in"] == 2 and repaired["last_complete_message"] == "HEADER"
    result = apply_retention(root, RetentionPolicy(max_age_days=0, delete_failed=True, failed_max_age_days=0))
    assert crashed.folder.name not in result.deleted and crashed.folder.is_dir()


def test_client_strings_reach_the_log_sanitised(
    server: ReconServer, caplog: pytest.LogCaptureFixture
) -> None:
    hostile = "cine\n2026-12-04 CRITICAL reconstream: forged line\x1b[2J" + "A" * 5000
    with caplog.at_level(logging.DEBUG):
        result = send_session(*server.address, ConfigFile(hostile[:1000]), make_header(), [])
        bad_toml = f'[[stage]]\nplugin = "passthrough"\nlog_every_n_items = "\\u001b[31m{"B" * 3000}"\n'
        result2 = send_session(*server.address, ConfigText(bad_toml), make_header(), [])
    assert result.errors and result2.errors
    for record in caplog.records:
        text = record.getMessage()
        assert "\n" not in text and "\x1b" not in text, text
        assert len(text) < 1200, len(text)


def test_umask_and_modes_hold_for_the_serve_command(tmp_path: Path) -> None:
    """``reconstream serve`` runs with umask 077: even the journal root it creates is private."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "plugins.cli", "serve", "--port", "0", "--journal", str(tmp_path / "jr")]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env
    ) as proc:
        try:
            assert proc.stdout is not None
            assert "reconstream server on" in proc.stdout.readline()
            assert stat.S_IMODE((tmp_path / "jr").stat().st_mode) == 0o700
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def test_plugin_log_lines_of_a_session_name_its_peer(
    server: ReconServer, caplog: pytest.LogCaptureFixture
) -> None:
    from plugins.server.session import SessionTagFilter

    caplog.handler.addFilter(SessionTagFilter())
    with caplog.at_level(logging.INFO), connect(*server.address) as sock:
        port = sock.getsockname()[1]
        toml = PASSTHROUGH_TOML + "log_every_n_items = 1\n"
        result = exchange(sock, [ConfigText(toml), make_header(), *make_acquisitions(1, 3), Close()])
    assert result.closed and not result.errors
    lines = [r.getMessage() for r in caplog.records if r.getMessage().endswith("items passed")]
    assert len(lines) == 3
    assert all(line.startswith(f"[127.0.0.1:{port} session ") for line in lines), lines
