"""Replay of journaled sessions, and the serve / send / replay command lines."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import ismrmrd
import numpy as np
import pytest

from plugins.cli import build_parser
from plugins.cli import main as cli_main
from plugins.io.ismrmrd_files import write_raw
from plugins.io.protocol import Close, ConfigText, encode_message
from plugins.runtime.chain import parse_chain
from plugins.runtime.pipeline import ChainError
from plugins.server.cli import config_from_args
from plugins.server.client import connect, exchange, send_session
from plugins.server.replay import find_session, replay_session
from plugins.server.server import ReconServer
from tests.plugins.server.helpers import (
    EXPLODE_TOML,
    PASSTHROUGH_TOML,
    RECON_TOML,
    make_acquisitions,
    make_header,
    wait_for_session,
)

REPO = Path(__file__).resolve().parents[3]


def _session_folder(server: ReconServer, chain_toml: str, data: bytes) -> Path:
    with connect(*server.address) as sock:
        port = sock.getsockname()[1]
        sock.sendall(encode_message(ConfigText(chain_toml)) + encode_message(make_header()) + data)
        sock.shutdown(socket.SHUT_WR)
        exchange(sock, [])
    folder, _ = wait_for_session(server.config.journal_dir, port)
    return folder


def test_replay_reproduces_the_images_sent_in_the_session(server: ReconServer, tmp_path: Path) -> None:
    acqs = make_acquisitions(30)
    folder = _session_folder(
        server, RECON_TOML, b"".join(encode_message(a) for a in acqs) + encode_message(Close())
    )
    result = replay_session(folder, tmp_path / "replay")
    assert result.n_images == result.n_images_journaled == 1
    assert result.matches_journal is True and not result.truncated
    assert (tmp_path / "replay" / "images.h5").is_file() and (tmp_path / "replay" / "summary.json").is_file()


def test_failed_session_replays_the_failure_and_with_another_chain(
    server: ReconServer, tmp_path: Path
) -> None:
    data = b"".join(encode_message(a) for a in make_acquisitions(31)) + encode_message(Close())
    folder = _session_folder(server, EXPLODE_TOML, data)
    with pytest.raises(ChainError, match="injected failure at item 3"):
        replay_session(folder, tmp_path / "again")
    fixed = parse_chain(RECON_TOML, name="fixed", source="test")
    result = replay_session(folder, tmp_path / "fixed", chain=fixed)
    assert result.n_images == 1 and result.n_images_journaled == 0 and result.matches_journal is None


def test_truncated_recording_replays_up_to_the_last_complete_message(
    server: ReconServer, tmp_path: Path
) -> None:
    acqs = make_acquisitions(32, 5)
    data = b"".join(encode_message(a) for a in acqs[:4]) + encode_message(acqs[4])[:100]
    folder = _session_folder(server, RECON_TOML, data)
    result = replay_session(folder, tmp_path / "r")
    assert result.truncated and result.n_images == 1
    assert find_session(folder.name, folder.parent) == folder
    with pytest.raises(FileNotFoundError, match="no journaled session"):
        find_session("nope", folder.parent)


def test_send_and_replay_command_lines(server: ReconServer, tmp_path: Path) -> None:
    raw = tmp_path / "scan.h5"
    write_raw(raw, make_header(), make_acquisitions(33))
    chain_file = tmp_path / "recon.toml"
    chain_file.write_text(RECON_TOML, encoding="utf-8")
    host, port = server.address
    out = tmp_path / "out"
    assert (
        cli_main(
            [
                "send",
                str(raw),
                "--chain",
                str(chain_file),
                "--host",
                host,
                "--port",
                str(port),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert (out / "images.h5").is_file() and (out / "summary.json").is_file()
    dset = ismrmrd.Dataset(str(out / "images.h5"), "dataset", create_if_needed=False)
    try:
        image = dset.read_image("image_1", 0)
    finally:
        dset.close()
    sessions = sorted(p for p in server.config.journal_dir.iterdir() if p.is_dir())
    replay_out = tmp_path / "replayed"
    assert (
        cli_main(
            [
                "replay",
                sessions[-1].name,
                "--journal",
                str(server.config.journal_dir),
                "--out",
                str(replay_out),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    dset = ismrmrd.Dataset(str(replay_out / "images.h5"), "dataset", create_if_needed=False)
    try:
        np.testing.assert_array_equal(dset.read_image("image_1", 0).data, image.data)
    finally:
        dset.close()


def test_serve_options_build_the_config(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        [
            "serve",
            "--port",
            "0",
            "--journal",
            str(tmp_path),
            "--retention-days",
            "30",
            "--retention-max-gb",
            "2",
            "--max-connections",
            "3",
            "--idle-timeout-s",
            "9",
        ]
    )
    config = config_from_args(args)
    assert config.port == 0 and config.journal_dir == tmp_path and config.max_connections == 3
    assert config.retention.max_age_days == 30 and config.retention.max_total_bytes == 2_000_000_000
    assert not config.retention.delete_failed and config.idle_timeout_s == 9 and config.is_loopback
    with pytest.raises(ValueError, match="TLS needs both --tls-cert and --tls-key"):
        config_from_args(build_parser().parse_args(["serve", "--tls-cert", "x.pem"]))


def test_serve_command_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "plugins.cli",
            "serve",
            "--port",
            "0",
            "--journal",
            str(tmp_path / "j"),
            "--shutdown-grace-s",
            "5",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        port = int(line.split(" on ")[1].split(",")[0].rsplit(":", 1)[1])
        result = send_session(
            "127.0.0.1", port, ConfigText(PASSTHROUGH_TOML), make_header(), make_acquisitions(34, 3)
        )
        assert result.closed and not result.errors and len(result.other) == 3
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
    sessions = [p for p in (tmp_path / "j").iterdir() if p.is_dir()]
    assert len(sessions) == 1
    assert '"outcome": "completed"' in (sessions[0] / "manifest.json").read_text()
