"""``reconstream serve``: run the ISMRMRD-protocol reconstruction server until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

from plugins.executor_cli import add_executor_args, executor_config
from plugins.io.protocol import ProtocolLimits
from plugins.server.config import ServerConfig, TLSSettings
from plugins.server.retention import RetentionPolicy
from plugins.server.server import ReconServer
from plugins.server.session import install_session_log_tags

log = logging.getLogger("reconstream.server.cli")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default loopback only)")
    parser.add_argument("--port", type=int, default=9002, help="TCP port (default 9002, as Gadgetron)")
    parser.add_argument(
        "--journal", default="journal", help="folder of the session journals (default ./journal)"
    )
    parser.add_argument(
        "--retention-days",
        type=float,
        default=None,
        help="delete completed sessions older than N days (default: keep)",
    )
    parser.add_argument(
        "--retention-max-gb",
        type=float,
        default=None,
        help="keep the journal under N GB by deleting the oldest completed sessions",
    )
    parser.add_argument(
        "--retention-delete-failed",
        action="store_true",
        help="let the retention policy delete failed sessions too (default: kept)",
    )
    parser.add_argument("--max-connections", type=int, default=16, help="sessions at once (default 16)")
    parser.add_argument(
        "--idle-timeout-s", type=float, default=60.0, help="disconnect silent clients after N s"
    )
    parser.add_argument(
        "--max-message-mb",
        type=float,
        default=256.0,
        help="largest NDARRAY/IMAGE/list-mode payload accepted, in MB (default 256)",
    )
    parser.add_argument("--max-text-mb", type=float, default=64.0, help="largest header/config/text, in MB")
    parser.add_argument(
        "--chain-dir",
        action="append",
        default=[],
        help="folder of configured chains (NAME.toml) clients may name (repeatable)",
    )
    parser.add_argument("--default-chain", default=None, help="chain for clients that send no CONFIG message")
    parser.add_argument(
        "--shutdown-grace-s",
        type=float,
        default=30.0,
        help="on SIGTERM, let running sessions finish for N s before interrupting them",
    )
    parser.add_argument(
        "--retention-failed-days",
        type=float,
        default=None,
        help="also delete failed, disconnected and rejected sessions older than N days (default: keep; "
        "interrupted sessions are never deleted by retention)",
    )
    parser.add_argument("--tls-cert", default=None, help="PEM certificate: serve TLS")
    parser.add_argument("--tls-key", default=None, help="PEM private key for --tls-cert")
    parser.add_argument("--tls-client-ca", default=None, help="PEM CA bundle: require client certificates")
    parser.add_argument(
        "--tls-allow-subject",
        action="append",
        default=[],
        metavar="SUBJECT",
        help="client certificate subject (CN=NAME,O=... or a bare common name) allowed to connect "
        "(repeatable; needs --tls-client-ca; default: any certificate the CA signed)",
    )
    parser.add_argument(
        "--insecure-plaintext",
        action="store_true",
        help="allow a non-loopback --host without TLS (patient data in clear text; refused otherwise)",
    )
    parser.add_argument(
        "--replay-interrupted",
        action="store_true",
        help="at start, replay sessions a crash interrupted into JOURNAL/<session>/replay",
    )
    parser.add_argument(
        "--journal-key",
        default=None,
        help="key file (32 bytes; see 'reconstream journal keygen'): encrypt the journal at rest",
    )
    parser.add_argument(
        "--handshake-timeout-s",
        type=float,
        default=10.0,
        help="a connection must send its config and header within N s",
    )
    parser.add_argument(
        "--max-sessions-per-peer", type=int, default=12, help="sessions at once from one address"
    )
    parser.add_argument(
        "--journal-min-free-gb",
        type=float,
        default=1.0,
        help="refuse new sessions (with a clear error) while the journal's disk has less free space",
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    parser.add_argument(
        "--deliver",
        action="append",
        metavar="AE@HOST:PORT",
        help="write every session's DICOM and send it to this node (repeatable)",
    )
    parser.add_argument(
        "--outbox", default=None, help="durable DICOM outbox, retried at start (default out/outbox)"
    )
    parser.add_argument(
        "--delivery-retry-s", type=float, default=30.0, help="seconds between retries of queued DICOM"
    )
    add_executor_args(parser)


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """The :class:`ServerConfig` described by the command-line options."""
    tls = None
    given = [
        name
        for name, value in (
            ("--tls-cert", args.tls_cert),
            ("--tls-key", args.tls_key),
            ("--tls-client-ca", args.tls_client_ca),
            ("--tls-allow-subject", args.tls_allow_subject),
        )
        if value
    ]
    if given:  # any TLS option means TLS: a missing piece is an error, never a silent plain-TCP server
        if not (args.tls_cert and args.tls_key):
            raise ValueError(
                f"serve: {', '.join(given)} given, but TLS needs both --tls-cert and --tls-key; "
                "not starting without TLS"
            )
        tls = TLSSettings(
            Path(args.tls_cert),
            Path(args.tls_key),
            Path(args.tls_client_ca) if args.tls_client_ca else None,
            tuple(args.tls_allow_subject),
        )
    max_bytes = None if args.retention_max_gb is None else int(args.retention_max_gb * 1e9)
    limits = ProtocolLimits(
        max_text_bytes=int(args.max_text_mb * 1e6), max_payload_bytes=int(args.max_message_mb * 1e6)
    )
    return ServerConfig(
        host=args.host,
        port=args.port,
        journal_dir=Path(args.journal),
        limits=limits,
        max_connections=args.max_connections,
        idle_timeout_s=args.idle_timeout_s,
        device=args.device,
        default_chain=args.default_chain,
        chain_dirs=tuple(Path(d) for d in args.chain_dir),
        shutdown_grace_s=args.shutdown_grace_s,
        tls=tls,
        retention=RetentionPolicy(
            args.retention_days, max_bytes, args.retention_delete_failed, args.retention_failed_days
        ),
        delivery=_delivery(args),
        executor=executor_config(args),
        allow_plaintext_network=args.insecure_plaintext,
        replay_interrupted=args.replay_interrupted,
        journal_key_file=Path(args.journal_key) if args.journal_key else None,
        handshake_timeout_s=args.handshake_timeout_s,
        max_sessions_per_peer=args.max_sessions_per_peer,
        journal_min_free_bytes=int(args.journal_min_free_gb * 1e9),
    )


def _delivery(args: argparse.Namespace) -> Any:
    """``--deliver``/``--outbox`` as a :class:`DeliveryConfig` (``None`` when neither is given)."""
    if not (args.deliver or args.outbox):
        return None
    from plugins.io.dicom.delivery_config import DeliveryConfig

    config = DeliveryConfig(retry_interval_s=args.delivery_retry_s)
    return config.with_destinations(args.deliver or (), args.outbox)


def limit_malloc_arenas(n_arenas: int = 4) -> None:
    """Cap glibc's malloc arenas (``M_ARENA_MAX``): a server that starts threads per session otherwise grows
    one arena per thread that ever allocated, and its memory with them (no effect off glibc)."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_arena_max = -8
    libc.mallopt(m_arena_max, n_arenas)


def main(args: argparse.Namespace) -> int:
    os.umask(0o077)  # everything the server writes (journal, outbox, runs) is readable by its user only
    limit_malloc_arenas()
    install_session_log_tags()  # plugin log lines of a session name its peer and session id
    config = config_from_args(args)
    try:
        server = ReconServer(config).start()
    except OSError as exc:
        raise ValueError(
            f"serve: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}"
        ) from None
    host, port = server.address
    print(f"reconstream server on {host}:{port}, journal in {args.journal} (SIGTERM or Ctrl-C to stop)")

    def stop(signum: int, _frame: Any) -> None:
        log.warning("signal %d: shutting down", signum)
        threading.Thread(target=server.shutdown, name="reconstream-shutdown", daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.shutdown()
    return 0
