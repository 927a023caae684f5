"""The TCP server: accepts ISMRMRD-protocol clients, one isolated session (thread) per connection.

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
from collections import deque
from typing import Any

from plugins.io.protocol import Close, Text, encode_message
from plugins.server.config import ServerConfig
from plugins.server.delivery import OutboxWorkers
from plugins.server.journal import Journal
from plugins.server.retention import apply_retention
from plugins.server.session import JournalingSocketReader, ServerSession

log = logging.getLogger("reconstream.server")


def make_tls_context(config: ServerConfig) -> ssl.SSLContext | None:
    """A server-side TLS context (client certificates required when a client CA is given)."""
    if config.tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(config.tls.cert_file), str(config.tls.key_file))
    if config.tls.client_ca_file is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(str(config.tls.client_ca_file))
    return context


class ReconServer:
    """A multi-connection reconstruction server (see the module docstring)."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._tls = make_tls_context(config)
        self._listener: socket.socket | None = None
        self._accepting = threading.Event()
        self._interrupt = threading.Event()
        self._stopped = threading.Event()
        self._slots = threading.BoundedSemaphore(config.max_connections)
        self._sessions: dict[threading.Thread, ServerSession | None] = {}
        self._lock = threading.Lock()
        self._accept_thread: threading.Thread | None = None
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
                "" if self._tls else " WITHOUT TLS",
            )
        self.config.journal_dir.mkdir(parents=True, exist_ok=True)
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
        if self.config.delivery is not None:  # sends what an earlier server process left in the outbox
            self.outbox_workers.for_config(self.config.delivery)
        log.info("serving on %s:%d, journal in %s", *self.address, self.config.journal_dir)
        return self

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
        if not self._slots.acquire(blocking=False):
            target, args = self._reject, (sock, peer)
        else:
            target, args = self._serve, (sock, peer)
        thread = threading.Thread(target=target, args=args, name=f"reconstream-session-{peer}", daemon=True)
        with self._lock:
            self._sessions[thread] = None
        thread.start()

    def _serve(self, sock: socket.socket, peer: str) -> None:
        try:
            wrapped = self._wrap_tls(sock)
            if wrapped is None:
                return
            try:
                session = ServerSession(wrapped, peer, self.config, self._interrupt, self.outbox_workers)
            except Exception:
                wrapped.close()
                raise
            with self._lock:
                self._sessions[threading.current_thread()] = session
            manifest = session.run()
            with self._lock:
                self.manifests.append(manifest)
        except Exception:
            log.exception("session from %s: could not be served", peer)
        finally:
            self._slots.release()
            with self._lock:
                self._sessions.pop(threading.current_thread(), None)

    def _wrap_tls(self, sock: socket.socket) -> socket.socket | None:
        if self._tls is None:
            return sock
        sock.settimeout(self.config.idle_timeout_s)
        try:
            return self._tls.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.warning("TLS handshake failed: %s", exc)
            sock.close()
            return None

    def _reject(self, sock: socket.socket, peer: str) -> None:
        """Over the connection limit: journal what arrives, tell the client, close."""
        try:
            wrapped = self._wrap_tls(sock)
            if wrapped is None:
                return
            journal = Journal(self.config.journal_dir, peer, self.config.fsync_interval_s)
            text = (
                f"ERROR [server]: too many connections (limit {self.config.max_connections}); try again later"
            )
            log.warning("connection from %s rejected: %s", peer, text)
            for obj, kind in ((Text(text), "TEXT"), (Close(), "CLOSE")):
                data = encode_message(obj)
                journal.record_output(data, kind)
                wrapped.sendall(data)
            wrapped.shutdown(socket.SHUT_WR)
            tee = JournalingSocketReader(wrapped, journal, self.config.idle_timeout_s)
            tee.drain(self.config.drain_timeout_s, self.config.limits.max_payload_bytes)
            journal.close("rejected", text, "server")
        except OSError as exc:
            log.info("rejected connection from %s: %s", peer, exc)
        finally:
            sock.close()
            with self._lock:
                self._sessions.pop(threading.current_thread(), None)

    @property
    def n_active_sessions(self) -> int:
        with self._lock:
            return len(self._sessions)

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
        self._stopped.set()
        log.info("server stopped")

    def _threads(self) -> list[threading.Thread]:
        with self._lock:
            return [t for t in self._sessions if t.is_alive()]

    def __enter__(self) -> ReconServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
