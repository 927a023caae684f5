"""The session journal: every byte a client sends, recorded before it is parsed, and every byte sent back.

Layout of one session folder ``<journal root>/<session id>/``::

    input.bin       the raw bytes received, in arrival order (append-only; an ISMRMRD stream recording)
    output.bin      the raw bytes sent back (append-only)
    manifest.json   times, peer, chain, message counts, byte counts, SHA-256 of both files, outcome, error

The manifest is written when the session opens (outcome ``running``) and rewritten atomically when it
ends, so a crash of the server leaves a session marked ``running`` whose ``input.bin`` still holds what
arrived.  ``input.bin`` is fsynced at most ``fsync_interval_s`` after data arrived (checked on every
write) and at the end of the session.  No patient identifiers go into the manifest or the log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

log = logging.getLogger("reconstream.server.journal")

INPUT_FILE = "input.bin"
OUTPUT_FILE = "output.bin"
MANIFEST_FILE = "manifest.json"

#: Outcomes a session can end with.  Only ``completed`` sessions are deleted by the retention policy
#: unless it is told to delete failed ones too.
OUTCOMES = ("running", "completed", "failed", "disconnected", "interrupted", "rejected")


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_session_id() -> str:
    """A sortable, unique session id: UTC time to the millisecond plus 32 random bits."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S_%f")[:-3]
    return f"{stamp}Z-{secrets.token_hex(4)}"


class _AppendFile:
    """An append-only, unbuffered file with a running SHA-256, byte count and interval fsync."""

    def __init__(self, path: Path, fsync_interval_s: float) -> None:
        self.path = path
        self._fh: BinaryIO = path.open("ab", buffering=0)
        self._digest = hashlib.sha256()
        self.n_bytes = 0
        self._fsync_interval_s = fsync_interval_s
        self._last_sync = time.monotonic()
        self._dirty = False
        self._lock = threading.Lock()

    def append(self, data: bytes | memoryview) -> None:
        with self._lock:
            if self._fh.closed:
                raise ValueError(f"{self.path} is closed")
            view = memoryview(data)
            while view:  # a raw write may be partial
                view = view[self._fh.write(view) or 0 :]
            self._digest.update(data)
            self.n_bytes += len(data)
            self._dirty = True
            self._sync_if_due_locked()

    def sync_if_due(self) -> None:
        """Fsync when data were written since the last fsync more than the interval ago."""
        with self._lock:
            if not self._fh.closed:
                self._sync_if_due_locked()

    def _sync_if_due_locked(self) -> None:
        if self._dirty and time.monotonic() - self._last_sync >= self._fsync_interval_s:
            os.fsync(self._fh.fileno())
            self._last_sync = time.monotonic()
            self._dirty = False

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                os.fsync(self._fh.fileno())
                self._fh.close()

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


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
        self, root: Path, peer: str, fsync_interval_s: float = 1.0, session_id: str | None = None
    ) -> None:
        self.session_id = session_id or new_session_id()
        self.folder = Path(root) / self.session_id
        self.folder.mkdir(parents=True, exist_ok=False)
        self.record = SessionRecord(self.session_id, peer, _utc_now())
        self.messages_in: Counter[str] = Counter()
        self.items_out: Counter[str] = Counter()
        self._started = time.monotonic()
        self._input = _AppendFile(self.folder / INPUT_FILE, fsync_interval_s)
        self._output = _AppendFile(self.folder / OUTPUT_FILE, fsync_interval_s)
        self._closed = False
        self.write_manifest()

    def record_input(self, data: bytes | memoryview) -> None:
        """Append received bytes (call before parsing them)."""
        self._input.append(data)

    def record_output(self, data: bytes, kind: str) -> None:
        """Append bytes about to be sent and count one output message of ``kind``."""
        self._output.append(data)
        self.items_out[kind] += 1

    def sync_if_due(self) -> None:
        """Fsync both files if the fsync interval has passed (called while waiting for data)."""
        self._input.sync_if_due()
        self._output.sync_if_due()

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
            "input": {"file": INPUT_FILE, "bytes": self._input.n_bytes, "sha256": self._input.sha256},
            "output": {"file": OUTPUT_FILE, "bytes": self._output.n_bytes, "sha256": self._output.sha256},
        }

    def write_manifest(self) -> None:
        """Atomically (re)write ``manifest.json``."""
        tmp = self.folder / (MANIFEST_FILE + ".tmp")
        tmp.write_text(json.dumps(self.manifest(), indent=2), encoding="utf-8")
        os.replace(tmp, self.folder / MANIFEST_FILE)

    def close(
        self, outcome: str, error: str | None = None, error_plugin: str | None = None
    ) -> dict[str, Any]:
        """Fsync both files, set the outcome and write the final manifest (idempotent)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; allowed: {', '.join(OUTCOMES)}")
        if not self._closed:
            self._closed = True
            self._input.close()
            self._output.close()
            self.record.outcome, self.record.error, self.record.error_plugin = outcome, error, error_plugin
            self.record.ended_utc = _utc_now()
            self.write_manifest()
            log.info(
                "session %s ended: %s (%d bytes in, %d bytes out)",
                self.session_id,
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
