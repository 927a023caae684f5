"""One client connection: journal the bytes, run the chain, stream the outputs back, end with CLOSE.

Threads of one session: the session thread (handshake, then sends outputs as the pipeline yields them),
a socket-reader thread (reads, journals, then parses data messages into a bounded queue) and the
pipeline's own stage threads.  On any failure the client gets ``ERROR [plugin]: …`` and CLOSE, the write
side is shut down, and the remaining incoming bytes are still read into the journal for
``drain_timeout_s`` so the client sees the error instead of a reset and nothing that arrived is lost.

Admission (:mod:`plugins.server.admission`): until the chain is known the received bytes stay in a small
bounded buffer; a session slot is then taken and the journal opened (its first bytes are the buffer), so a
connection that never sends a valid CONFIG leaves no folder.  Before the header only config, header and
text messages are read; after it, message kinds the chain does not handle are refused before their payload
is read, and the session's bytes are bounded by its quota.
"""

from __future__ import annotations

import logging
import queue
import select
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from typing import Any, Protocol

from plugins.io.mrd2_protocol import AnyProtocolReader, Mrd2Encoder
from plugins.io.protocol import Buffer, Close, MessageId, Text, encode_message
from plugins.runtime.chain import ChainSpec
from plugins.runtime.executor import shared_executor
from plugins.runtime.items import Report
from plugins.runtime.pipeline import Pipeline
from plugins.runtime.plugin import ChainContext
from plugins.server.admission import SessionRefused, data_limits, journal_disk, session_quota_bytes
from plugins.server.config import ServerConfig
from plugins.server.delivery import OutboxWorkers, queue_session, session_delivery, session_writer
from plugins.server.journal import Journal
from plugins.server.journal_crypto import JournalCipher
from plugins.server.stream import (
    HANDSHAKE_MESSAGES,
    ChainResolver,
    ClientStalled,
    SessionFailure,
    accepted_kinds,
    chain_accepts,
    data_messages,
    encode_output_parts,
    failure_from,
    message_kind,
    read_handshake,
    report_text,
    sanitize,
    send_parts,
)
from recon.common.device import resolve_device

log = logging.getLogger("reconstream.server.session")
_CHUNK_BYTES = 1 << 18
#: Outputs already waiting are sent together, at most this many (one journal write, one sendmsg).
_MAX_SEND_BATCH = 64
_END = object()
_POLL_S = 0.05
#: After a refused message or a server-side stop, at most this much of what still arrives is journaled.
_REFUSED_TAIL_BYTES = 1 << 20


def loggable(text: str) -> str:
    """An error text safe for the server log: its first line, control characters escaped, at most 300
    characters; a header parser's detail may quote header values (patient data), so HEADER errors are
    logged without it (the client and the journal manifest get it)."""
    first_line = text.splitlines()[0] if text else ""
    if "HEADER: invalid ISMRMRD XML header" in first_line:
        first_line = first_line.split(" header:", 1)[0] + " header (details in the session manifest)"
    return sanitize(first_line, 300)


class InputSink(Protocol):
    """Where received bytes go before they are parsed: the journal, or the pre-admission buffer."""

    def record_input(self, data: bytes | memoryview) -> None: ...

    def sync_if_due(self) -> None: ...


