"""Admission control and resource bounds of the server: who gets a session, how much it may send.

* **Pending connections** (accepted, handshake not finished) are held apart from sessions: at most
  ``max_pending`` in all and ``max_pending_per_peer`` per address; the oldest is dropped when a new one
  arrives over either limit, and each must finish its handshake (TLS, config, header) within
  ``handshake_timeout_s``.  Slow or silent sockets therefore never take a session slot.
* **Sessions** start when the chain is known (a valid CONFIG): at most ``max_connections`` at once and
  ``max_sessions_per_peer`` per address, and only while the journal's disk has ``journal_min_free_bytes``
  free; otherwise the client gets one ``ERROR [server]: …`` line and CLOSE, and nothing is journaled.
* **Bytes**: before the header only config, header and text messages are read (each at most
  ``max_handshake_bytes``); after it, message kinds the chain does not handle are refused before their
  payload is read, acquisitions are bounded by the header's matrix and channel count, and the session's
  total is bounded by a quota derived from the header's encoding (:func:`session_quota_bytes`).
"""

from __future__ import annotations

import logging
import math
import shutil
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from plugins.io.protocol import ProtocolLimits

log = logging.getLogger("reconstream.server.admission")

_ACQUISITION_HEADER_BYTES = 340
_DEFAULT_CHANNELS = 32
_LIMIT_NAMES = (
    "kspace_encoding_step_1",
    "kspace_encoding_step_2",
    "slice",
    "contrast",
    "phase",
    "repetition",
    "set",
    "average",
    "segment",
)


class SessionRefused(Exception):
    """A session cannot start now (no slot, too many from this peer, journal disk low); the text says why."""


def _matrix_x(space: Any) -> int:
    try:
        return int(space.matrixSize.x)
    except (AttributeError, TypeError, ValueError):
        return 0


def _receiver_channels(header: Any) -> int | None:
    system = getattr(header, "acquisitionSystemInformation", None)
    channels = getattr(system, "receiverChannels", None) if system is not None else None
    return int(channels) if channels else None


def data_limits(header: Any, base: ProtocolLimits) -> ProtocolLimits:
    """Protocol limits for one session's data: readout length at most twice the header's largest matrix
    x (at least 256 samples), channels at most twice its receiver channels (at least 64); never above
    ``base``."""
    matrix_x = max(
        (max(_matrix_x(e.encodedSpace), _matrix_x(e.reconSpace)) for e in header.encoding), default=0
    )
    max_samples = min(base.max_samples, max(256, 2 * matrix_x)) if matrix_x else base.max_samples
    channels = _receiver_channels(header)
    max_channels = min(base.max_channels, max(64, 2 * channels)) if channels else base.max_channels
    return replace(base, max_samples=max_samples, max_channels=max_channels)


def expected_raw_bytes(header: Any) -> int:
    """Bytes of one readout per encoded line, partition, slice, contrast, phase, repetition, set, average
    and segment of every encoding (the header's ``encodingLimits``): one pass of the encoding."""
    channels = _receiver_channels(header) or _DEFAULT_CHANNELS
    total = 0
    for encoding in header.encoding:
        samples = max(_matrix_x(encoding.encodedSpace), 1)
        limits = encoding.encodingLimits
        n_readouts = 1
        for name in _LIMIT_NAMES:
            limit = getattr(limits, name, None) if limits is not None else None
            if limit is not None and limit.maximum is not None:
                n_readouts *= int(limit.maximum) + 1
        total += n_readouts * (_ACQUISITION_HEADER_BYTES + samples * channels * 8)
    return total


def session_quota_bytes(header: Any, factor: float, min_bytes: int, max_bytes: int) -> int:
    """The most bytes a session with ``header`` may send: ``factor`` passes of its encoding (retrospective
    cine and averaging repeat lines), at least ``min_bytes``, at most ``max_bytes``.  PET-only sessions
    (no header) get ``max_bytes``."""
    if header is None:
        return max_bytes
    return int(min(max_bytes, max(min_bytes, math.ceil(factor * expected_raw_bytes(header)))))


@dataclass(frozen=True)
class DiskState:
    """Free space of the journal's file system, in bytes, and whether it is below a watermark."""

    free_bytes: int
    low: bool


def journal_disk(path: Path, min_free_bytes: int) -> DiskState:
    """The free space under ``path`` against ``min_free_bytes``."""
    free = shutil.disk_usage(path).free
    return DiskState(int(free), free < min_free_bytes)


class SessionSlots:
    """Session slots: a global limit, a per-peer limit and the journal disk watermark (thread-safe)."""

    def __init__(self, max_sessions: int, max_per_peer: int, journal_dir: Path, min_free_bytes: int) -> None:
        self.max_sessions = max_sessions
        self.max_per_peer = max_per_peer
        self.journal_dir = journal_dir
        self.min_free_bytes = min_free_bytes
        self._by_peer: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._last_alert = 0.0

    @property
    def n_active(self) -> int:
        with self._lock:
            return sum(self._by_peer.values())

    def acquire(self, peer_host: str) -> None:
        """Take a slot for a session from ``peer_host``; raises :class:`SessionRefused` saying why not."""
        disk = journal_disk(self.journal_dir, self.min_free_bytes)
        if disk.low:
            self._alert(disk)
            raise SessionRefused(
                f"the server's journal disk is nearly full ({disk.free_bytes / 1e6:.0f} MB free, "
                f"{self.min_free_bytes / 1e6:.0f} MB needed); the session was not started and nothing was "
                "kept: send it again later or to another server"
            )
        with self._lock:
            if sum(self._by_peer.values()) >= self.max_sessions:
                raise SessionRefused(
                    f"too many sessions (limit {self.max_sessions}); nothing was kept: try again later"
                )
            if self._by_peer[peer_host] >= self.max_per_peer:
                raise SessionRefused(
                    f"too many sessions from {peer_host} (limit {self.max_per_peer} per address); "
                    "nothing was kept: try again later"
                )
            self._by_peer[peer_host] += 1

    def release(self, peer_host: str) -> None:
        with self._lock:
            self._by_peer[peer_host] -= 1
            if self._by_peer[peer_host] <= 0:
                del self._by_peer[peer_host]

    def _alert(self, disk: DiskState) -> None:
        now = time.monotonic()
        if now - self._last_alert > 60.0:
            self._last_alert = now
            log.error(
                "ALERT journal disk %s nearly full: %.0f MB free, new sessions need %.0f MB; refusing them "
                "until space returns",
                self.journal_dir,
                disk.free_bytes / 1e6,
                self.min_free_bytes / 1e6,
            )
