"""Retention of session journals: a configurable policy by age and total size, never a silent deletion.

Rules:

* only sessions whose manifest says ``completed`` are deleted, unless ``delete_failed`` is set; a failed,
  disconnected or rejected session is kept (it is what ``reconstream replay`` is for) unless the explicit
  ``failed_max_age_days`` bound applies to it; an ``interrupted`` session is never deleted;
* a session still marked ``running`` (in progress, or orphaned by a crash) and a folder without a readable
  manifest are never deleted;
* ``max_age_days``: eligible sessions that started longer ago are deleted;
* ``max_total_bytes``: then the oldest eligible sessions are deleted until the journal fits;
* every deletion is logged (WARNING) and appended as a JSON line to ``<root>/retention.log``.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from plugins.server.journal import read_manifest

log = logging.getLogger("reconstream.server.retention")
RETENTION_LOG = "retention.log"


@dataclass(frozen=True)
class RetentionPolicy:
    """When journals may be deleted.

    Attributes:
        max_age_days: delete eligible sessions older than this many days (``None``: no age limit).
        max_total_bytes: keep the journal folder under this many bytes by deleting the oldest eligible
            sessions (``None``: no size limit).
        delete_failed: also delete sessions whose outcome is not ``completed`` (default False: keep them).
        failed_max_age_days: an explicit bound for failed, disconnected and rejected sessions: deleted
            once older than this many days, whatever the other settings (``None``: kept).  Interrupted
            sessions (a crash or a shutdown cut them) are never deleted by retention.
    """

    max_age_days: float | None = None
    max_total_bytes: int | None = None
    delete_failed: bool = False
    failed_max_age_days: float | None = None

    def __post_init__(self) -> None:
        if self.max_age_days is not None and self.max_age_days < 0:
            raise ValueError(f"max_age_days must be ≥ 0, got {self.max_age_days}")
        if self.failed_max_age_days is not None and self.failed_max_age_days < 0:
            raise ValueError(f"failed_max_age_days must be ≥ 0, got {self.failed_max_age_days}")
        if self.max_total_bytes is not None and self.max_total_bytes < 0:
            raise ValueError(f"max_total_bytes must be ≥ 0, got {self.max_total_bytes}")

    @property
    def is_active(self) -> bool:
        return (
            self.max_age_days is not None
            or self.max_total_bytes is not None
            or self.failed_max_age_days is not None
        )


@dataclass(frozen=True)
class _Entry:
    folder: Path
    started: datetime
    outcome: str
    n_bytes: int


@dataclass
class RetentionResult:
    """What one pass of the policy did: deleted session ids and kept sessions that were over a limit."""

    deleted: list[str] = field(default_factory=list)
    kept_over_limit: list[str] = field(default_factory=list)
    n_bytes_after: int = 0


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _scan(root: Path) -> tuple[list[_Entry], int]:
    """Sessions with readable manifests (oldest first) and the total size of everything under root."""
    entries: list[_Entry] = []
    total = 0
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        size = _folder_bytes(folder)
        total += size
        try:
            manifest = read_manifest(folder)
            started = datetime.fromisoformat(str(manifest["started_utc"]))
        except (OSError, ValueError, KeyError) as exc:
            log.warning("retention: %s has no readable manifest (%s); kept", folder.name, exc)
            continue
        entries.append(_Entry(folder, started, str(manifest.get("outcome", "running")), size))
    entries.sort(key=lambda e: e.started)
    return entries, total


_FAILED_OUTCOMES = ("failed", "disconnected", "rejected")


def _eligible(entry: _Entry, policy: RetentionPolicy) -> bool:
    if entry.outcome in ("running", "interrupted"):
        return False
    return entry.outcome == "completed" or policy.delete_failed


def _failed_expired(entry: _Entry, policy: RetentionPolicy, now: datetime) -> bool:
    return (
        policy.failed_max_age_days is not None
        and entry.outcome in _FAILED_OUTCOMES
        and now - entry.started > timedelta(days=policy.failed_max_age_days)
    )


def _delete(root: Path, entry: _Entry, reason: str) -> None:
    log.warning(
        "retention: deleting session %s (outcome %s, started %s, %d bytes): %s",
        entry.folder.name,
        entry.outcome,
        entry.started.isoformat(),
        entry.n_bytes,
        reason,
    )
    line = {
        "deleted_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "session_id": entry.folder.name,
        "outcome": entry.outcome,
        "started_utc": entry.started.isoformat(),
        "bytes": entry.n_bytes,
        "reason": reason,
    }
    with (root / RETENTION_LOG).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")
    shutil.rmtree(entry.folder)


def apply_retention(root: Path, policy: RetentionPolicy, now: datetime | None = None) -> RetentionResult:
    """Apply ``policy`` to the journal folder ``root`` once; returns what was deleted and kept."""
    root = Path(root)
    result = RetentionResult()
    if not root.is_dir() or not policy.is_active:
        return result
    now = now or datetime.now(UTC)
    entries, total = _scan(root)
    survivors: list[_Entry] = []
    for entry in entries:
        too_old = policy.max_age_days is not None and now - entry.started > timedelta(
            days=policy.max_age_days
        )
        if _failed_expired(entry, policy, now):
            _delete(root, entry, f"{entry.outcome} and older than {policy.failed_max_age_days} days")
            result.deleted.append(entry.folder.name)
            total -= entry.n_bytes
        elif too_old and _eligible(entry, policy):
            _delete(root, entry, f"older than {policy.max_age_days} days")
            result.deleted.append(entry.folder.name)
            total -= entry.n_bytes
        else:
            if too_old:
                result.kept_over_limit.append(entry.folder.name)
            survivors.append(entry)
    if policy.max_total_bytes is not None:
        for entry in survivors:
            if total <= policy.max_total_bytes:
                break
            if _eligible(entry, policy):
                _delete(root, entry, f"journal over {policy.max_total_bytes} bytes")
                result.deleted.append(entry.folder.name)
                total -= entry.n_bytes
            elif entry.folder.name not in result.kept_over_limit:
                result.kept_over_limit.append(entry.folder.name)
    for name in result.kept_over_limit:
        log.info("retention: session %s is over a limit but kept (not completed, or still running)", name)
    result.n_bytes_after = total
    return result
