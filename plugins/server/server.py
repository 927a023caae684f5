"""The TCP server: accepts ISMRMRD-protocol clients, one isolated session (thread) per connection.

Admission (:mod:`plugins.server.admission`): an accepted connection is *pending* until its handshake (TLS,
config, header) is done; pending connections are bounded in all and per address, the oldest dropped when a
new one arrives over a limit, and each has ``handshake_timeout_s``.  Session slots are taken only by
connections that sent a valid CONFIG.  The accept loop itself never blocks on a client and starts no
thread beyond those bounds.

TLS fails closed: a plaintext client on a TLS port gets one plaintext ``ERROR`` line; a client certificate
whose subject is not on the allow-list gets an ``ERROR`` over TLS; every refusal is logged with the peer.

``ReconServer(config).start()`` binds and accepts in a background thread; ``serve_forever()`` blocks;
``shutdown()`` stops accepting, lets running sessions finish for ``shutdown_grace_s`` and then interrupts
the rest (their clients get ``ERROR [server]: …`` and CLOSE; their journals are kept, outcome
``interrupted``).  A plugin busy in a long computation is not killed: if its session has not stopped
``max(5 s, grace)`` after the interrupt, shutdown returns anyway and that journal stays ``running``.  Journals are pruned by the retention policy at start and every
``retention_interval_s``.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from plugins.io.protocol import Close, Text, encode_message
from plugins.server.admission import SessionRefused, SessionSlots
from plugins.server.config import ServerConfig
from plugins.server.delivery import OutboxWorkers
from plugins.server.journal import private_folder, recover_journals, update_manifest, utc_now
from plugins.server.journal_crypto import JournalCipher
from plugins.server.retention import apply_retention
from plugins.server.session import ServerSession

log = logging.getLogger("reconstream.server")


_TLS_HANDSHAKE_RECORD = 0x16


def make_tls_context(config: ServerConfig) -> ssl.SSLContext | None:
    """A server-side TLS context (client certificates required when a client CA is given)."""
    if config.tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(config.tls.cert_file), str(config.tls.key_file))
        if config.tls.client_ca_file is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(str(config.tls.client_ca_file))
    except ssl.SSLError as exc:
        raise ValueError(
            f"TLS: the certificate, key or client CA cannot be used: {exc.reason or exc}"
        ) from None
    return context


def certificate_subject(cert: dict[str, Any] | None) -> str:
    """A peer certificate's subject as an RFC 4514-like string (``CN=scanner,O=Radiology``)."""
    if not cert:
        return ""
    parts = []
    names = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C"}
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            parts.append(f"{names.get(key, key)}={value}")
    return ",".join(reversed(parts))


def subject_allowed(cert: dict[str, Any] | None, allowed: tuple[str, ...]) -> bool:
    """True when ``allowed`` is empty, or names the certificate's full subject or its common name."""
    if not allowed:
        return True
    subject = certificate_subject(cert)
    common = [v for rdn in (cert or {}).get("subject", ()) for k, v in rdn if k == "commonName"]
    wanted = {a.replace(", ", ",").strip() for a in allowed}
    return subject in wanted or any(c in wanted or f"CN={c}" in wanted for c in common)


