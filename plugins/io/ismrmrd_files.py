"""ISMRMRD HDF5 datasets and ISMRMRD stream files (the binary streaming protocol written to a file).

Both readers return the XML header (``ismrmrd.xsd.ismrmrdHeader``) and a lazy iterator of items in
acquisition order.  In an HDF5 dataset acquisitions and waveforms live in separate tables; the reader
merges them by time stamp (2.5 ms ticks), acquisitions first at equal times, as a scanner streams them.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ismrmrd
import ismrmrd.xsd

STREAM_SUFFIXES = (".bin", ".mrd", ".stream", ".ismrmrd")
HDF5_SUFFIXES = (".h5", ".hdf5", ".mrd2")


class InputFormatError(ValueError):
    """An input file is not what its name says or is malformed; the message names the file."""


@dataclass(frozen=True)
class RawInput:
    """An opened raw-data input: its path, header and a one-shot iterator over its items."""

    path: Path
    header: Any
    items: Iterator[Any]


def parse_header(xml: bytes | str, source: str = "header") -> Any:
    """Parse ISMRMRD XML (UTF-8, non-ASCII names included) into an ``ismrmrdHeader``."""
    text = xml.decode("utf-8") if isinstance(xml, bytes | bytearray) else xml
    if text.startswith("<?xml"):
        text = text[text.index("?>") + 2 :]  # the declaration may claim ASCII while the bytes are UTF-8
    try:
        return ismrmrd.xsd.CreateFromDocument(text)
    except Exception as exc:  # the xsdata parser raises several unrelated types
        raise InputFormatError(f"{source}: invalid ISMRMRD XML header: {type(exc).__name__}: {exc}") from exc


def header_to_xml(header: Any) -> str:
    """Serialise a header as UTF-8-declared XML (``toXML`` declares ASCII but writes UTF-8)."""
    return str(ismrmrd.xsd.ToXML(header, encoding="utf-8"))


def read_hdf5(path: str | Path, group: str = "dataset") -> RawInput:
    """Open an ISMRMRD HDF5 dataset: header plus acquisitions and waveforms merged in time order."""
    path = Path(path)
    if not path.is_file():
        raise InputFormatError(f"{path}: no such file")
    try:
        dset = ismrmrd.Dataset(str(path), group, create_if_needed=False)
        xml = dset.read_xml_header()
    except (OSError, LookupError, KeyError) as exc:
        raise InputFormatError(f"{path}: not an ISMRMRD HDF5 dataset with group {group!r}: {exc}") from exc
    header = parse_header(xml, str(path))
    return RawInput(path=path, header=header, items=_merged_items(dset))


def _merged_items(dset: ismrmrd.Dataset) -> Iterator[Any]:
    try:
        n_acq = dset.number_of_acquisitions()
    except (LookupError, KeyError):
        n_acq = 0
    try:
        n_wav = dset.number_of_waveforms()
    except (LookupError, KeyError):
        n_wav = 0

    def acquisitions() -> Iterator[tuple[int, int, int, Any]]:
        for i in range(n_acq):
            acq = dset.read_acquisition(i)
            yield (int(acq.acquisition_time_stamp), 0, i, acq)

    def waveforms() -> Iterator[tuple[int, int, int, Any]]:
        for i in range(n_wav):
            wav = dset.read_waveform(i)
            yield (int(wav.time_stamp), 1, i, wav)

    try:
        for _, _, _, item in heapq.merge(acquisitions(), waveforms(), key=lambda t: t[:3]):
            yield item
    finally:
        dset.close()


def write_hdf5(path: str | Path, header: Any, items: Iterable[Any], group: str = "dataset") -> int:
    """Write a header and acquisitions/waveforms/images to an ISMRMRD HDF5 dataset; returns the item count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    dset = ismrmrd.Dataset(str(path), group, create_if_needed=True)
    n = 0
    try:
        dset.write_xml_header(header_to_xml(header).encode("utf-8"))
        for item in items:
            append_to_dataset(dset, item)
            n += 1
    finally:
        dset.close()
    return n


def append_to_dataset(dset: ismrmrd.Dataset, item: Any) -> None:
    """Append one acquisition, waveform or image (images go to ``image_<series>``)."""
    if isinstance(item, ismrmrd.Acquisition):
        dset.append_acquisition(item)
    elif isinstance(item, ismrmrd.Waveform):
        dset.append_waveform(item)
    elif isinstance(item, ismrmrd.Image):
        dset.append_image(f"image_{item.image_series_index}", item)
    else:
        raise TypeError(f"cannot store {type(item).__name__} in an ISMRMRD dataset")


def read_stream(path: str | Path) -> RawInput:
    """Open an ISMRMRD stream file; the header must come before the first data item.

    Config messages are skipped; a missing CLOSE at the end (a truncated recording) is tolerated.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFormatError(f"{path}: no such file")
    fh = path.open("rb")
    items = _stream_items(fh, path)
    try:
        first = next(items)
    except StopIteration:
        fh.close()
        raise InputFormatError(f"{path}: empty stream (no header)") from None
    if not isinstance(first, ismrmrd.xsd.ismrmrdHeader):
        fh.close()
        raise InputFormatError(
            f"{path}: the stream's first data message is {type(first).__name__}, not a header"
        )
    return RawInput(path=path, header=first, items=items)


def _stream_items(fh: Any, path: Path) -> Iterator[Any]:
    from plugins.io.protocol import (
        Close,
        ConfigFile,
        ConfigText,
        MessageReader,
        ProtocolError,
        StreamClosed,
        exact_reader,
    )

    reader = MessageReader(exact_reader(fh.read))
    try:
        while True:
            _, obj = reader.next_message()
            if isinstance(obj, Close):
                return
            if not isinstance(obj, ConfigFile | ConfigText):
                yield obj
    except StreamClosed as exc:
        if "between messages" not in str(exc):
            raise InputFormatError(f"{path}: truncated ISMRMRD stream: {exc}") from exc
    except ProtocolError as exc:
        raise InputFormatError(f"{path}: malformed ISMRMRD stream: {exc}") from exc
    finally:
        fh.close()


def write_stream(path: str | Path, header: Any, items: Iterable[Any]) -> int:
    """Write header + items + CLOSE as an ISMRMRD stream file; returns the item count."""
    from plugins.io.protocol import Close, encode_message

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("wb") as fh:
        fh.write(encode_message(header))
        for item in items:
            fh.write(encode_message(item))
            n += 1
        fh.write(encode_message(Close()))
    return n


def open_raw(path: str | Path) -> RawInput:
    """Open an ISMRMRD input by its suffix (HDF5: .h5/.hdf5; stream: .bin/.mrd/.stream/.ismrmrd)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        return read_hdf5(path)
    if suffix in STREAM_SUFFIXES:
        return read_stream(path)
    raise InputFormatError(
        f"{path}: unknown input type {suffix!r}; ISMRMRD HDF5 uses {', '.join(HDF5_SUFFIXES)}, "
        f"ISMRMRD stream files {', '.join(STREAM_SUFFIXES)}"
    )


def write_raw(path: str | Path, header: Any, items: Iterable[Any]) -> int:
    """Write raw data to HDF5 or a stream file, chosen by the suffix as in :func:`open_raw`."""
    suffix = Path(path).suffix.lower()
    if suffix in HDF5_SUFFIXES:
        return write_hdf5(path, header, items)
    if suffix in STREAM_SUFFIXES:
        return write_stream(path, header, items)
    raise InputFormatError(f"{path}: unknown output type {suffix!r}")
