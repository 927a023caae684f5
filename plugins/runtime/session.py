"""Running a chain over input files into an output folder (what ``reconstream run`` and ``demo`` do)."""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugins.io.ismrmrd_files import RawInput, open_raw
from plugins.io.outputs import OutputWriter, write_provenance
from plugins.runtime.chain import ChainSpec
from plugins.runtime.executor import LOCAL, Executor
from plugins.runtime.items import IncompleteUnit, StreamInterrupted
from plugins.runtime.pipeline import Pipeline
from plugins.runtime.plugin import ChainContext
from recon.common.device import resolve_device

log = logging.getLogger("reconstream.session")


@dataclass(frozen=True)
class RunSummary:
    """What a run produced: counts, files and per-stage timing."""

    out_dir: Path
    n_images: int
    reports: tuple[str, ...]
    previews: tuple[Path, ...]
    stage_stats: tuple[dict[str, Any], ...]
    device: str
    warnings: tuple[str, ...] = ()
    interrupted: str | None = None
    incomplete: tuple[dict[str, Any], ...] = ()


class NothingAccepted(ValueError):
    """No stage of the chain handled any input item (wrong chain for these data)."""


def is_petsird_file(path: Path) -> bool:
    """PETSIRD files: the yardl binary encoding with a schema of protocol ``PETSIRD`` (read from its content)."""
    from plugins.io.formats import detect_format

    try:
        return detect_format(path).kind == "petsird"
    except ValueError:
        return False


def open_input(path: Path) -> RawInput:
    """Open one input file, its format recognised by its content (:mod:`plugins.io.formats`): MR raw data
    (ISMRMRD v1 HDF5 or stream, MRD v2, Siemens twix) or PETSIRD list mode.

    For PETSIRD the header is the ``petsird.Header`` and the items are ``ListModeBatch``es.  An image file
    holding a 511 keV μ-map (ISMRMRD images or NIfTI, :mod:`plugins.io.mumap_files`) has no header and no
    items: its map reaches the PET reconstruction as ``extras["pet_mu_map"]``.  A ``flow_report.json`` of
    the same session likewise reaches the cine function analysis as ``extras["flow_report"]``.
    """
    from plugins.io.formats import detect_format
    from plugins.io.mumap_files import is_mumap_file, read_mumap

    if Path(path).suffix.lower() == ".json":  # a flow report of the same session (cine-function)
        import json

        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not (isinstance(data, dict) and "vessels" in data):
            raise ValueError(f"{path}: a JSON input must be a flow report (flow_report.json with 'vessels')")
        return RawInput(path=Path(path), header=None, items=iter(()), extras={"flow_report": data})
    if is_mumap_file(Path(path)):
        return RawInput(path=Path(path), header=None, items=iter(()), extras={"pet_mu_map": read_mumap(path)})
    if detect_format(path).kind != "petsird":
        return open_raw(path)
    from plugins.io.petsird_io import acquisition_info_from_petsird, read_petsird

    scanner, batches, header = read_petsird(path)
    info = acquisition_info_from_petsird(header, scanner, batches)
    return RawInput(
        path=Path(path), header=header, items=iter(batches), extras={"pet_acquisition_info": info}
    )


def combined_inputs(paths: Sequence[Path]) -> tuple[Any, dict[str, Any], Iterator[Any]]:
    """Open every input; returns the first MR header, extras from the others, and all items in input order."""
    opened = [open_input(Path(p)) for p in paths]
    mr_headers = [o.header for o in opened if _is_mr_header(o.header)]
    extras = {f"header_{i}": o.header for i, o in enumerate(opened) if not _is_mr_header(o.header)}
    for o in opened:
        extras.update(o.extras)
    return (
        (mr_headers[0] if mr_headers else None),
        extras,
        itertools.chain.from_iterable(o.items for o in opened),
    )


def _is_mr_header(header: Any) -> bool:
    import ismrmrd.xsd

    return isinstance(header, ismrmrd.xsd.ismrmrdHeader)


