"""The ISMRMRD streaming protocol (Gadgetron-compatible), read and written defensively.

Little-endian; each message is a ``uint16`` id followed by its payload (no overall length field).
Sizes announced inside a payload header are checked against :class:`ProtocolLimits` *before* any
allocation, so a corrupt or hostile message gives a :class:`ProtocolError` naming the message and the
field, never a huge allocation or a crash.

=====  =============  ==========================================================================
  id   name           payload
=====  =============  ==========================================================================
   1   CONFIG_FILE    1024 bytes, a NUL-terminated chain name (bytes after the first NUL ignored)
   2   CONFIG_TEXT    uint32 length + UTF-8 text (a chain in TOML)
   3   HEADER         uint32 length + ISMRMRD XML (UTF-8, whatever its declaration says)
   4   CLOSE          none
   5   TEXT           uint32 length + UTF-8 text
   6   QUERY          (Gadgetron) uint64 reserved + uint64 correlation id + uint64 length + text
   7   RESPONSE       (Gadgetron) uint64 correlation id + uint64 length + bytes
   8   ERROR          (Gadgetron) uint64 length + UTF-8 text
1008   ACQUISITION    340-byte header + float32 trajectory + complex64 [channels][samples]
1022   IMAGE          198-byte header + uint64 meta length + meta XML + pixels
1026   WAVEFORM       40-byte header + uint32 data [channels][samples]
1030   NDARRAY        uint16 dtype, uint16 version, uint16 ndim, uint64 dims[ndim], data
1100   PET_LISTMODE   uint64 length + a list-mode batch as :func:`recon.tof.listmode.encode_batch` writes it
=====  =============  ==========================================================================
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol

import ismrmrd
import numpy as np
from ismrmrd.serialization import get_data_type_from_dtype, get_dtype_from_data_type

from plugins.io.ismrmrd_files import header_to_xml, parse_header

ReadExactly = Callable[[int], bytes]

#: Seconds per tick of ISMRMRD time stamps (acquisition, waveform and physiology stamps) in this project,
#: as common vendor converters write them.
TICK_S = 2.5e-3


class MessageId(IntEnum):
    CONFIG_FILE = 1
    CONFIG_TEXT = 2
    HEADER = 3
    CLOSE = 4
    TEXT = 5
    QUERY = 6
    RESPONSE = 7
    ERROR = 8
    ACQUISITION = 1008
    IMAGE = 1022
    WAVEFORM = 1026
    NDARRAY = 1030
    PET_LISTMODE = 1100


class ProtocolError(ValueError):
    """A malformed message; the text names the message and what was wrong."""


class StreamClosed(EOFError):
    """The peer closed the connection (cleanly between messages, or in the middle of one)."""


@dataclass(frozen=True)
class ProtocolLimits:
    """Upper bounds checked before allocating (defaults are generous for clinical data)."""

    max_text_bytes: int = 64 << 20
    max_samples: int = 1 << 16
    max_channels: int = 1024
    max_trajectory_dimensions: int = 3
    max_payload_bytes: int = 2 << 30


@dataclass(frozen=True)
class ConfigFile:
    """CONFIG_FILE: the name of a chain (shipped or configured)."""

    name: str


@dataclass(frozen=True)
class ConfigText:
    """CONFIG_TEXT: a chain given inline as TOML."""

    text: str


@dataclass(frozen=True)
class Text:
    """TEXT (or Gadgetron ERROR, with ``is_error``)."""

    text: str
    is_error: bool = False


@dataclass(frozen=True)
class Close:
    """CLOSE."""


ReadIntoSome = Callable[[memoryview], int]


class ExactReader:
    """``read(n)`` that returns exactly n bytes or raises :class:`StreamClosed`, over a ``read_some(n)`` that
    may return short reads.  With ``readinto_some`` (fills the start of a buffer, returns how many bytes,
    0 at the end: ``socket.recv_into``) :attr:`into` fills a caller's buffer in place, so the decoders put a
    message's samples straight into their array instead of copying them through ``bytes``."""

    def __init__(self, read_some: Callable[[int], bytes], readinto_some: ReadIntoSome | None = None) -> None:
        self._read_some = read_some
        self._readinto_some = readinto_some
        self.into: Callable[[memoryview], None] | None = self._into if readinto_some is not None else None

    def __call__(self, n: int) -> bytes:
        chunks = []
        remaining = n
        while remaining > 0:
            chunk = self._read_some(remaining)
            if not chunk:
                raise StreamClosed(f"connection closed with {remaining} of {n} bytes missing")
            chunks.append(chunk)
            remaining -= len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _into(self, view: memoryview) -> None:
        assert self._readinto_some is not None
        done, n = 0, len(view)
        while done < n:
            got = self._readinto_some(view[done:])
            if not got:
                raise StreamClosed(f"connection closed with {n - done} of {n} bytes missing")
            done += got


