"""The session journal: every byte a client sends, recorded before it is parsed, and every byte sent back.

Layout of one session folder ``<journal root>/<session id>/``::

    input.bin       the raw bytes received, in arrival order (append-only; an ISMRMRD stream recording)
    output.bin      the raw bytes sent back (append-only)
    manifest.json   times, peer, chain, message counts, byte counts, SHA-256 of both files, outcome, error

The manifest is written when the session opens (outcome ``running``), rewritten atomically at every
fsync (sizes and checksums of what is on disk) and when the session ends.  ``input.bin`` is fsynced at
most ``fsync_interval_s`` after data arrived (checked on every write and while waiting for data) and at
the end of the session.  A session a crash left ``running`` is found at the next start by
:func:`recover_journals`: its sizes and checksums are recomputed from the files, the complete messages
counted, and its outcome set to ``interrupted``.

Journal folders are ``0700`` and files ``0600`` (they hold patient data); with a key
(:class:`~plugins.server.journal_crypto.JournalCipher`) both data files are encrypted at rest and
:func:`open_journal_file` reads them back.  No patient identifiers go into the manifest or the log.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from plugins.server.journal_crypto import SCHEME, JournalCipher

log = logging.getLogger("reconstream.server.journal")

INPUT_FILE = "input.bin"
OUTPUT_FILE = "output.bin"
MANIFEST_FILE = "manifest.json"

#: Outcomes a session can end with.  Only ``completed`` sessions are deleted by the retention policy
#: unless it is told to delete failed ones too.
OUTCOMES = ("running", "completed", "failed", "disconnected", "interrupted", "rejected")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_session_id() -> str:
    """A sortable, unique session id: UTC time to the millisecond plus 32 random bits."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S_%f")[:-3]
    return f"{stamp}Z-{secrets.token_hex(4)}"


class JournalWriteError(OSError):
    """A journal file could not be written (e.g. the journal's disk is full); the text says which and why."""


def private_folder(path: Path) -> Path:
    """Create ``path`` (and parents) if needed and make it ``0700``: journals hold patient data."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_private_text(path: Path, text: str) -> None:
    """Atomically replace ``path`` with ``text`` (UTF-8), created ``0600``."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


Buffer = bytes | bytearray | memoryview


def write_all(fd: int, parts: Sequence[Buffer]) -> int:
    """Write ``parts`` in order to ``fd`` with ``writev`` (a raw write may be partial); returns the bytes written."""
    views = [memoryview(p).cast("B") for p in parts if memoryview(p).nbytes]
    total = sum(v.nbytes for v in views)
    while views:
        n = os.writev(fd, views)
        if n <= 0:
            raise OSError(errno.EIO, "the write wrote nothing")
        while views and n >= views[0].nbytes:
            n -= views[0].nbytes
            views.pop(0)
        if n:
            views[0] = views[0][n:]
    return total


class _AppendFile:
    """An append-only, unbuffered ``0600`` file with a running SHA-256, byte counts and interval fsync.

    With a cipher every append is stored as one sealed record (:mod:`plugins.server.journal_crypto`);
    ``n_bytes`` and ``sha256`` describe the stored bytes, ``n_payload_bytes`` the plaintext.
    """

    def __init__(self, path: Path, fsync_interval_s: float, cipher: JournalCipher | None = None) -> None:
        self.path = path
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._fh: BinaryIO = os.fdopen(fd, "ab", buffering=0)
        self._cipher = cipher
        self._n_records = 0
        self._digest = hashlib.sha256()
        self.n_bytes = 0
        self.n_payload_bytes = 0
        self._fsync_interval_s = fsync_interval_s
        self._last_sync = time.monotonic()
        self._dirty = False
        self._lock = threading.Lock()

    def append(self, data: Buffer | Sequence[Buffer]) -> bool:
        """Append ``data`` (one buffer, or a message in parts written with one ``writev``: no joining
        copy); returns True when this call also fsynced (the interval had passed)."""
        parts: list[Buffer] = [data] if isinstance(data, bytes | bytearray | memoryview) else list(data)
        with self._lock:
            if self._fh.closed:
                raise ValueError(f"{self.path} is closed")
            n_payload = sum(memoryview(p).nbytes for p in parts)
            if self._cipher is not None:
                parts = [self._cipher.seal(b"".join(parts), self.path.name, self._n_records)]
                self._n_records += 1
            try:
                n_written = write_all(self._fh.fileno(), parts)
            except OSError as exc:
                what = "the journal's disk is full" if exc.errno == errno.ENOSPC else exc.strerror or str(exc)
                raise JournalWriteError(exc.errno, f"{self.path}: {what}") from None
            for part in parts:
                self._digest.update(part)
            self.n_bytes += n_written
            self.n_payload_bytes += n_payload
            self._dirty = True
            return self._sync_if_due_locked()

    def sync_if_due(self) -> bool:
        """Fsync when data were written since the last fsync more than the interval ago (True if it did)."""
        with self._lock:
            return not self._fh.closed and self._sync_if_due_locked()

    def _sync_if_due_locked(self) -> bool:
        if self._dirty and time.monotonic() - self._last_sync >= self._fsync_interval_s:
            os.fsync(self._fh.fileno())
            self._last_sync = time.monotonic()
            self._dirty = False
            return True
        return False

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                try:
                    os.fsync(self._fh.fileno())
                finally:
                    self._fh.close()

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def entry(self) -> dict[str, Any]:
        """The manifest entry of this file."""
        return {
            "file": self.path.name,
            "bytes": self.n_bytes,
            "sha256": self.sha256,
            "payload_bytes": self.n_payload_bytes,
        }


