"""One client connection: journal the bytes, run the chain, stream the outputs back, end with CLOSE.

Threads of one session: the session thread (handshake, then sends outputs as the pipeline yields them),
a socket-reader thread (reads, journals, then parses data messages into a bounded queue) and the
pipeline's own stage threads.  On any failure the client gets ``ERROR [plugin]: …`` and CLOSE, the write
side is shut down, and the remaining incoming bytes are still read into the journal for
``drain_timeout_s`` so the client sees the error instead of a reset and nothing that arrived is lost.
"""

from __future__ import annotations

import logging
import queue
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from typing import Any

from plugins.io.protocol import Close, MessageReader, Text, encode_message, exact_reader
from plugins.runtime.pipeline import Pipeline
from plugins.runtime.plugin import ChainContext
from plugins.server.config import ServerConfig
from plugins.server.delivery import OutboxWorkers, queue_session, session_delivery, session_writer
from plugins.server.journal import Journal
from plugins.server.stream import (
    ChainResolver,
    ClientStalled,
    SessionFailure,
    data_messages,
    encode_output,
    failure_from,
    read_handshake,
)
from recon.common.device import resolve_device

log = logging.getLogger("reconstream.server.session")
_CHUNK_BYTES = 1 << 18
_END = object()
_POLL_S = 0.05


def loggable(text: str) -> str:
    """An error text safe for the server log: a header parser's detail may quote header values (patient
    data), so HEADER errors are logged without it (the client and the journal manifest get it in full)."""
    first_line = text.splitlines()[0] if text else ""
    if "HEADER: invalid ISMRMRD XML header" in first_line:
        return first_line.split(" header:", 1)[0] + " header (details in the session manifest)"
    return first_line[:500]


class ReadAborted(Exception):
    """Raised inside a read when the session is being stopped (another thread failed, or shutdown)."""