def exact_reader(read: Callable[[int], bytes], readinto: ReadIntoSome | None = None) -> ExactReader:
    """Wrap a ``read(n)`` that may return short reads into one that returns exactly n bytes or raises
    (and, given ``readinto``, fills buffers in place: :class:`ExactReader`)."""
    return ExactReader(read, readinto)


class MessageSource(Protocol):
    """What reads protocol messages: :class:`MessageReader` (ISMRMRD v1), or
    :class:`plugins.io.mrd2_protocol.AnyProtocolReader` (v1 or MRD v2, detected from the first bytes)."""

    limits: ProtocolLimits
    gate: Callable[[int], None] | None

    @property
    def n_messages(self) -> int: ...

    def next_message(self) -> tuple[int, Any]: ...


class MessageReader:
    """Reads one message at a time from ``read_exactly``; returns decoded objects.

    ``gate`` (optional) is called with each message id before its payload is read; it raises (e.g. a
    :class:`ProtocolError`) to refuse a message the session does not allow in its current state, so a
    refused message is never read into memory.  ``limits`` may be replaced between messages.
    """

    def __init__(
        self,
        read_exactly: ReadExactly,
        limits: ProtocolLimits | None = None,
        gate: Callable[[int], None] | None = None,
    ) -> None:
        self.read = read_exactly
        #: fills a buffer in place (:attr:`ExactReader.into`), or None: payloads are read as bytes and copied
        self.read_into: Callable[[memoryview], None] | None = getattr(read_exactly, "into", None)
        self.limits = limits or ProtocolLimits()
        self.gate = gate
        self.n_messages = 0

    def next_message(self) -> tuple[int, Any]:
        """(message id, decoded payload).  Raises :class:`StreamClosed` at EOF before an id."""
        try:
            raw_id = self.read(2)
        except StreamClosed as exc:
            raise StreamClosed("connection closed between messages") from exc
        (msg_id,) = struct.unpack("<H", raw_id)
        decoder = _DECODERS.get(msg_id)
        if decoder is None:
            raise ProtocolError(f"message #{self.n_messages + 1}: unknown message id {msg_id}")
        if self.gate is not None:
            self.gate(msg_id)
        try:
            payload = decoder(self)
        except StreamClosed as exc:
            raise StreamClosed(
                f"connection closed inside message #{self.n_messages + 1} ({MessageId(msg_id).name}): {exc}"
            ) from exc
        self.n_messages += 1
        return msg_id, payload

    def _length(self, fmt: str, what: str, limit: int) -> int:
        (n,) = struct.unpack(fmt, self.read(struct.calcsize(fmt)))
        if n > limit:
            raise ProtocolError(f"{what}: announced length {n} bytes exceeds the limit of {limit}")
        return int(n)

    def _text(self, what: str) -> str:
        n = self._length("<I", what, self.limits.max_text_bytes)
        try:
            return self.read(n).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"{what}: text is not valid UTF-8: {exc}") from exc


def _config_file(r: MessageReader) -> ConfigFile:
    raw = r.read(1024)
    name = raw.split(b"\x00", 1)[0].decode("utf-8", errors="replace").strip()
    if not name:
        raise ProtocolError("CONFIG_FILE: empty chain name")
    return ConfigFile(name)


def _header(r: MessageReader) -> Any:
    n = r._length("<I", "HEADER", r.limits.max_text_bytes)
    xml = r.read(n).rstrip(b"\x00")
    try:
        return parse_header(xml, "HEADER")
    except ValueError as exc:
        raise ProtocolError(str(exc)) from exc


def _gadgetron_error(r: MessageReader) -> Text:
    n = r._length("<Q", "ERROR", r.limits.max_text_bytes)
    return Text(r.read(n).decode("utf-8", errors="replace"), is_error=True)


def _query(r: MessageReader) -> Text:
    r.read(16)
    n = r._length("<Q", "QUERY", r.limits.max_text_bytes)
    return Text(r.read(n).decode("utf-8", errors="replace"))


def _response(r: MessageReader) -> Text:
    r.read(8)
    n = r._length("<Q", "RESPONSE", r.limits.max_text_bytes)
    return Text(r.read(n).decode("utf-8", errors="replace"))


