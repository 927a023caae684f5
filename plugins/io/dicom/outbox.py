"""A durable on-disk outbox of DICOM instances waiting for delivery, one folder per destination.

Layout of ``OUTBOX/``::

    <AE>@<host>_<port>/destination.json          where this folder's instances go
    <AE>@<host>_<port>/<StudyUID>/<SOPUID>.dcm    one file per instance, removed only after a C-STORE success
    <AE>@<host>_<port>/_studies/<StudyUID>.json   the study's delivery state (see :class:`StudyStatus`)
    <AE>@<host>_<port>/status.json                last success and last failure at this destination

Each file is written under a temporary name, fsync'ed, renamed into place and its folder fsync'ed, so a
crash leaves either the whole instance or nothing; the outbox survives a restart and a redelivery of the
same instance (same deterministic SOP Instance UID) replaces the queued file instead of adding one.

A study is ``pending`` from the moment instances are queued for it until a C-FIND at the destination
reports at least as many instances as were ever queued for it (the union of SOP Instance UIDs, so two
sessions adding series to one study count together); then ``delivered``.  ``failed``: the PACS reports
fewer once nothing of the study is left to send, or queued instances were purged unsent.  The status
files are read-modified-written under an ``flock`` so the server's sessions and its worker thread (or a
``run`` and a ``serve`` sharing an outbox) do not lose each other's updates.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class DicomDestination(BaseModel):
    """A DICOM node that accepts C-STORE (and C-FIND for verification)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ae_title: str = Field(min_length=1, max_length=16, description="the destination's AE title")
    host: str = Field(min_length=1, description="host name or IP address")
    port: int = Field(ge=1, le=65535, description="DICOM port")
    calling_ae_title: str = Field(default="RECONSTREAM", min_length=1, max_length=16)
    tls: bool = Field(default=False, description="DICOM over TLS; never falls back to plain TCP")
    tls_ca_file: str | None = Field(default=None, description="PEM CA bundle for the PACS (default: system)")
    tls_cert_file: str | None = Field(default=None, description="PEM client certificate, when the PACS asks")
    tls_key_file: str | None = Field(default=None, description="PEM private key of tls_cert_file")

    @property
    def label(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"

    @property
    def folder_name(self) -> str:
        return f"{self.ae_title}@{self.host}_{self.port}"

    @classmethod
    def parse(cls, text: str) -> DicomDestination:
        """``AE@HOST:PORT`` → destination; ``ValueError`` naming the text when malformed."""
        try:
            ae, rest = text.split("@", 1)
            host, port = rest.rsplit(":", 1)
            return cls(ae_title=ae, host=host, port=int(port))
        except ValueError as exc:
            raise ValueError(f"destination {text!r}: expected AE@HOST:PORT ({exc})") from None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_json(path: Path, record: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.part")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


STUDY_STATES = ("pending", "delivered", "failed")


@dataclass(frozen=True)
class StudyStatus:
    """A study's delivery state at one destination: ``expected`` instances queued for it so far (all
    sessions), ``stored`` the count the PACS last reported by C-FIND (``None`` before any check)."""

    study_uid: str
    state: str
    expected: int
    stored: int | None
    updated_utc: str
    message: str


@dataclass(frozen=True)
class QueuedInstance:
    """One file waiting in the outbox; ``age_s``: seconds since it was queued."""

    path: Path
    study_uid: str
    sop_uid: str
    age_s: float


class Outbox:
    """The outbox folder ``root`` (created when missing)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def folder(self, destination: DicomDestination) -> Path:
        """The destination's folder; its ``destination.json`` follows the latest settings (e.g. TLS)."""
        folder = self.root / destination.folder_name
        config = folder / "destination.json"
        text = destination.model_dump_json()
        if not config.is_file() or config.read_text(encoding="utf-8") != text:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / ".destination.json.part"
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, config)
        return folder

    def destinations(self) -> list[DicomDestination]:
        """Every destination with a folder in the outbox."""
        out = []
        for config in sorted(self.root.glob("*/destination.json")):
            out.append(DicomDestination.model_validate_json(config.read_text(encoding="utf-8")))
        return out

    def put(self, destination: DicomDestination, source: Path, study_uid: str, sop_uid: str) -> Path:
        """Copy the DICOM file ``source`` into the outbox durably (write, fsync, rename, fsync the folder)."""
        folder = self.folder(destination) / study_uid
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{sop_uid}.dcm"
        tmp = folder / f".{sop_uid}.part"
        with source.open("rb") as src, tmp.open("wb") as dst:
            shutil.copyfileobj(src, dst)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, final)
        _fsync_dir(folder)
        return final

    def pending(self, destination: DicomDestination) -> list[QueuedInstance]:
        """The instances still queued for ``destination``, oldest first."""
        folder = self.root / destination.folder_name
        now = time.time()
        items = [
            QueuedInstance(p, p.parent.name, p.stem, now - p.stat().st_mtime) for p in folder.glob("*/*.dcm")
        ]
        return sorted(items, key=lambda q: -q.age_s)

    def remove(self, item: QueuedInstance) -> None:
        """Drop a delivered instance (and its study folder once empty)."""
        item.path.unlink(missing_ok=True)
        _fsync_dir(item.path.parent)
        if not any(item.path.parent.iterdir()):
            item.path.parent.rmdir()

    def purge(self, older_than_s: float) -> int:
        """Remove queued instances older than ``older_than_s``; returns how many (their studies are marked
        ``failed``: they can no longer be complete at the destination)."""
        n = 0
        for destination in self.destinations():
            purged: dict[str, int] = {}
            for item in self.pending(destination):
                if item.age_s > older_than_s:
                    self.remove(item)
                    purged[item.study_uid] = purged.get(item.study_uid, 0) + 1
                    n += 1
            for study, k in purged.items():
                self.set_study_state(destination, study, "failed", None, f"{k} instances purged unsent")
        return n

    # -- delivery state per study and per destination -------------------------------------------------

    @contextmanager
    def _locked(self, destination: DicomDestination) -> Iterator[Path]:
        folder = self.folder(destination) / "_studies"
        folder.mkdir(exist_ok=True)
        with (folder / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield folder
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        return dict(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else {}

    def record_queued(self, destination: DicomDestination, study_uid: str, sop_uids: Iterable[str]) -> None:
        """Note that ``sop_uids`` were queued for ``study_uid`` (after :meth:`put`): the study is
        ``pending`` until a C-FIND reports all of its instances."""
        with self._locked(destination) as folder:
            path = folder / f"{study_uid}.json"
            record = self._read(path)
            sops = sorted(set(record.get("sop_uids", [])) | set(sop_uids))
            record.update(
                study_uid=study_uid, state="pending", sop_uids=sops, expected=len(sops),
                updated_utc=utc_now(), message=f"{len(sops)} instances queued",
            )  # fmt: skip
            record.setdefault("stored", None)
            _write_json(path, record)

    def set_study_state(
        self, destination: DicomDestination, study_uid: str, state: str, stored: int | None, message: str
    ) -> None:
        if state not in STUDY_STATES:
            raise ValueError(f"study state {state!r}: expected one of {STUDY_STATES}")
        with self._locked(destination) as folder:
            path = folder / f"{study_uid}.json"
            record = self._read(path)
            record.setdefault("sop_uids", [])
            record.setdefault("expected", 0)
            record.update(
                study_uid=study_uid, state=state, stored=stored, updated_utc=utc_now(), message=message
            )
            _write_json(path, record)

    def studies(self, destination: DicomDestination) -> list[StudyStatus]:
        """Every study with a delivery record at ``destination``, most recently updated last."""
        folder = self.root / destination.folder_name / "_studies"
        out = []
        for path in folder.glob("*.json"):
            r = self._read(path)
            out.append(
                StudyStatus(
                    r["study_uid"], r["state"], int(r["expected"]), r.get("stored"),
                    r["updated_utc"], r.get("message", ""),
                )
            )  # fmt: skip
        return sorted(out, key=lambda s: (s.updated_utc, s.study_uid))

    def study(self, destination: DicomDestination, study_uid: str) -> StudyStatus | None:
        return next((s for s in self.studies(destination) if s.study_uid == study_uid), None)

    def note_attempt(self, destination: DicomDestination, ok: bool, message: str) -> None:
        """Record the last success (``ok``) or failure at ``destination`` with its time and message."""
        with self._locked(destination):
            path = self.folder(destination) / "status.json"
            record = self._read(path)
            kind = "success" if ok else "failure"
            record[f"last_{kind}_utc"], record[f"last_{kind}"] = utc_now(), message
            _write_json(path, record)

    def destination_status(self, destination: DicomDestination) -> dict[str, str]:
        """``last_success_utc``/``last_success``/``last_failure_utc``/``last_failure`` (those known)."""
        return {k: str(v) for k, v in self._read(self.root / destination.folder_name / "status.json").items()}
