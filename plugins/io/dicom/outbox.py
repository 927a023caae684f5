"""A durable on-disk outbox of DICOM instances waiting for delivery, one folder per destination.

Layout of ``OUTBOX/``::

    <AE>@<host>_<port>/destination.json          where this folder's instances go
    <AE>@<host>_<port>/<StudyUID>/<SOPUID>.dcm    one file per instance, removed only after a C-STORE success

Each file is written under a temporary name, fsync'ed, renamed into place and its folder fsync'ed, so a
crash leaves either the whole instance or nothing; the outbox survives a restart and a redelivery of the
same instance (same deterministic SOP Instance UID) replaces the queued file instead of adding one.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

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
        """Remove queued instances older than ``older_than_s``; returns how many."""
        n = 0
        for destination in self.destinations():
            for item in self.pending(destination):
                if item.age_s > older_than_s:
                    self.remove(item)
                    n += 1
        return n