def run_to_folder(
    chain: ChainSpec,
    items: Iterable[Any],
    out_dir: Path,
    header: Any = None,
    device: str = "auto",
    inputs: Sequence[Path] = (),
    extras: dict[str, Any] | None = None,
    progress: bool = False,
    executor: Executor = LOCAL,
) -> RunSummary:
    """Run ``chain`` over ``items`` and write images, previews, reports and provenance to ``out_dir``;
    the chain's units run on ``executor`` (default: in this process)."""
    torch_device = resolve_device(device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    context = ChainContext(
        chain_name=chain.name,
        device=torch_device,
        header=header,
        out_dir=out_dir,
        extras=extras or {},
        executor=executor,
    )
    pipeline = Pipeline(chain, context)
    writer = OutputWriter(out_dir, header)
    seen: Counter[str] = Counter()
    outputs = pipeline.run(_counted(items, seen))
    if progress:
        from tqdm import tqdm

        outputs = tqdm(outputs, desc=f"{chain.name}: outputs", unit="item")
    warnings: list[str] = []
    interrupted: StreamInterrupted | None = None
    incomplete: list[dict[str, Any]] = []
    try:
        for item in outputs:
            if isinstance(item, StreamInterrupted):
                interrupted = item
            elif isinstance(item, IncompleteUnit):
                incomplete.append(item.as_dict())
            else:
                writer.write(item)
            for warning in quality_warnings(item):
                if warning not in warnings:
                    warnings.append(warning)
    finally:
        previews = writer.close()
    check_something_accepted(chain, pipeline, seen)
    if interrupted is not None:
        _record_interruption(out_dir, interrupted, incomplete)
    stats = tuple(s.summary() for s in pipeline.stats)
    write_provenance(
        out_dir,
        chain.effective_toml(),
        chain.name,
        str(torch_device),
        list(inputs),
        stats,
        {
            "n_images": writer.n_images,
            "reports": writer.reports,
            "previews": [p.name for p in previews],
            "unhandled_outputs": writer.other,
            "quality_warnings": warnings,
            "interrupted": None if interrupted is None else interrupted.reason,
            "incomplete_units": incomplete,
        },
    )
    log.info("%s: %d images written to %s", chain.name, writer.n_images, out_dir)
    return RunSummary(
        out_dir,
        writer.n_images,
        tuple(writer.reports),
        tuple(previews),
        stats,
        str(torch_device),
        tuple(warnings),
        None if interrupted is None else interrupted.reason,
        tuple(incomplete),
    )


def _counted(items: Iterable[Any], seen: Counter[str]) -> Iterator[Any]:
    """The items, counting them by type name into ``seen``."""
    for item in items:
        seen[type(item).__name__] += 1
        yield item


def check_something_accepted(chain: ChainSpec, pipeline: Pipeline, seen: Counter[str]) -> None:
    """Raise :class:`NothingAccepted` when items arrived but no stage handled a single one."""
    data = {k: v for k, v in seen.items() if k not in ("StreamInterrupted",)}
    if not data or any(plugin.n_accepted for plugin in pipeline.plugins):
        return
    arrived = ", ".join(f"{name} ×{n}" for name, n in sorted(data.items()))
    accepted = sorted(
        {t.__name__ for s in chain.stages for t in s.plugin_class.accepts} - {"StreamInterrupted"}
    )
    raise NothingAccepted(
        f"chain {chain.name!r}: no stage accepted any input item (arrived: {arrived}; the chain accepts "
        f"{', '.join(accepted) or 'nothing'}): wrong chain for these data?"
    )


def _record_interruption(
    out_dir: Path, interrupted: StreamInterrupted, incomplete: list[dict[str, Any]]
) -> None:
    """``incomplete.json`` and a ``StreamInterrupted`` note in every image's metadata."""
    import json

    from plugins.io.outputs import annotate_images

    note = {
        "interrupted": interrupted.reason,
        "complete_messages": interrupted.n_messages,
        "incomplete_units": incomplete,
    }
    (out_dir / "incomplete.json").write_text(json.dumps(note, indent=2), encoding="utf-8")
    units = "; ".join(f"{u['kind']} {u['index']}" for u in incomplete) or "none"
    annotate_images(
        out_dir / "images.h5",
        {"StreamInterrupted": interrupted.reason[:300], "IncompleteUnits": units},
    )
    log.warning("the input was interrupted (%s); incomplete units: %s", interrupted.reason, units)


def quality_warnings(item: Any) -> list[str]:
    """The ``QualityWarning`` metadata of an output image, each prefixed with its series (else none)."""
    import ismrmrd

    if not isinstance(item, ismrmrd.Image) or not item.attribute_string:
        return []
    values = ismrmrd.Meta.deserialize(item.attribute_string).get("QualityWarning")
    if values is None:
        return []
    values = values if isinstance(values, list) else [values]
    return [f"series {int(item.image_series_index)}: {value}" for value in values]