def _fill(r: MessageReader, array: np.ndarray) -> None:
    """Read ``array.nbytes`` bytes of the stream into ``array`` (in place when the reader can)."""
    if array.nbytes == 0:
        return
    target = array.data.cast("B")
    if r.read_into is not None:
        r.read_into(target)
    else:
        target[:] = r.read(array.nbytes)


def _acquisition(r: MessageReader) -> ismrmrd.Acquisition:
    raw = r.read(ctypes.sizeof(ismrmrd.AcquisitionHeader))
    head = ismrmrd.AcquisitionHeader.from_buffer_copy(raw)
    lim = r.limits
    for field, value, limit in (
        ("number_of_samples", head.number_of_samples, lim.max_samples),
        ("active_channels", head.active_channels, lim.max_channels),
        ("trajectory_dimensions", head.trajectory_dimensions, lim.max_trajectory_dimensions),
    ):
        if value > limit:
            raise ProtocolError(
                f"ACQUISITION (scan_counter {head.scan_counter}): {field} = {value} exceeds {limit}"
            )
    trajectory = np.empty((head.number_of_samples, head.trajectory_dimensions), dtype=np.float32)
    data = np.empty((head.active_channels, head.number_of_samples), dtype=np.complex64)
    _fill(r, trajectory)
    _fill(r, data)
    if not np.isfinite(data.view(np.float32)).all():
        raise ProtocolError(f"ACQUISITION (scan_counter {head.scan_counter}): data contain NaN or Inf")
    return ismrmrd.Acquisition(head, data, trajectory)


def _waveform(r: MessageReader) -> ismrmrd.Waveform:
    raw = r.read(ctypes.sizeof(ismrmrd.WaveformHeader))
    head = ismrmrd.WaveformHeader.from_buffer_copy(raw)
    if head.channels > r.limits.max_channels or head.number_of_samples > r.limits.max_samples:
        raise ProtocolError(
            f"WAVEFORM: {head.channels} channels × {head.number_of_samples} samples exceeds the limits"
        )
    served = [False]

    def replay(n: int) -> bytes:
        if not served[0]:
            served[0] = True
            return raw
        return r.read(n)

    return ismrmrd.Waveform.deserialize_from(replay)


def _image_message(r: MessageReader) -> ismrmrd.Image:
    raw = r.read(ctypes.sizeof(ismrmrd.ImageHeader))
    head = ismrmrd.ImageHeader.from_buffer_copy(raw)
    try:
        itemsize = get_dtype_from_data_type(head.data_type).itemsize
    except (KeyError, ValueError, TypeError) as exc:
        raise ProtocolError(f"IMAGE: unknown data_type {head.data_type}") from exc
    nbytes = itemsize * head.channels * int(np.prod([int(v) for v in head.matrix_size]))
    if nbytes > r.limits.max_payload_bytes:
        raise ProtocolError(f"IMAGE: {nbytes} bytes of pixels exceed the limit")
    meta_length = r._length("<Q", "IMAGE meta", r.limits.max_text_bytes)
    meta = r.read(meta_length).rstrip(b"\x00").decode("utf-8", errors="replace")
    image = ismrmrd.Image(raw, meta)
    image.data.ravel()[:] = np.frombuffer(r.read(nbytes), dtype=get_dtype_from_data_type(head.data_type))
    return image


def _ndarray(r: MessageReader) -> np.ndarray:
    data_type, _version, ndim = struct.unpack("<HHH", r.read(6))
    if ndim > 16:
        raise ProtocolError(f"NDARRAY: {ndim} dimensions")
    dims = struct.unpack(f"<{ndim}Q", r.read(8 * ndim))
    try:
        dtype = get_dtype_from_data_type(data_type)
    except (KeyError, ValueError, TypeError) as exc:
        raise ProtocolError(f"NDARRAY: unknown data type {data_type}") from exc
    nbytes = int(np.prod(dims, dtype=np.float64)) * dtype.itemsize
    if nbytes > r.limits.max_payload_bytes:
        raise ProtocolError(f"NDARRAY: {nbytes} bytes exceed the limit")
    return np.frombuffer(r.read(nbytes), dtype=dtype).reshape(dims)


def _pet_listmode(r: MessageReader) -> Any:
    from recon.tof.listmode import decode_batch

    n = r._length("<Q", "PET_LISTMODE", r.limits.max_payload_bytes)
    try:
        return decode_batch(r.read(n))
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolError(f"PET_LISTMODE: malformed batch: {exc}") from exc


