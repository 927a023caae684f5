"""Writing a chain's outputs to a folder: images as ISMRMRD HDF5 plus PNG previews, side-output reports,
and provenance (effective chain, software version, device, input checksums) so any image can be redone.

Layout of ``OUT/``::

    images.h5                     ISMRMRD dataset "dataset", images grouped as image_<series>
    png/series<S>.png             one preview per series (plugins.io.previews): a volume's orthogonal mid-slices
                                  and MIP, a time series' slices × frames grid, with colour bar and units
    png/series<S>.gif             the frames of a time series as an animation
    <report files>                e.g. flow_report.json
    provenance.json               how to reproduce all of the above
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import ismrmrd
import numpy as np

from plugins.io.ismrmrd_files import append_to_dataset, header_to_xml
from plugins.io.previews import write_series_preview
from plugins.runtime.items import Report

log = logging.getLogger(__name__)


def software_version() -> str:
    """The installed reconstream version (``unknown`` when run from a bare source tree)."""
    try:
        return version("reconstream")
    except PackageNotFoundError:
        return "unknown"


def sha256_of(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


class OutputWriter:
    """Collects a run's outputs in ``out_dir``; call :meth:`write` per item and :meth:`close` at the end."""

    def __init__(self, out_dir: Path, header: Any = None) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._dataset: ismrmrd.Dataset | None = None
        self._header = header
        self._previews: dict[int, list[ismrmrd.Image]] = defaultdict(list)
        self.n_images = 0
        self.reports: list[str] = []
        self.other: list[str] = []

    def write(self, item: Any) -> None:
        """Store one output item (image, report; anything else is listed in provenance as unhandled)."""
        if isinstance(item, ismrmrd.Image):
            self._store_image(item)
        elif isinstance(item, Report):
            if item.filename in self.reports:
                log.warning("report %s written twice: the second replaces the first", item.filename)
            (self.out_dir / item.filename).write_bytes(item.content)
            self.reports.append(item.filename)
        else:
            self.other.append(type(item).__name__)

    def _store_image(self, image: ismrmrd.Image) -> None:
        if self._dataset is None:
            path = self.out_dir / "images.h5"
            if path.exists():
                path.unlink()
            self._dataset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
            if self._header is not None:
                self._dataset.write_xml_header(header_to_xml(self._header).encode("utf-8"))
        append_to_dataset(self._dataset, image)
        self._previews[int(image.image_series_index)].append(image)
        self.n_images += 1

    def close(self) -> list[Path]:
        """Flush the HDF5 file and write the PNG/GIF previews; returns the preview paths."""
        if self._dataset is not None:
            self._dataset.close()
            self._dataset = None
        written: list[Path] = []
        for series, images in sorted(self._previews.items()):
            written += write_series_preview(images, self.out_dir / "png", series)
        return written


def write_provenance(
    out_dir: Path,
    chain_toml: str,
    chain_name: str,
    device: str,
    inputs: Sequence[Path],
    stage_stats: Sequence[dict[str, Any]],
    outputs: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Path:
    """``provenance.json`` (+ ``chain.effective.toml``) beside the outputs; ``extra`` adds top-level records
    (e.g. the server session of ``reconstream send``)."""
    (out_dir / "chain.effective.toml").write_text(chain_toml, encoding="utf-8")
    record = {
        "software": {
            "reconstream": software_version(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": _torch_version(),
            "ismrmrd": _pkg_version("ismrmrd"),
        },
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "chain": chain_name,
        "effective_chain_file": "chain.effective.toml",
        "device": device,
        "inputs": [{"path": str(p), "sha256": sha256_of(p), "bytes": p.stat().st_size} for p in inputs],
        "stage_timing": list(stage_stats),
        "outputs": outputs,
        **(extra or {}),
    }
    path = out_dir / "provenance.json"
    path.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    return path


def _pkg_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _torch_version() -> str:
    import torch

    return str(torch.__version__)


def annotate_images(path: Path, meta: dict[str, str]) -> int:
    """Add ``meta`` (name → value) to the metadata of every image in the ISMRMRD file ``path`` (rewritten
    in place, atomically); returns the number of images.  Used to mark the images of an interrupted input."""
    path = Path(path)
    if not path.is_file():
        return 0
    source = ismrmrd.Dataset(str(path), "dataset", create_if_needed=False)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    target = ismrmrd.Dataset(str(tmp), "dataset", create_if_needed=True)
    n = 0
    try:
        try:
            target.write_xml_header(source.read_xml_header())
        except (KeyError, LookupError, OSError):  # a file of images may have no header
            pass
        for group in sorted(g for g in source.list() if g.startswith("image_")):
            for index in range(source.number_of_images(group)):
                image = source.read_image(group, index)
                fields = (
                    ismrmrd.Meta.deserialize(image.attribute_string)
                    if image.attribute_string
                    else ismrmrd.Meta()
                )
                for key, value in meta.items():
                    fields[key] = value
                image.attribute_string = fields.serialize()
                target.append_image(group, image)
                n += 1
    finally:
        source.close()
        target.close()
    tmp.replace(path)
    return n