@dataclass
class SessionRecord:
    """The mutable facts of one session that end up in ``manifest.json``."""

    session_id: str
    peer: str
    started_utc: str
    ended_utc: str | None = None
    chain: str | None = None
    chain_source: str | None = None
    outcome: str = "running"
    error: str | None = None
    error_plugin: str | None = None


class Journal:
    """One session's journal folder.  Thread-safe appends; :meth:`close` fsyncs and finalises the manifest."""

    def __init__(
        self,
        root: Path,
        peer: str,
        fsync_interval_s: float = 1.0,
        session_id: str | None = None,
        cipher: JournalCipher | None = None,
    ) -> None:
        self.session_id = session_id or new_session_id()
        self.folder = private_folder(Path(root)) / self.session_id
        self.folder.mkdir(mode=0o700, exist_ok=False)
        self.record = SessionRecord(self.session_id, peer, utc_now())
        self.messages_in: Counter[str] = Counter()
        self.items_out: Counter[str] = Counter()
        self._started = time.monotonic()
        self._cipher = cipher
        self._input = _AppendFile(self.folder / INPUT_FILE, fsync_interval_s, cipher)
        self._output = _AppendFile(self.folder / OUTPUT_FILE, fsync_interval_s, cipher)
        self._closed = False
        self._manifest_lock = threading.Lock()
        self.write_manifest()

    def record_input(self, data: Buffer) -> None:
        """Append received bytes (call before parsing them); the manifest follows at every fsync."""
        if self._input.append(data):
            self.write_manifest()

    def record_output(self, data: Buffer, kind: str) -> None:
        """Append bytes about to be sent and count one output message of ``kind``."""
        self.record_outputs([data], [kind])

    def record_outputs(self, parts: Sequence[Buffer], kinds: Sequence[str]) -> None:
        """Append the bytes of messages about to be sent (in parts, one ``writev``) and count one output
        message of each kind in ``kinds``."""
        self.items_out.update(kinds)
        if self._output.append(parts):
            self.write_manifest()

    def sync_if_due(self) -> None:
        """Fsync both files if the fsync interval has passed (called while waiting for data); the manifest
        is rewritten with the synced sizes and checksums, so it never lags the files by much."""
        synced_in = self._input.sync_if_due()
        if self._output.sync_if_due() or synced_in:
            self.write_manifest()

    def count_input(self, kind: str) -> None:
        """Count one parsed incoming message of ``kind`` (e.g. ``ACQUISITION``)."""
        self.messages_in[kind] += 1

    @property
    def n_bytes_in(self) -> int:
        return self._input.n_bytes

    def manifest(self) -> dict[str, Any]:
        """The manifest as a dictionary (also written to ``manifest.json``)."""
        r = self.record
        return {
            "session_id": r.session_id,
            "peer": r.peer,
            "started_utc": r.started_utc,
            "ended_utc": r.ended_utc,
            "duration_s": round(time.monotonic() - self._started, 6),
            "chain": r.chain,
            "chain_source": r.chain_source,
            "outcome": r.outcome,
            "error": r.error,
            "error_plugin": r.error_plugin,
            "messages_in": dict(self.messages_in),
            "items_out": dict(self.items_out),
            "input": self._input.entry(),
            "output": self._output.entry(),
            "encryption": (
                None if self._cipher is None else {"scheme": SCHEME, "key_id": self._cipher.key_id}
            ),
        }

    def write_manifest(self) -> None:
        """Atomically (re)write ``manifest.json`` (``0600``)."""
        with self._manifest_lock:
            write_private_text(self.folder / MANIFEST_FILE, json.dumps(self.manifest(), indent=2))

    def close(
        self, outcome: str, error: str | None = None, error_plugin: str | None = None
    ) -> dict[str, Any]:
        """Fsync both files, set the outcome and write the final manifest (idempotent)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; allowed: {', '.join(OUTCOMES)}")
        if not self._closed:
            self._closed = True
            for handle in (self._input, self._output):
                try:
                    handle.close()
                except OSError as exc:  # a full disk: the manifest below still says what was written
                    log.error("session %s: closing %s failed: %s", self.session_id, handle.path.name, exc)
            self.record.outcome, self.record.error, self.record.error_plugin = outcome, error, error_plugin
            self.record.ended_utc = utc_now()
            self.write_manifest()
            log.info(
                "session %s from %s ended: %s (%d bytes in, %d bytes out)",
                self.session_id,
                self.record.peer,
                outcome,
                self._input.n_bytes,
                self._output.n_bytes,
            )
        return self.manifest()


def read_manifest(session_folder: Path) -> dict[str, Any]:
    """The manifest of a journaled session; raises ``FileNotFoundError``/``ValueError`` when unreadable."""
    path = Path(session_folder) / MANIFEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or "session_id" not in data:
        raise ValueError(f"{path}: not a reconstream session manifest")
    return data


def verify_journal(session_folder: Path) -> bool:
    """True when ``input.bin`` and ``output.bin`` still have the checksums the manifest recorded."""
    manifest = read_manifest(session_folder)
    for key in ("input", "output"):
        entry = manifest[key]
        data = (Path(session_folder) / entry["file"]).read_bytes()
        if len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            return False
    return True


def open_journal_file(
    session_folder: Path, file_name: str, cipher: JournalCipher | None = None
) -> tuple[BinaryIO, Any]:
    """(open file, ``read(n)`` callable giving the plaintext) of ``input.bin`` or ``output.bin``.

    An encrypted journal (its manifest names a key id) needs the matching ``cipher``; the caller closes
    the returned file.
    """
    folder = Path(session_folder)
    encryption = read_manifest(folder).get("encryption")
    if encryption and cipher is None:
        raise ValueError(
            f"{folder.name}: the journal is encrypted (key id {encryption.get('key_id')}); give its key file"
        )
    if encryption and cipher is not None and encryption.get("key_id") != cipher.key_id:
        raise ValueError(
            f"{folder.name}: the journal was encrypted with key id {encryption.get('key_id')}, "
            f"not with the given key ({cipher.key_id})"
        )
    fh = (folder / file_name).open("rb")
    if not encryption or cipher is None:
        return fh, fh.read
    from plugins.server.journal_crypto import DecryptingReader

    return fh, DecryptingReader(fh, cipher, file_name).read


def _scan_file(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    n_bytes = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            n_bytes += len(chunk)
    return {"bytes": n_bytes, "sha256": digest.hexdigest()}


def _complete_messages(folder: Path, cipher: JournalCipher | None) -> tuple[int, str | None]:
    """(number of complete messages in input.bin, kind of the last one); stops at the first bad one."""
    from plugins.io.mrd2_protocol import AnyProtocolReader
    from plugins.io.protocol import ProtocolError, StreamClosed
    from plugins.server.stream import message_kind

    n, last = 0, None
    try:
        fh, read = open_journal_file(folder, INPUT_FILE, cipher)
    except ValueError:
        return 0, None
    with fh:
        reader = AnyProtocolReader(read)
        try:
            while True:
                msg_id, _ = reader.next_message()
                n, last = n + 1, message_kind(msg_id)
        except (StreamClosed, ProtocolError, ValueError):
            pass
    return n, last


def recover_journals(root: Path, cipher: JournalCipher | None = None) -> list[str]:
    """Repair sessions a crash left ``running`` (call at start, before serving); returns their ids.

    Each gets the sizes and checksums of its files as they are on disk, the number and kind of the last
    complete message in ``input.bin``, and the outcome ``interrupted`` with the time it was found.
    """
    repaired: list[str] = []
    root = Path(root)
    if not root.is_dir():
        return repaired
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            manifest = read_manifest(folder)
        except (OSError, ValueError):
            continue
        if manifest.get("outcome") != "running":
            continue
        for key, name in (("input", INPUT_FILE), ("output", OUTPUT_FILE)):
            entry = dict(manifest.get(key) or {"file": name})
            if (folder / name).is_file():
                entry.update(_scan_file(folder / name))
            manifest[key] = entry
        n_messages, last_kind = _complete_messages(folder, cipher)
        manifest.update(
            outcome="interrupted",
            error="the server stopped while the session was running (found at the next start)",
            error_plugin="server",
            recovered_utc=utc_now(),
            complete_messages_in=n_messages,
            last_complete_message=last_kind,
        )
        write_private_text(folder / MANIFEST_FILE, json.dumps(manifest, indent=2))
        log.error(
            "ALERT session %s from %s was interrupted by a server crash: %d bytes journaled, %d complete "
            "messages (last %s); replay it with: reconstream replay %s",
            folder.name,
            manifest.get("peer"),
            manifest["input"].get("bytes", 0),
            n_messages,
            last_kind,
            folder.name,
        )
        repaired.append(folder.name)
    return repaired


def update_manifest(session_folder: Path, **fields: Any) -> dict[str, Any]:
    """Add or replace top-level fields of a finished session's manifest (atomically); returns it."""
    folder = Path(session_folder)
    manifest = read_manifest(folder)
    manifest.update(fields)
    write_private_text(folder / MANIFEST_FILE, json.dumps(manifest, indent=2))
    return manifest