class HandshakeBuffer:
    """Bytes received before the session is admitted (at most ``max_bytes``; more is a failure)."""

    def __init__(self, max_bytes: int) -> None:
        self.data = bytearray()
        self.max_bytes = max_bytes

    def record_input(self, data: bytes | memoryview) -> None:
        if len(self.data) + len(data) > self.max_bytes:
            raise SessionFailure(
                "protocol", f"more than {self.max_bytes} bytes before a valid CONFIG message"
            )
        self.data += data

    def sync_if_due(self) -> None:
        return None


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
        journal: InputSink,
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
        self.deadline: float | None = None  # time.monotonic() by which the current phase must end
        self.deadline_text = ""
        self.quota_bytes: int | None = None
        self.n_bytes = 0
        self.disk_check: Callable[[], None] | None = None
        self._next_disk_check = 0.0
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
            now = time.monotonic()
            if self.deadline is not None and now > self.deadline:
                raise ClientStalled(self.deadline_text)
            if self.disk_check is not None and now > self._next_disk_check:
                self._next_disk_check = now + 1.0
                self.disk_check()
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
                self.n_bytes += n_received
                self._check_quota()
            self._start, self._end = 0, n_received
            return n_received

    def set_quota(self, quota_bytes: int) -> None:
        """Bound the session's bytes from now on, counting what already arrived (a fast client may have
        sent everything before the header was parsed)."""
        self.quota_bytes = quota_bytes
        self._check_quota()

    def _check_quota(self) -> None:
        if self.quota_bytes is not None and self.n_bytes > self.quota_bytes:
            raise SessionFailure(
                "server",
                f"the session sent more than its quota of {self.quota_bytes} bytes (derived from "
                "its header's encoding); what arrived is journaled",
            )

    def attach(self, journal: Journal, buffered: bytes) -> None:
        """Switch from the pre-admission buffer to ``journal``, writing the buffered bytes first."""
        journal.record_input(buffered)
        self.journal = journal

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

    def readinto(self, view: memoryview) -> int:
        """Fill the start of ``view`` with 1…len(view) buffered bytes (0 at EOF): a message's samples go from
        the receive buffer straight into their array.  Receiving stays in whole chunks (one ``recv`` and one
        journal write per chunk of several messages: a system call costs more here than a copy)."""
        if self._start == self._end and self._receive() == 0:
            return 0
        k = min(len(view), self._end - self._start)
        view[:k] = self._view[self._start : self._start + k]
        self._start += k
        return k

    def drain(self, timeout_s: float, max_journal_bytes: int) -> int:
        """Read whatever still arrives until EOF or ``timeout_s`` (so the client reads the error rather than
        a reset): the first ``max_journal_bytes`` go into the journal (none before admission), the rest is
        discarded.  Returns the number of bytes journaled."""
        deadline = time.monotonic() + timeout_s
        n = 0
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(_CHUNK_BYTES)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            if isinstance(self.journal, Journal) and n < max_journal_bytes:
                try:
                    self.journal.record_input(chunk[: max_journal_bytes - n])
                except OSError:
                    break
                n += min(len(chunk), max_journal_bytes - n)
        return n


def waiting_batches(
    items: Iterator[Any], n_waiting: Callable[[], int], max_items: int
) -> Iterator[list[Any]]:
    """``items`` in lists: an item with nothing waiting after it (``n_waiting() == 0``) ends its list, so no
    item waits for a later one; a backlog goes out in lists of up to ``max_items``.  When ``items`` fails,
    the items before the failure still come out, then the error."""
    batch: list[Any] = []
    try:
        for item in items:
            batch.append(item)
            if n_waiting() == 0 or len(batch) >= max_items:
                yield batch
                batch = []
    except Exception:
        if batch:
            yield batch
        raise
    if batch:
        yield batch


class SessionLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The session logger: every line starts with the peer address and, once there is one, the session id."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = self.extra or {}
        session = f" session {extra['session']}" if extra.get("session") else ""
        return f"[{extra.get('peer')}{session}] {msg}", kwargs


Admit = Callable[[], None]


class SessionTagFilter(logging.Filter):
    """A handler filter: a log line from a session's pipeline or reader thread (named ``… [TAG]``) that
    does not already start with ``[`` gets the session's tag (peer address and session id) in front."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.threadName or ""
        if name.endswith("]") and " [" in name and not str(record.msg).startswith("["):
            record.msg = f"[{name.rsplit(' [', 1)[1]} {record.msg}"
        return True


def install_session_log_tags() -> None:
    """Add :class:`SessionTagFilter` to every handler of the root logger (``serve`` calls this)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, SessionTagFilter) for f in handler.filters):
            handler.addFilter(SessionTagFilter())