class JournalingSocketReader:
    """``read(n)`` over a socket that appends every received chunk to the journal before returning it.

    Reads at most ``_CHUNK_BYTES`` per ``recv`` (never allocating what a header announces), returns at most
    ``n`` bytes, raises :class:`ClientStalled` when nothing arrives within the idle timeout, and
    :class:`ReadAborted` within ``_POLL_S`` of ``abort`` being set.
    """

    def __init__(
        self,
        sock: socket.socket,
        journal: Journal,
        idle_timeout_s: float,
        server_stop: threading.Event | None = None,
        io_lock: threading.Lock | None = None,
    ) -> None:
        self.sock = sock
        # An SSL socket must never be read and written by two threads at once (OpenSSL state is shared:
        # "bad record mac"); for TLS the session passes a lock that reads and writes both take.
        self.io_lock = io_lock
        self.journal = journal
        self.idle_timeout_s = idle_timeout_s
        self.abort = threading.Event()
        self.server_stop = server_stop or threading.Event()
        self._view = memoryview(bytearray(_CHUNK_BYTES))
        self._start = 0
        self._end = 0
        sock.settimeout(_POLL_S * 4)

    def _receive(self) -> int:
        """Receive one chunk into the buffer (journaled first); returns its size, 0 at EOF."""
        deadline = time.monotonic() + self.idle_timeout_s
        while True:
            if self.abort.is_set():
                raise ReadAborted("the session is stopping")
            if self.server_stop.is_set():
                raise SessionFailure(
                    "server",
                    "the server is shutting down; the session was interrupted",
                    outcome="interrupted",
                )
            try:
                n_received = self._recv_once()
            except TimeoutError:
                self.journal.sync_if_due()  # a stalled client never leaves data un-synced for long
                if time.monotonic() > deadline:
                    raise ClientStalled(
                        f"the client sent nothing for {self.idle_timeout_s:g} s (idle timeout)"
                    ) from None
                continue
            if n_received:
                self.journal.record_input(self._view[:n_received])
            self._start, self._end = 0, n_received
            return n_received

    def _recv_once(self) -> int:
        """One ``recv_into``; raises ``TimeoutError`` when nothing came within the poll interval.

        With TLS the lock is taken only once bytes are waiting and the receive does not block, so a reader
        that polls never holds up the thread sending images."""
        if self.io_lock is None:
            return self.sock.recv_into(self._view)
        if not (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
            if not select.select([self.sock], [], [], _POLL_S * 4)[0]:
                raise TimeoutError
        with self.io_lock:
            timeout = self.sock.gettimeout()
            self.sock.settimeout(0.0)
            try:
                return self.sock.recv_into(self._view)
            except ssl.SSLWantReadError:
                raise TimeoutError from None  # only TLS records arrived, no data yet
            finally:
                self.sock.settimeout(timeout)

    def read(self, n: int) -> bytes:
        if self._start == self._end and self._receive() == 0:
            return b""
        k = min(n, self._end - self._start)
        out = bytes(self._view[self._start : self._start + k])
        self._start += k
        return out

    def drain(self, timeout_s: float, max_bytes: int) -> int:
        """Keep journaling whatever still arrives until EOF, ``timeout_s`` or ``max_bytes``; returns the count."""
        deadline = time.monotonic() + timeout_s
        n = 0
        while time.monotonic() < deadline and n < max_bytes:
            try:
                chunk = self.sock.recv(_CHUNK_BYTES)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            self.journal.record_input(chunk)
            n += len(chunk)
        return n


class ServerSession:
    """Serves one accepted connection; :meth:`run` returns when the session is over (never raises)."""

    def __init__(
        self,
        sock: socket.socket,
        peer: str,
        config: ServerConfig,
        stop_requested: threading.Event | None = None,
        outbox_workers: OutboxWorkers | None = None,
    ) -> None:
        self.sock = sock
        self.outbox_workers = outbox_workers
        self.peer = peer
        self.config = config
        self.journal = Journal(config.journal_dir, peer, config.fsync_interval_s)
        self.stop_requested = stop_requested or threading.Event()
        self._io_lock = threading.Lock() if isinstance(sock, ssl.SSLSocket) else None
        self._tee = JournalingSocketReader(
            sock, self.journal, config.idle_timeout_s, self.stop_requested, self._io_lock
        )
        self._reader = MessageReader(exact_reader(self._tee.read), config.limits)
        self._send_lock = threading.Lock()
        self.manifest: dict[str, Any] = {}

    @property
    def session_id(self) -> str:
        return self.journal.session_id

    def send(self, obj: Any) -> None:
        """Encode, journal and send one output item (reports and strings as TEXT)."""
        encoded = encode_output(obj) if not isinstance(obj, Close) else ("CLOSE", encode_message(obj))
        if encoded is None:
            self.journal.record_output(b"", "UNSENDABLE")
            return
        kind, data = encoded
        with self._send_lock, self._io_lock or nullcontext():
            self.journal.record_output(data, kind)
            self.sock.sendall(data)

    def run(self) -> dict[str, Any]:
        log.info("session %s: connection from %s", self.session_id, self.peer)
        try:
            self._serve()
        except Exception as exc:
            failure = failure_from(exc)
            if failure.plugin == "server" and failure.outcome == "failed":
                log.exception("session %s: internal error", self.session_id)
            self._fail(failure)
        else:
            self.manifest = self.journal.close("completed")
        finally:
            self._close_socket()
        return self.manifest

    def _count(self, kind: str) -> None:
        self.journal.count_input(kind)

    def _serve(self) -> None:
        resolver = ChainResolver(self.config.chain_dirs, self.config.default_chain)
        handshake = read_handshake(self._reader, resolver, self._count)
        self.journal.record.chain = handshake.chain.name
        self.journal.record.chain_source = handshake.chain.source
        self.journal.write_manifest()
        context = ChainContext(
            chain_name=handshake.chain.name,
            device=resolve_device(self.config.device),
            header=handshake.header,
            out_dir=None,
            extras={"session_id": self.session_id},
        )
        pipeline = Pipeline(handshake.chain, context, self.config.queue_size)
        inbox: queue.Queue[Any] = queue.Queue(maxsize=max(4 * self.config.queue_size, 16))
        abort = threading.Event()
        reader = threading.Thread(
            target=self._read_into,
            args=(inbox, abort, handshake.pending),
            name=f"session-{self.session_id}-reader",
            daemon=True,
        )
        reader.start()
        delivery = session_delivery(self.config.delivery, handshake.chain)
        writer = session_writer(self.journal.folder, handshake.header) if delivery else None
        try:
            for output in pipeline.run(self._inbox_items(inbox, abort, pipeline)):
                self.send(output)
                if writer is not None:
                    writer.write(output)
        finally:
            abort.set()
            self._tee.abort.set()
            reader.join()
        if writer is not None and delivery is not None:
            self._queue_for_delivery(writer, handshake, delivery)
        self.send(Close())

    def _queue_for_delivery(self, writer: Any, handshake: Any, delivery: Any) -> None:
        """The session's outputs as DICOM in the outbox (durably, before CLOSE), then wake the sender."""
        try:
            n = queue_session(writer, handshake.chain, self.session_id, handshake.header, delivery)
        except Exception:  # the client has its images; the journal keeps the raw data for a replay
            log.exception("session %s: DICOM export for delivery failed", self.session_id)
            return
        log.info("session %s: %d DICOM instances queued in %s", self.session_id, n, delivery.outbox)
        if n and self.outbox_workers is not None:
            self.outbox_workers.for_config(delivery).notify()

    def _read_into(self, inbox: queue.Queue[Any], abort: threading.Event, pending: list[Any]) -> None:
        """Socket-reader thread: parsed data items (then _END, or the exception) into ``inbox``."""

        def put(entry: Any) -> bool:
            while not abort.is_set():
                try:
                    inbox.put(entry, timeout=_POLL_S)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            for item in pending:
                put(item)
            for item in data_messages(self._reader, self._count):
                if not put(item):
                    return
            put(_END)
        except ReadAborted:
            return
        except Exception as exc:
            put(exc)

    def _inbox_items(
        self, inbox: queue.Queue[Any], abort: threading.Event, pipeline: Pipeline
    ) -> Iterator[Any]:
        """The pipeline's input: items from the reader thread; stops when the pipeline or server stops."""
        stopped: Callable[[], bool] = lambda: pipeline.stopped or abort.is_set()  # noqa: E731
        while True:
            if self.stop_requested.is_set():
                raise SessionFailure(
                    "server",
                    "the server is shutting down; the session was interrupted",
                    outcome="interrupted",
                )
            try:
                entry = inbox.get(timeout=_POLL_S)
            except queue.Empty:
                if stopped():
                    return
                continue
            if entry is _END:
                return
            if isinstance(entry, BaseException):
                raise entry
            yield entry

    def _fail(self, failure: SessionFailure) -> None:
        text = failure.client_text()
        log.warning("session %s: %s (%s)", self.session_id, loggable(text), failure.outcome)
        try:
            self.send(Text(text))
            self.send(Close())
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            log.info("session %s: could not send the error to the client: %s", self.session_id, exc)
        self._tee.drain(self.config.drain_timeout_s, self.config.limits.max_payload_bytes)
        self.manifest = self.journal.close(failure.outcome, failure.message, failure.plugin)

    def _close_socket(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
