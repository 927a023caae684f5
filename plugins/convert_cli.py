"""``reconstream convert``: raw data between Siemens twix, ISMRMRD v1 and MRD v2, read and written lazily.

    reconstream convert twix FILE.dat --out FILE.h5 [--measurement N|all]
    reconstream convert mrd2 FILE.mrd --out FILE.h5            MRD v2 → ISMRMRD v1
    reconstream convert ismrmrd FILE.h5 --out FILE.mrd         ISMRMRD v1 → MRD v2 (``--to mrd2``, the default here)

The ISMRMRD v1 output is HDF5 or a stream file by its suffix (:func:`plugins.io.ismrmrd_files.write_raw`).
A file cut inside an item converts every complete item before the cut, then says where the cut is and
exits with status 6 (as ``run`` does for partial inputs).  What a twix file holds that is not converted is
printed (``plugins.io.twix_header.NOT_CONVERTED``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

EXIT_PARTIAL = 6
_SOURCES = {"twix": "twix", "mrd2": "mrd2", "ismrmrd": ("ismrmrd-hdf5", "ismrmrd-stream")}


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "source", choices=sorted(_SOURCES), help="the input's format (checked against its content)"
    )
    p.add_argument("input", help="the raw-data file to convert")
    p.add_argument("--out", required=True, help="output file")
    p.add_argument(
        "--to",
        choices=["ismrmrd", "mrd2"],
        default=None,
        help="output format (default: mrd2 for an ISMRMRD input, else ismrmrd)",
    )
    p.add_argument(
        "--measurement",
        default="-1",
        help="twix: which measurement of a multi-raid file (default -1, the last; 'all': each to OUT_meas<k>)",
    )


def main(args: argparse.Namespace) -> int:
    from plugins.io.formats import detect_format

    path = Path(args.input)
    fmt = detect_format(path)
    expected = _SOURCES[args.source]
    if fmt.kind not in (expected if isinstance(expected, tuple) else (expected,)):
        raise ValueError(f"{path}: given as {args.source}, but it looks like {fmt.description}")
    target = args.to or ("mrd2" if args.source == "ismrmrd" else "ismrmrd")
    if args.source != "twix":
        if args.measurement != "-1":
            raise ValueError("--measurement applies to twix inputs only")
        from plugins.io.ismrmrd_files import open_raw

        return _convert(open_raw(path), Path(args.out), target)
    return _convert_twix(path, Path(args.out), target, args.measurement)


def _convert_twix(path: Path, out: Path, target: str, measurement: str) -> int:
    from plugins.io.twix_files import open_twix, read_twix_input
    from plugins.io.twix_header import NOT_CONVERTED

    for line in NOT_CONVERTED:
        print(f"not converted: {line}")
    if measurement != "all":
        try:
            index = int(measurement)
        except ValueError:
            raise ValueError(f"--measurement {measurement!r}: give an integer or 'all'") from None
        return _convert(read_twix_input(path, index), out, target)
    reader = open_twix(path)
    n_meas = len(reader.all_measurements)
    reader.fh.close()
    status = 0
    for k in range(n_meas):
        status = _convert(read_twix_input(path, k), out.with_name(f"{out.stem}_meas{k}{out.suffix}"), target)
        if status:
            return status
    return status


def _convert(raw: Any, out: Path, target: str) -> int:
    from plugins.io.ismrmrd_files import write_raw
    from plugins.io.mrd2_files import write_mrd2

    cut: list[Any] = []
    items = _complete(raw.items, cut)
    n = write_mrd2(out, raw.header, items) if target == "mrd2" else write_raw(out, raw.header, items)
    kind = "MRD v2" if target == "mrd2" else "ISMRMRD v1"
    print(f"{raw.path} → {out} ({kind}): {n} items")
    if cut:
        print(
            f"reconstream convert: error: {cut[0].reason}; the {n} complete items before the cut were "
            f"converted to {out}",
            file=sys.stderr,
        )
        return EXIT_PARTIAL
    return 0


def _complete(items: Iterator[Any], cut: list[Any]) -> Iterator[Any]:
    """The items, without the end-of-input marker of a cut file (kept in ``cut``)."""
    from plugins.runtime.items import StreamInterrupted

    for item in items:
        if isinstance(item, StreamInterrupted):
            cut.append(item)
        else:
            yield item
