"""Journal files, manifests and the retention policy (never a silent deletion)."""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from plugins.server.journal import Journal, read_manifest, verify_journal
from plugins.server.retention import RETENTION_LOG, RetentionPolicy, apply_retention


def _session(root: Path, outcome: str, age_days: float, n_bytes: int, now: datetime) -> str:
    journal = Journal(root, "127.0.0.1:1")
    journal.record_input(b"x" * n_bytes)
    journal.close("completed")
    manifest = read_manifest(journal.folder)
    manifest["outcome"] = outcome
    manifest["started_utc"] = (now - timedelta(days=age_days)).isoformat()
    (journal.folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return journal.session_id


def test_journal_records_bytes_counts_and_checksums(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "10.0.0.1:5000", fsync_interval_s=0.0)
    assert read_manifest(journal.folder)["outcome"] == "running"  # visible from the start
    journal.record_input(b"abc")
    journal.record_input(b"def")
    journal.count_input("ACQUISITION")
    journal.record_output(b"xyz", "IMAGE")
    manifest = journal.close("failed", "boom", "recon")
    assert (journal.folder / "input.bin").read_bytes() == b"abcdef"
    assert manifest["input"]["bytes"] == 6 and manifest["output"]["bytes"] == 3
    assert manifest["messages_in"] == {"ACQUISITION": 1} and manifest["items_out"] == {"IMAGE": 1}
    assert (
        manifest["outcome"] == "failed"
        and manifest["error"] == "boom"
        and manifest["error_plugin"] == "recon"
    )
    assert read_manifest(journal.folder) == {
        **manifest,
        "duration_s": read_manifest(journal.folder)["duration_s"],
    }
    assert verify_journal(journal.folder)
    with (journal.folder / "input.bin").open("ab") as fh:
        fh.write(b"tampered")
    assert not verify_journal(journal.folder)
    other = Journal(tmp_path, "p")
    with pytest.raises(ValueError, match="unknown outcome"):
        other.close("exploded")
    other.close("completed")


def test_retention_by_age_keeps_failed_and_running_and_logs_each_deletion(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(UTC)
    old_ok = _session(tmp_path, "completed", 10, 10, now)
    old_failed = _session(tmp_path, "failed", 10, 10, now)
    old_disconnected = _session(tmp_path, "disconnected", 10, 10, now)
    new_ok = _session(tmp_path, "completed", 1, 10, now)
    running = _session(tmp_path, "running", 10, 10, now)  # e.g. orphaned by a crash of the server
    (tmp_path / "not_a_session").mkdir()
    with caplog.at_level(logging.WARNING, logger="reconstream.server.retention"):
        result = apply_retention(tmp_path, RetentionPolicy(max_age_days=5), now=now)
    assert result.deleted == [old_ok]
    assert sorted(result.kept_over_limit) == sorted([old_failed, old_disconnected, running])
    remaining = {p.name for p in tmp_path.iterdir() if p.is_dir()}
    assert remaining == {old_failed, old_disconnected, new_ok, running, "not_a_session"}
    assert any(old_ok in r.getMessage() and "deleting" in r.getMessage() for r in caplog.records)
    log_lines = [json.loads(line) for line in (tmp_path / RETENTION_LOG).read_text().splitlines()]
    assert [line["session_id"] for line in log_lines] == [old_ok]
    # failed sessions go only when asked
    result = apply_retention(tmp_path, RetentionPolicy(max_age_days=5, delete_failed=True), now=now)
    assert sorted(result.deleted) == sorted([old_failed, old_disconnected])
    assert running in {p.name for p in tmp_path.iterdir()}


def test_retention_by_size_deletes_oldest_completed_first(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    oldest = _session(tmp_path, "completed", 3, 5000, now)
    failed = _session(tmp_path, "failed", 2.5, 5000, now)
    middle = _session(tmp_path, "completed", 2, 5000, now)
    newest = _session(tmp_path, "completed", 1, 5000, now)
    total = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    per_session = total / 4
    result = apply_retention(
        tmp_path, RetentionPolicy(max_total_bytes=int(total - 1.5 * per_session)), now=now
    )
    assert result.deleted == [oldest, middle]
    assert {p.name for p in tmp_path.iterdir() if p.is_dir()} == {failed, newest}
    assert result.n_bytes_after <= total - 1.5 * per_session


def test_inactive_policy_deletes_nothing(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    _session(tmp_path, "completed", 1000, 10, now)
    assert apply_retention(tmp_path, RetentionPolicy(), now=now).deleted == []
    with pytest.raises(ValueError, match="max_age_days"):
        RetentionPolicy(max_age_days=-1)


def test_fsync_interval_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    journal = Journal(tmp_path, "p", fsync_interval_s=0.0)
    journal.record_input(b"a")
    journal.record_input(b"b")
    assert len(synced) >= 2  # every write synced when the interval is 0
    journal.close("completed")
    slow = Journal(tmp_path, "q", fsync_interval_s=3600.0)
    before = len(synced)
    slow.record_input(b"c")
    assert len(synced) == before  # not yet
    slow.close("completed")
    assert len(synced) == before + 2  # both files at the end of the session
    idle = Journal(tmp_path, "r", fsync_interval_s=0.5)
    idle.sync_if_due()
    before = len(synced)
    idle.sync_if_due()
    assert len(synced) == before  # nothing written: nothing to sync
    idle.record_input(b"d")
    assert len(synced) == before  # within the interval: not synced yet
    time.sleep(0.55)
    idle.sync_if_due()  # what the session calls while it waits for a stalled client
    assert len(synced) == before + 1
    idle.close("completed")


def test_failed_sessions_are_bounded_only_by_the_explicit_policy_and_interrupted_never(
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC)
    old = {
        o: _session(tmp_path, o, 40, 100, now) for o in ("failed", "disconnected", "rejected", "interrupted")
    }
    young_failed = _session(tmp_path, "failed", 2, 100, now)
    # without the explicit bound, an age policy keeps every non-completed session
    assert apply_retention(tmp_path, RetentionPolicy(max_age_days=30), now=now).deleted == []
    result = apply_retention(tmp_path, RetentionPolicy(failed_max_age_days=30), now=now)
    assert sorted(result.deleted) == sorted(old[o] for o in ("failed", "disconnected", "rejected"))
    assert (tmp_path / old["interrupted"]).is_dir() and (tmp_path / young_failed).is_dir()
    everything = RetentionPolicy(max_age_days=0, max_total_bytes=0, delete_failed=True, failed_max_age_days=0)
    assert old["interrupted"] not in apply_retention(tmp_path, everything, now=now).deleted
