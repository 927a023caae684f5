"""MRD v2 binary streams (the ``ismrmrd/mrd`` project, yardl binary encoding) read and written lazily.

A stream is ``yardl`` magic, format version, schema JSON (protocol ``Mrd``), the optional header, then the
data items in blocks; a block count of 0 ends the stream.  :class:`Mrd2StreamReader` reads it from any
``read_some(n)`` (a file or a socket): items are decoded one at a time, never the whole stream, and the
byte offset after the last complete item is known (:attr:`Mrd2StreamReader.offset`), so a truncated or
corrupt stream is reported with the offset where it breaks.  Items are converted to ISMRMRD v1 objects
(:mod:`plugins.io.mrd2_items`) and the header to the v1 XML header (:mod:`plugins.io.mrd2_header`).
"""

from __future__ import annotations

import io
import logging
import struct
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import mrd
from mrd import _binary

from plugins.io.ismrmrd_files import InputFormatError, RawInput
from plugins.io.mrd2_header import header_v1_to_v2, header_v2_to_v1
from plugins.io.mrd2_items import UnsupportedItem, from_v2, to_v2

log = logging.getLogger("reconstream.io.mrd2")

MAGIC = b"yardl"
#: Largest array one item may announce (bytes); checked before allocating.
MAX_ARRAY_BYTES = 2 << 30
_WRITE_BATCH = 256


class Mrd2Error(ValueError):
    """A malformed or truncated MRD v2 stream; ``offset`` is the byte after the last complete item."""

    def __init__(self, message: str, offset: int, truncated: bool) -> None:
        super().__init__(message)
        self.offset = offset
        self.truncated = truncated


class _Source(io.RawIOBase):
    """A raw stream over ``read_some(n)`` (returns 1…n bytes, or b"" at the end) counting bytes read."""

    def __init__(self, read_some: Callable[[int], bytes]) -> None:
        self.read_some = read_some
        self.n_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        # a full read: yardl's large-array path needs every byte
        return self.readinto_some(view, len(view)) if len(view) else 0

    def readinto_some(self, view: memoryview, at_least: int) -> int:
        """Read at least ``at_least`` bytes (fewer only at the end) and whatever else one read gives."""
        filled = 0
        while filled < max(at_least, 1):
            chunk = self.read_some(len(view) - filled)
            if not chunk:
                break
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
        self.n_read += filled
        return filled


class _CodedInput(_binary.CodedInputStream):
    """yardl's input buffer, reading only what it needs (a socket never waits for a full 64 KiB)."""

    def __init__(self, source: _Source, max_array_bytes: int) -> None:
        super().__init__(io.BytesIO(b""))
        self.source = source
        self.max_array_bytes = max_array_bytes

    _last_read_count: int
    _offset: int

    def _fill_buffer(self, min_count: int = 0) -> None:
        remaining = self._last_read_count - self._offset
        if remaining > 0:
            self._buffer[:remaining] = self._buffer[self._offset : self._offset + remaining]
        need = max(min_count - remaining, 0)
        got = self.source.readinto_some(self._view[remaining:], need)
        self._last_read_count = remaining + got
        self._offset = 0
        self._at_end = self._last_read_count == 0
        if min_count > 0 and self._last_read_count < min_count:
            raise EOFError("Unexpected EOF")

    def read_view(self, count: int) -> memoryview:
        self._check(count)
        if count > len(self._buffer):
            return memoryview(self._read_large(count))
        return super().read_view(count)

    def read_bytearray(self, count: int) -> bytearray:
        self._check(count)
        if count > len(self._buffer):
            return self._read_large(count)
        return super().read_bytearray(count)

    def _read_large(self, count: int) -> bytearray:
        out = bytearray(count)
        remaining = self._last_read_count - self._offset
        out[:remaining] = self._view[self._offset : self._last_read_count]
        self._offset = self._last_read_count
        if self.source.readinto(memoryview(out)[remaining:]) < count - remaining:
            raise EOFError("Unexpected EOF")
        return out

    def _check(self, count: int) -> None:
        if count > self.max_array_bytes:
            raise ValueError(f"an array of {count} bytes exceeds the limit of {self.max_array_bytes}")

    @property
    def consumed(self) -> int:
        """Bytes of the stream decoded so far."""
        return self.source.n_read - (self._last_read_count - self._offset)