@dataclass
class _Pending:
    """An accepted connection whose handshake is not done yet."""

    sock: socket.socket
    peer: str
    host: str
    accepted_at: float
    dropped: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class ReconServer:
    """A multi-connection reconstruction server (see the module docstring)."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._tls = make_tls_context(config)
        self._cipher = JournalCipher(config.journal_key_file) if config.journal_key_file else None
        self._listener: socket.socket | None = None
        self._accepting = threading.Event()
        self._interrupt = threading.Event()
        self._stopped = threading.Event()
        self.slots = SessionSlots(
            config.max_connections,
            config.max_sessions_per_peer,
            config.journal_dir,
            config.journal_min_free_bytes,
        )
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self._sessions: dict[threading.Thread, ServerSession | None] = {}
        self._lock = threading.Lock()
        self._accept_thread: threading.Thread | None = None
        self._replayer: threading.Thread | None = None
        self.manifests: deque[dict[str, Any]] = deque(maxlen=256)  # the most recent sessions' manifests
        self.outbox_workers = OutboxWorkers()

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually bound (the port is the ephemeral one when configured as 0)."""
        if self._listener is None:
            raise RuntimeError("the server is not started")
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> ReconServer:
        """Bind, apply the retention policy once and start accepting in a background thread."""
        if not self.config.is_loopback:
            log.warning(
                "binding %s: the server is reachable from the network%s",
                self.config.host,
                "" if self._tls else " WITHOUT TLS (forced with --insecure-plaintext)",
            )
        private_folder(self.config.journal_dir)
        interrupted = recover_journals(self.config.journal_dir, self._cipher)
        if interrupted and self.config.replay_interrupted:
            self._replayer = threading.Thread(
                target=self._replay_interrupted, args=(interrupted,), name="reconstream-recovery", daemon=True
            )
            self._replayer.start()
        apply_retention(self.config.journal_dir, self.config.retention)
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.config.host, self.config.port))
        listener.listen(max(8, self.config.max_connections))
        listener.settimeout(0.2)
        self._listener = listener
        self._accepting.set()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="reconstream-accept", daemon=True
        )
        self._accept_thread.start()
        if self.config.executor is not None:  # the warm workers start with the server, not with a session
            from plugins.runtime.executor import shared_executor

            shared_executor(self.config.executor)
        if self.config.delivery is not None:  # sends what an earlier server process left in the outbox
            self.outbox_workers.for_config(self.config.delivery)
        log.info("serving on %s:%d, journal in %s", *self.address, self.config.journal_dir)
        return self

    def _replay_interrupted(self, session_ids: list[str]) -> None:
        """Replay sessions a crash interrupted into ``<session>/replay``; the manifest records the result."""
        from plugins.server.replay import replay_session

        for session_id in session_ids:
            folder = self.config.journal_dir / session_id
            try:
                result = replay_session(
                    folder,
                    folder / "replay",
                    device=self.config.device,
                    chain_dirs=self.config.chain_dirs,
                    cipher=self._cipher,
                )
            except Exception as exc:  # one bad session must not stop the others (it stays interrupted)
                log.error("recovery: replay of session %s failed: %s", session_id, exc)
                update_manifest(
                    folder, replay={"utc": utc_now(), "outcome": "failed", "error": str(exc)[:500]}
                )
                continue
            units = [f"{u['kind']} {u['index']}" for u in result.summary.incomplete]
            update_manifest(
                folder,
                replay={
                    "utc": utc_now(),
                    "outcome": "partial" if result.summary.interrupted else "completed",
                    "folder": "replay",
                    "n_images": result.n_images,
                    "incomplete_units": result.summary.incomplete,
                },
            )
            log.warning(
                "recovery: session %s replayed into %s: %d images%s",
                session_id,
                folder / "replay",
                result.n_images,
                f"; not reconstructed: {', '.join(units)}" if units else "",
            )

    def serve_forever(self) -> None:
        """Block until :meth:`shutdown` has finished."""
        self._stopped.wait()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        next_retention = time.monotonic() + self.config.retention_interval_s
        while self._accepting.is_set():
            if time.monotonic() > next_retention:
                next_retention = time.monotonic() + self.config.retention_interval_s
                self._safe_retention()
            try:
                sock, address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._accepting.is_set():
                    log.exception("accept failed")
                continue
            peer = f"{address[0]}:{address[1]}"
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # images go out as soon as they exist
            self._dispatch(sock, peer)

    def _safe_retention(self) -> None:
        try:
            apply_retention(self.config.journal_dir, self.config.retention)
        except OSError:
            log.exception("retention pass failed; journals kept")

    def _dispatch(self, sock: socket.socket, peer: str) -> None:
        """Register a pending connection (dropping the oldest over a limit) and start its thread."""
        host = peer.rsplit(":", 1)[0]
        conn = _Pending(sock, peer, host, time.monotonic())
        with self._lock:
            same_peer = [c for c in self._pending.values() if c.host == host]
            if len(same_peer) >= self.config.max_pending_per_peer:
                self._drop_locked(same_peer[0], "too many pending connections from this address")
            if len(self._pending) >= self.config.max_pending:
                self._drop_locked(next(iter(self._pending.values())), "too many pending connections")
            self._pending[id(conn)] = conn
            thread = threading.Thread(
                target=self._serve, args=(conn,), name=f"reconstream-session-{peer}", daemon=True
            )
            self._sessions[thread] = None
        thread.start()

    def _drop_locked(self, conn: _Pending, why: str) -> None:
        """Close a pending connection (its thread then ends); called with ``self._lock`` held."""
        self._pending.pop(id(conn), None)
        with conn.lock:
            conn.dropped = True
            log.warning("[%s] pending connection dropped: %s", conn.peer, why)
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _admit(self, conn: _Pending) -> None:
        """The session's chain is known: leave the pending pool and take a session slot."""
        with self._lock:
            if conn.dropped or self._pending.pop(id(conn), None) is None:
                raise SessionRefused("the connection was dropped while pending")
        self.slots.acquire(conn.host)

    def _serve(self, conn: _Pending) -> None:
        try:
            wrapped = self._wrap_tls(conn)
            if wrapped is None:
                return
            session = ServerSession(
                wrapped,
                conn.peer,
                self.config,
                self._interrupt,
                self.outbox_workers,
                admit=lambda: self._admit(conn),
                release=lambda: self.slots.release(conn.host),
                cipher=self._cipher,
                accepted_at=conn.accepted_at,
            )
            with self._lock:
                self._sessions[threading.current_thread()] = session
            manifest = session.run()
            with self._lock:
                self.manifests.append(manifest)
        except Exception:
            log.exception("[%s] session could not be served", conn.peer)
        finally:
            conn.sock.close()
            with self._lock:
                self._pending.pop(id(conn), None)
                self._sessions.pop(threading.current_thread(), None)

    def _wrap_tls(self, conn: _Pending) -> socket.socket | None:
        """The connection, TLS-wrapped and its client checked when TLS is on; None when refused."""
        sock = conn.sock
        if self._tls is None:
            return sock
        remaining = conn.accepted_at + self.config.handshake_timeout_s - time.monotonic()
        try:
            sock.settimeout(max(0.05, remaining))
            first = sock.recv(1, socket.MSG_PEEK)
            if first and first[0] != _TLS_HANDSHAKE_RECORD:
                log.warning("[%s] plaintext client on the TLS port: refused", conn.peer)
                text = "ERROR [server]: this server speaks TLS only; connect with TLS (e.g. send --tls-ca CA.pem)"
                sock.sendall(encode_message(Text(text)) + encode_message(Close()))
                sock.shutdown(socket.SHUT_WR)
                return None
            if not first:
                return None
            wrapped = self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            with conn.lock:  # a drop from now on shuts the TLS socket down (the plain one is detached)
                conn.sock = wrapped
            wrapped.settimeout(
                max(0.05, conn.accepted_at + self.config.handshake_timeout_s - time.monotonic())
            )
            wrapped.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            log.warning("[%s] TLS handshake failed: %s", conn.peer, reason)
            return None
        assert self.config.tls is not None
        cert = wrapped.getpeercert()
        if not subject_allowed(cert, self.config.tls.allowed_subjects):
            subject = certificate_subject(cert)
            log.warning("[%s] client certificate %r is not on the allow-list: refused", conn.peer, subject)
            try:
                text = f"ERROR [server]: client certificate {subject!r} is not allowed on this server"
                wrapped.sendall(encode_message(Text(text)) + encode_message(Close()))
            except OSError:
                pass
            wrapped.close()
            return None
        return wrapped

    @property
    def n_active_sessions(self) -> int:
        """Connections being served (pending handshakes included)."""
        with self._lock:
            return len(self._sessions)

    @property
    def n_pending(self) -> int:
        """Connections still in their handshake."""
        with self._lock:
            return len(self._pending)

    def shutdown(self, grace_s: float | None = None) -> None:
        """Stop accepting; wait up to ``grace_s`` for sessions, then interrupt and join the rest."""
        grace_s = self.config.shutdown_grace_s if grace_s is None else grace_s
        self._accepting.clear()
        if self._accept_thread is not None:
            self._accept_thread.join()
        if self._listener is not None:
            self._listener.close()
        deadline = time.monotonic() + grace_s
        for thread in self._threads():
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._threads():
            log.warning("shutdown: interrupting %d running sessions", len(self._threads()))
            self._interrupt.set()
            deadline = time.monotonic() + max(5.0, grace_s)
            for thread in self._threads():
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._threads():  # a plugin still computing: its journal stays marked "running" (kept, replayable)
            log.error(
                "shutdown: %d sessions did not stop; their journals are kept as 'running'",
                len(self._threads()),
            )
        self.outbox_workers.stop()
        if self.config.executor is not None:
            from plugins.runtime.executor import close_shared_executors

            close_shared_executors()  # the warm Ray workers (a private Ray instance shuts down with them)
        self._stopped.set()
        log.info("server stopped")

    def _threads(self) -> list[threading.Thread]:
        with self._lock:
            return [t for t in self._sessions if t.is_alive()]

    def __enter__(self) -> ReconServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