class ServerSession:
    """Serves one accepted connection; :meth:`run` returns when the session is over (never raises).

    ``admit`` (from the server) takes a session slot once the chain is known and raises
    :class:`~plugins.server.admission.SessionRefused` when there is none; ``release`` gives it back.
    """

    def __init__(
        self,
        sock: socket.socket,
        peer: str,
        config: ServerConfig,
        stop_requested: threading.Event | None = None,
        outbox_workers: OutboxWorkers | None = None,
        admit: Admit | None = None,
        release: Callable[[], None] | None = None,
        cipher: JournalCipher | None = None,
        accepted_at: float | None = None,
    ) -> None:
        self.sock = sock
        self.outbox_workers = outbox_workers
        self.peer = peer
        self.config = config
        self.journal: Journal | None = None
        self.cipher = cipher
        self.log = SessionLog(log, {"peer": peer, "session": None})
        self.stop_requested = stop_requested or threading.Event()
        self._admit, self._release = admit, release
        self._admitted = False
        self._counts: Counter[str] = Counter()
        self._buffer = HandshakeBuffer(config.max_handshake_bytes + 2 * _CHUNK_BYTES)
        self._io_lock = threading.Lock() if isinstance(sock, ssl.SSLSocket) else None
        self._tee = JournalingSocketReader(
            sock, self._buffer, config.idle_timeout_s, self.stop_requested, self._io_lock
        )
        self._started = accepted_at if accepted_at is not None else time.monotonic()
        self._tee.deadline = self._started + config.handshake_timeout_s
        self._tee.deadline_text = (
            f"the client did not send its config and header within {config.handshake_timeout_s:g} s "
            "(handshake timeout)"
        )
        self._reader = AnyProtocolReader(
            self._tee.read,
            config.handshake_limits,
            gate=self._handshake_gate,
            readinto_some=self._tee.readinto,
        )
        self._header: Any = None
        self._mrd2_encoder: Mrd2Encoder | None = None
        self._chain: ChainSpec | None = None
        self._send_lock = threading.Lock()
        self.manifest: dict[str, Any] = {}

    @property
    def session_id(self) -> str | None:
        return None if self.journal is None else self.journal.session_id

    @property
    def log_tag(self) -> str:
        """``PEER session ID``: what every log line of this session starts with (in brackets)."""
        return f"{self.peer} session {self.session_id}" if self.session_id else self.peer

    def send(self, *objs: Any) -> None:
        """Encode, journal and send output items (reports and strings as TEXT), in order: several items
        take one journal write and one ``sendmsg`` (system calls cost more here than the bytes)."""
        kinds: list[str] = []
        parts: list[Buffer] = []
        for obj in objs:
            encoded = self._encode(obj)
            kinds.append("UNSENDABLE" if encoded is None else encoded[0])
            parts.extend(() if encoded is None else encoded[1])
        with self._send_lock, self._io_lock or nullcontext():
            if self.journal is not None:
                self.journal.record_outputs(parts, kinds)
            if parts:
                send_parts(self.sock, parts)

    def _encode(self, obj: Any) -> tuple[str, list[Buffer]] | None:
        """(kind, message in parts) of one output in the client's protocol (ISMRMRD v1, or MRD v2 when it
        spoke that); an acquisition's samples are not copied (:func:`plugins.io.protocol.encode_parts`)."""
        if self._reader.protocol != "mrd2":
            return (
                encode_output_parts(obj) if not isinstance(obj, Close) else ("CLOSE", [encode_message(obj)])
            )
        if self._mrd2_encoder is None:
            self._mrd2_encoder = Mrd2Encoder(self._header)
        if isinstance(obj, Report):
            obj = report_text(obj)
        elif isinstance(obj, str):
            obj = Text(obj)
        encoded = self._mrd2_encoder.encode(obj)
        return None if encoded is None else (encoded[0], [encoded[1]])

    def run(self) -> dict[str, Any]:
        self.log.info("connection")
        try:
            self._serve()
        except SessionRefused as exc:
            self._refuse(str(exc))
        except Exception as exc:
            failure = failure_from(exc)
            if (
                failure.plugin == "server"
                and failure.outcome == "failed"
                and "internal error" in failure.message
            ):
                self.log.exception("internal error")
            self._fail(failure)
        else:
            assert self.journal is not None
            self.manifest = self.journal.close("completed")
        finally:
            if self._admitted and self._release is not None:
                self._release()
            self._close_socket()
        return self.manifest

    def _count(self, kind: str) -> None:
        if self.journal is None:
            self._counts[kind] += 1
        else:
            self.journal.count_input(kind)

    def _handshake_gate(self, msg_id: int) -> None:
        """Before the header: config, header and text only (a PET-only session's list mode after CONFIG)."""
        if msg_id not in HANDSHAKE_MESSAGES or (msg_id == MessageId.PET_LISTMODE and self._chain is None):
            raise SessionFailure(
                "protocol",
                f"{message_kind(msg_id)} arrived before the HEADER: send config, then the ISMRMRD header, then "
                "data, then CLOSE (the message was refused before its payload was read)",
            )

    def _data_gate(self, msg_id: int) -> None:
        """After the header: only the kinds of data the chain handles (and physiology, text, CLOSE)."""
        assert self._chain is not None
        if msg_id in (MessageId.CONFIG_FILE, MessageId.CONFIG_TEXT, MessageId.HEADER):
            raise SessionFailure("protocol", f"{message_kind(msg_id)} after the data started")
        if not chain_accepts(self._chain, msg_id):
            raise SessionFailure(
                "protocol",
                f"{message_kind(msg_id)}: chain {self._chain.name!r} does not handle these (it handles "
                f"{', '.join(accepted_kinds(self._chain)) or 'nothing from the network'}); the message was "
                "refused before its payload was read",
            )

    def _on_chain(self, chain: ChainSpec) -> None:
        """The chain is known: take a session slot, open the journal with what arrived so far."""
        if self._admit is not None:
            self._admit()
            self._admitted = True
        self._chain = chain
        self.journal = Journal(
            self.config.journal_dir, self.peer, self.config.fsync_interval_s, cipher=self.cipher
        )
        self.log.extra = {"peer": self.peer, "session": self.journal.session_id}
        self.journal.messages_in.update(self._counts)
        self.journal.record.chain = chain.name
        self.journal.record.chain_source = chain.source
        self._tee.attach(self.journal, bytes(self._buffer.data))
        self._buffer.data.clear()
        self._tee.disk_check = self._check_disk
        self.log.info("session started: chain %s", sanitize(chain.name, 80, quote=True))

    def _check_disk(self) -> None:
        disk = journal_disk(self.config.journal_dir, self.config.journal_min_free_bytes // 2)
        if disk.low:
            self.log.error(
                "ALERT journal disk nearly full (%.0f MB free): session stopped", disk.free_bytes / 1e6
            )
            raise SessionFailure(
                "server",
                f"the server's journal disk is nearly full ({disk.free_bytes / 1e6:.0f} MB free); the session "
                "was stopped, what arrived is journaled: send the rest again later",
            )

    def _serve(self) -> None:
        resolver = ChainResolver(self.config.chain_dirs, self.config.default_chain)
        handshake = read_handshake(self._reader, resolver, self._count, on_chain=self._on_chain)
        assert self.journal is not None
        self._tee.deadline = self._started + self.config.max_session_s
        self._tee.deadline_text = (
            f"the session lasted longer than {self.config.max_session_s:g} s (max_session_s)"
        )
        self._header = handshake.header
        if handshake.header is not None:
            self._reader.limits = data_limits(handshake.header, self.config.limits)
        self._tee.set_quota(
            session_quota_bytes(
                handshake.header,
                self.config.session_quota_factor,
                self.config.min_session_quota_bytes,
                self.config.max_session_bytes,
            )
        )
        self._reader.gate = self._data_gate
        self.journal.write_manifest()
        context = ChainContext(
            chain_name=handshake.chain.name,
            device=resolve_device(self.config.device),
            header=handshake.header,
            out_dir=None,
            extras={"session_id": self.journal.session_id, "log_tag": self.log_tag},
            executor=shared_executor(self.config.executor),
        )
        pipeline = Pipeline(handshake.chain, context, self.config.queue_size)
        inbox: queue.Queue[Any] = queue.Queue(maxsize=max(4 * self.config.queue_size, 16))
        abort = threading.Event()
        reader = threading.Thread(
            target=self._read_into,
            args=(inbox, abort, handshake.pending),
            name=f"reconstream-reader [{self.log_tag}]",
            daemon=True,
        )
        reader.start()
        delivery = session_delivery(self.config.delivery, handshake.chain)
        writer = session_writer(self.journal.folder, handshake.header) if delivery else None
        outputs = pipeline.run(self._inbox_items(inbox, abort, pipeline))
        try:
            for batch in waiting_batches(outputs, pipeline.n_outputs_waiting, _MAX_SEND_BATCH):
                self.send(*batch)
                if writer is not None:
                    for output in batch:
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
            n = queue_session(writer, handshake.chain, str(self.session_id), handshake.header, delivery)
        except Exception:  # the client has its images; the journal keeps the raw data for a replay
            self.log.exception("DICOM export for delivery failed")
            return
        self.log.info("%d DICOM instances queued in %s", n, delivery.outbox)
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

    def _tell_client(self, text: str) -> None:
        try:
            self.send(Text(text))
            self.send(Close())
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            self.log.info("could not send the error to the client: %s", exc)

    def _refuse(self, reason: str) -> None:
        """No session slot or journal space: one error line to the client, nothing journaled."""
        text = f"ERROR [server]: {reason}"
        self.log.warning("refused: %s", reason)
        self._tell_client(text)
        self._tee.drain(min(self.config.drain_timeout_s, 0.5), self.config.max_handshake_bytes)
        self.manifest = {"outcome": "rejected", "error": reason, "peer": self.peer}

    def _fail(self, failure: SessionFailure) -> None:
        text = failure.client_text()
        if len(text) > 4000:
            text = text[:4000] + "…"
        self.log.warning("%s (%s)", loggable(text), failure.outcome)
        self._tell_client(text)
        if self.journal is None:  # never admitted (no valid CONFIG): nothing is kept
            self._tee.drain(min(self.config.drain_timeout_s, 0.5), self.config.max_handshake_bytes)
            self.manifest = {
                "outcome": failure.outcome,
                "error": loggable(failure.message),
                "peer": self.peer,
            }
            return
        # what follows a plugin failure is data worth a replay; what follows a refused message is not
        keep = (
            _REFUSED_TAIL_BYTES
            if failure.plugin in ("protocol", "server")
            else self.config.limits.max_payload_bytes
        )
        self._tee.drain(self.config.drain_timeout_s, keep)
        self.manifest = self.journal.close(failure.outcome, sanitize(failure.message, 4000), failure.plugin)

    def _close_socket(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
