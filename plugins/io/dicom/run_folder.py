"""Reading a finished run folder (``images.h5``, ``provenance.json``, beats reports) for export."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ismrmrd

from plugins.io.ismrmrd_files import parse_header


@dataclass(frozen=True)
class RunContents:
    """A run's images and what identifies it.

    ``rr_ms_by_slice``: median RR interval (ms) per slice from ``cine_beats_slice*.json`` (set 0).
    """

    run_dir: Path
    header: Any
    images: list[ismrmrd.Image]
    chain: str
    created_utc: str
    session_key: str
    rr_ms_by_slice: dict[int, float]


def _mtime_utc(path: Path) -> str:
    """ISO 8601 UTC modification time of ``path`` (dates a study when nothing else does)."""
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")


def session_key(provenance: dict[str, Any], header: Any, run_dir: Path) -> str:
    """Provenance's ``session_key`` (a server session), else the first raw input's SHA-256, else the
    header's ``measurementID``, else the folder name."""
    if provenance.get("session_key"):
        return str(provenance["session_key"])
    inputs = provenance.get("inputs") or []
    if inputs and inputs[0].get("sha256"):
        return f"sha256:{inputs[0]['sha256']}"
    meas = getattr(getattr(header, "measurementInformation", None), "measurementID", None)
    return str(meas) if meas else f"run:{run_dir.resolve().name}"


def read_run(run_dir: Path) -> RunContents:
    """Load ``run_dir``; raises ``FileNotFoundError`` naming the folder when it holds no ``images.h5``."""
    run_dir = Path(run_dir)
    path = run_dir / "images.h5"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no images.h5 (not a reconstream run folder, or no images)")
    dset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=False)
    try:
        groups = [g for g in dset.list() if g.startswith("image")]
        header = None
        if "xml" in dset.list():
            header = parse_header(dset.read_xml_header(), source=str(path))
        images = [dset.read_image(g, i) for g in groups for i in range(dset.number_of_images(g))]
    finally:
        dset.close()
    provenance: dict[str, Any] = {}
    if (run_dir / "provenance.json").is_file():
        provenance = json.loads((run_dir / "provenance.json").read_text(encoding="utf-8"))
    rr: dict[int, float] = {}
    for beats in sorted(run_dir.glob("cine_beats_slice*.json")):
        if not re.fullmatch(r"cine_beats_slice\d+\.json", beats.name):
            continue
        record = json.loads(beats.read_text(encoding="utf-8"))
        if record.get("median_rr_ms"):
            rr[int(record["slice"])] = float(record["median_rr_ms"])
    return RunContents(
        run_dir,
        header,
        images,
        str(provenance.get("chain") or "reconstream"),
        str(provenance.get("created_utc") or _mtime_utc(path)),
        session_key(provenance, header, run_dir),
        rr,
    )