_DECODERS: dict[int, Callable[[MessageReader], Any]] = {
    MessageId.CONFIG_FILE: _config_file,
    MessageId.CONFIG_TEXT: lambda r: ConfigText(r._text("CONFIG_TEXT")),
    MessageId.HEADER: _header,
    MessageId.CLOSE: lambda r: Close(),
    MessageId.TEXT: lambda r: Text(r._text("TEXT")),
    MessageId.QUERY: _query,
    MessageId.RESPONSE: _response,
    MessageId.ERROR: _gadgetron_error,
    MessageId.ACQUISITION: _acquisition,
    MessageId.IMAGE: _image_message,
    MessageId.WAVEFORM: _waveform,
    MessageId.NDARRAY: _ndarray,
    MessageId.PET_LISTMODE: _pet_listmode,
}


Buffer = bytes | memoryview


def encode_parts(obj: Any) -> list[Buffer]:
    """One object as a complete protocol message in parts, ``b"".join(parts) == encode_message(obj)``: an
    acquisition's trajectory and samples are views of its arrays (no copy), for ``sendmsg``/``writev``."""
    if isinstance(obj, ismrmrd.Acquisition):
        # the header as the library's own serialize_into writes it (getHead() deep-copies: ≈ 7 µs a message)
        header = getattr(obj, "_head", None)
        head = struct.pack("<H", MessageId.ACQUISITION) + bytes(
            header if header is not None else obj.getHead()
        )
        return [head, _raw(obj.traj, np.float32), _raw(obj.data, np.complex64)]
    return [encode_message(obj)]


def _raw(array: np.ndarray, dtype: type) -> memoryview:
    """The bytes of ``array`` as ``dtype`` in C order (a view when it already is one)."""
    contiguous: np.ndarray = np.ascontiguousarray(array, dtype=dtype)
    return contiguous.data.cast("B") if contiguous.size else memoryview(b"")


def encode_message(obj: Any) -> bytes:
    """Encode one object as a complete protocol message (id + payload)."""
    import ismrmrd.xsd

    if isinstance(obj, ismrmrd.Acquisition):
        return b"".join(encode_parts(obj))

    parts: list[bytes] = []
    if isinstance(obj, ConfigFile):
        name = obj.name.encode("utf-8")
        if len(name) >= 1024:
            raise ProtocolError(f"CONFIG_FILE: name of {len(name)} bytes does not fit in 1024")
        parts = [struct.pack("<H", MessageId.CONFIG_FILE), name.ljust(1024, b"\x00")]
    elif isinstance(obj, ConfigText):
        parts = [struct.pack("<H", MessageId.CONFIG_TEXT), _sized(obj.text.encode("utf-8"))]
    elif isinstance(obj, ismrmrd.xsd.ismrmrdHeader):
        parts = [struct.pack("<H", MessageId.HEADER), _sized(header_to_xml(obj).encode("utf-8"))]
    elif isinstance(obj, Close):
        parts = [struct.pack("<H", MessageId.CLOSE)]
    elif isinstance(obj, Text):
        body = obj.text.encode("utf-8")
        parts = (
            [struct.pack("<HQ", MessageId.ERROR, len(body)), body]
            if obj.is_error
            else [struct.pack("<H", MessageId.TEXT), _sized(body)]
        )
    elif isinstance(obj, ismrmrd.Acquisition | ismrmrd.Image | ismrmrd.Waveform):
        ids = {
            ismrmrd.Acquisition: MessageId.ACQUISITION,
            ismrmrd.Image: MessageId.IMAGE,
            ismrmrd.Waveform: MessageId.WAVEFORM,
        }
        chunks: list[bytes] = [struct.pack("<H", ids[type(obj)])]
        obj.serialize_into(chunks.append)
        parts = chunks
    elif isinstance(obj, np.ndarray):
        parts = [
            struct.pack("<HHHH", MessageId.NDARRAY, get_data_type_from_dtype(obj.dtype), 0, obj.ndim),
            struct.pack(f"<{obj.ndim}Q", *obj.shape),
            np.ascontiguousarray(obj).tobytes(),
        ]
    else:
        from recon.tof.listmode import ListModeBatch, encode_batch

        if not isinstance(obj, ListModeBatch):
            raise TypeError(f"cannot encode {type(obj).__name__} as an ISMRMRD protocol message")
        body = encode_batch(obj)
        parts = [struct.pack("<HQ", MessageId.PET_LISTMODE, len(body)), body]
    return b"".join(parts)


def _sized(body: bytes) -> bytes:
    return struct.pack("<I", len(body)) + body