class Mrd2StreamReader(mrd.BinaryMrdReader):
    """An MRD v2 reader over ``read_some``; :attr:`offset` is the byte after the last complete item."""

    def __init__(self, read_some: Callable[[int], bytes], max_array_bytes: int = MAX_ARRAY_BYTES) -> None:
        mrd.MrdReaderBase.__init__(self)
        self._stream = _CodedInput(_Source(read_some), max_array_bytes)
        self.offset = 0
        try:
            if bytes(self._stream.read_view(len(MAGIC))) != MAGIC:
                raise Mrd2Error("not an MRD v2 stream (no 'yardl' magic bytes)", 0, truncated=False)
            (version,) = self._stream.read(struct.Struct("<i"))
            if version != _binary.CURRENT_BINARY_FORMAT_VERSION:
                raise Mrd2Error(f"yardl binary format version {version} is not 1", 5, truncated=False)
            schema = _binary.string_serializer.read(self._stream)
        except EOFError as exc:
            raise Mrd2Error("the stream ends inside its preamble", self._stream.consumed, True) from exc
        if schema != mrd.MrdReaderBase.schema:
            name = schema[:60].replace("\n", " ")
            raise Mrd2Error(f"a yardl stream of another protocol (schema {name!r}…)", 9, truncated=False)
        self.offset = self._stream.consumed

    def header_v1(self) -> Any:
        """The stream's header as an ISMRMRD v1 XML header (None when the stream has none)."""
        header = self._guarded(self.read_header, "the header")
        self.offset = self._stream.consumed
        return None if header is None else header_v2_to_v1(header)

    def items_v1(self) -> Iterator[Any]:
        """The data items as v1 objects; :class:`Mrd2Error` (with the offset) where the stream breaks."""
        data = iter(self.read_data())
        n = 0
        while True:
            item = self._guarded(lambda: next(data, None), f"item #{n + 1}")
            if item is None:
                return
            self.offset = self._stream.consumed
            n += 1
            try:
                yield from_v2(item)
            except UnsupportedItem as exc:
                raise Mrd2Error(f"item #{n}: {exc}", self.offset, truncated=False) from exc

    def _guarded(self, read: Callable[[], Any], what: str) -> Any:
        try:
            return read()
        except EOFError as exc:
            raise Mrd2Error(
                f"the stream ends inside {what} (last complete item ends at byte {self.offset})",
                self.offset,
                truncated=True,
            ) from exc
        except (ValueError, KeyError, TypeError, RuntimeError, OverflowError, UnicodeDecodeError) as exc:
            raise Mrd2Error(
                f"{what} after byte {self.offset} is malformed: {type(exc).__name__}: {exc}",
                self.offset,
                truncated=False,
            ) from exc


def read_mrd2(path: str | Path) -> RawInput:
    """Open an MRD v2 file lazily: the v1 header and an iterator over v1 items.

    A file that ends inside an item ends with a :class:`~plugins.runtime.items.StreamInterrupted` naming
    the byte offset (the complete items before it are data); a corrupt item is an
    :class:`~plugins.io.ismrmrd_files.InputFormatError` naming the file and the offset.
    """
    path = Path(path)
    fh = path.open("rb")
    try:
        reader = Mrd2StreamReader(fh.read)
        header = reader.header_v1()
    except Mrd2Error as exc:
        fh.close()
        raise InputFormatError(f"{path}: MRD v2 stream at byte {exc.offset}: {exc}") from exc
    if header is None:
        fh.close()
        raise InputFormatError(f"{path}: the MRD v2 stream has no header (the MR chains need one)")
    return RawInput(path=path, header=header, items=_FileItems(reader, fh, path))


class _FileItems:
    """The items of an MRD v2 file; the file is closed at the end, on an error, or when dropped unread."""

    def __init__(self, reader: Mrd2StreamReader, fh: BinaryIO, path: Path) -> None:
        self.fh, self.path = fh, path
        self._items = reader.items_v1()
        self.n = 0

    def __iter__(self) -> _FileItems:
        return self

    def __next__(self) -> Any:
        from plugins.runtime.items import StreamInterrupted

        if self.fh.closed:
            raise StopIteration
        try:
            item = next(self._items)
        except StopIteration:
            self.fh.close()
            raise
        except Mrd2Error as exc:
            self.fh.close()
            if not exc.truncated:
                raise InputFormatError(f"{self.path}: MRD v2 stream at byte {exc.offset}: {exc}") from exc
            return StreamInterrupted(
                f"{self.path.name}: the MRD v2 stream is cut at byte {exc.offset}: {exc}", self.n
            )
        self.n += 1
        return item

    def __del__(self) -> None:
        self.fh.close()


def write_mrd2(path: str | Path | BinaryIO, header: Any, items: Iterable[Any]) -> int:
    """Write a v1 header and v1 items (acquisitions, waveforms, images) as an MRD v2 stream; item count."""
    if isinstance(path, str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    writer = mrd.BinaryMrdWriter(str(path) if isinstance(path, str | Path) else path)
    n = 0
    try:
        writer.write_header(None if header is None else header_v1_to_v2(header))
        batch: list[Any] = []
        for item in items:
            batch.append(to_v2(item))
            n += 1
            if len(batch) >= _WRITE_BATCH:
                writer.write_data(batch)
                batch = []
        writer.write_data(batch)
    finally:
        writer.close()
    return n


def write_image_file(out_dir: Path, header: Any, name: str = "images.mrd") -> Path:
    """Write the images of a run folder (``OUT/images.h5``) as an MRD v2 stream ``OUT/<name>``."""
    import h5py
    import ismrmrd

    source = Path(out_dir) / "images.h5"
    target = Path(out_dir) / name

    def images() -> Iterator[Any]:
        if not source.is_file():
            return
        with h5py.File(source, "r") as fh:
            groups = sorted(k for k in fh.get("dataset", {}) if k.startswith("image_"))
        dset = ismrmrd.Dataset(str(source), "dataset", create_if_needed=False)
        try:
            for group in groups:
                for i in range(dset.number_of_images(group)):
                    yield dset.read_image(group, i)
        finally:
            dset.close()

    write_mrd2(target, header, images())
    return target
