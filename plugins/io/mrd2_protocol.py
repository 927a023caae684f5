"""MRD v2 streaming sessions on the ISMRMRD v1 port: protocol detection, messages in, messages out.

:class:`AnyProtocolReader` looks at the first two bytes of a connection (or a journal file): ``ya`` (the
``yardl`` magic of an MRD v2 stream, id 24953 in v1, which no v1 message has) selects
:class:`Mrd2MessageReader`, anything else the v1 :class:`~plugins.io.protocol.MessageReader`.  Both give
``(message id, object)`` pairs with v1 ids and v1 objects, so handshake, gates, journaling and replay
treat both protocols alike:

* the header becomes ``(HEADER, ismrmrdHeader)``; a header user parameter (string)
  ``reconstream_chain`` becomes a ``(CONFIG_FILE, name)`` before it (MRD v2 has no config message;
  without it the server's default chain is used);
* acquisitions, waveforms and images become ``ACQUISITION``, ``WAVEFORM``, ``IMAGE``; the end of the
  stream becomes ``CLOSE``; a stream that stops inside an item is a :class:`StreamClosed`.

Unlike v1 messages, an MRD v2 item is decoded before the gate sees it (the union tag and payload are one
yardl read); arrays larger than the limits' ``max_payload_bytes`` are refused before allocation.

Replies to an MRD v2 client are an MRD v2 stream (:class:`Mrd2Encoder`): the session's header, the
images, then the end of the stream.  MRD v2 has no text message, so a text (an error, or a report as
JSON) travels as an image with no pixels (shape ``(0, 0, 0, 0)``, float32) and the meta attribute
``reconstream_text`` (errors, the texts ``ERROR [plugin]: message``, also ``reconstream_error = 1``).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import ismrmrd
import mrd
import numpy as np

from plugins.io.mrd2_files import MAGIC, Mrd2Error, Mrd2StreamReader
from plugins.io.mrd2_header import header_v1_to_v2
from plugins.io.mrd2_items import image_to_v2, to_v2
from plugins.io.protocol import (
    Close,
    ConfigFile,
    MessageId,
    MessageReader,
    ProtocolError,
    ProtocolLimits,
    StreamClosed,
    Text,
    exact_reader,
)

CHAIN_PARAMETER = "reconstream_chain"
TEXT_META = "reconstream_text"
ERROR_META = "reconstream_error"
_IDS = {
    ismrmrd.Acquisition: MessageId.ACQUISITION,
    ismrmrd.Waveform: MessageId.WAVEFORM,
    ismrmrd.Image: MessageId.IMAGE,
}


class Mrd2MessageReader:
    """An MRD v2 stream read as v1 messages (see the module docstring); same interface as ``MessageReader``."""

    protocol = "mrd2"

    def __init__(
        self,
        read_some: Callable[[int], bytes],
        limits: ProtocolLimits | None = None,
        gate: Callable[[int], None] | None = None,
    ) -> None:
        self._read_some = read_some
        self._limits = limits or ProtocolLimits()
        self.gate = gate
        self.n_messages = 0
        self._reader: Mrd2StreamReader | None = None
        self._pending: list[tuple[int, Any]] = []
        self._items: Iterator[Any] | None = None

    @property
    def limits(self) -> ProtocolLimits:
        return self._limits

    @limits.setter
    def limits(self, value: ProtocolLimits) -> None:
        self._limits = value
        if self._reader is not None:
            self._reader._stream.max_array_bytes = value.max_payload_bytes

    def next_message(self) -> tuple[int, Any]:
        """The next (v1 message id, v1 object); :class:`StreamClosed` at a cut, :class:`ProtocolError` when malformed."""
        try:
            if self._reader is None:
                self._start()
            msg_id, obj = self._pending.pop(0) if self._pending else self._next_item()
        except Mrd2Error as exc:
            if exc.truncated:
                raise StreamClosed(f"MRD v2 stream: {exc}") from exc
            raise ProtocolError(f"MRD v2 stream: {exc}") from exc
        if self.gate is not None:
            self.gate(msg_id)
        self.n_messages += 1
        return msg_id, obj

    def _start(self) -> None:
        self._reader = Mrd2StreamReader(self._read_some, self._limits.max_payload_bytes)
        header = self._reader.header_v1()
        if header is None:
            raise ProtocolError("MRD v2 stream without a header: the MR chains need one")
        chain = _chain_parameter(header)
        if chain:
            self._pending.append((MessageId.CONFIG_FILE, ConfigFile(chain)))
        self._pending.append((MessageId.HEADER, header))
        self._items = self._reader.items_v1()

    def _next_item(self) -> tuple[int, Any]:
        assert self._items is not None
        item = next(self._items, None)
        if item is None:
            return MessageId.CLOSE, Close()
        msg_id = _IDS[type(item)]
        if msg_id == MessageId.ACQUISITION:
            _check_acquisition(item, self._limits)
        return msg_id, item


def _chain_parameter(header: Any) -> str | None:
    params = getattr(getattr(header, "userParameters", None), "userParameterString", None) or []
    names = [str(p.value) for p in params if p.name == CHAIN_PARAMETER]
    return names[0] if names else None


def _check_acquisition(acq: ismrmrd.Acquisition, limits: ProtocolLimits) -> None:
    for field, value, limit in (
        ("number_of_samples", acq.number_of_samples, limits.max_samples),
        ("active_channels", acq.active_channels, limits.max_channels),
    ):
        if value > limit:
            raise ProtocolError(
                f"ACQUISITION (scan_counter {acq.scan_counter}): {field} = {value} exceeds {limit}"
            )
    if not np.all(np.isfinite(acq.data)):
        raise ProtocolError(f"ACQUISITION (scan_counter {acq.scan_counter}): data contain NaN or Inf")


class AnyProtocolReader:
    """Detects ISMRMRD v1 or MRD v2 from the first two bytes, then reads messages with the matching reader.

    ``read_some(n)`` returns 1…n bytes (b"" at the end).  ``protocol`` is ``None`` until the first
    message is read, then ``"ismrmrd"`` or ``"mrd2"``.  ``limits`` and ``gate`` may be set at any time.
    """

    def __init__(
        self,
        read_some: Callable[[int], bytes],
        limits: ProtocolLimits | None = None,
        gate: Callable[[int], None] | None = None,
        readinto_some: Callable[[memoryview], int] | None = None,
    ) -> None:
        self._read_some = read_some
        self._readinto_some = readinto_some  # v1 payloads are then read straight into their arrays
        self._limits = limits or ProtocolLimits()
        self._gate = gate
        self._inner: MessageReader | Mrd2MessageReader | None = None
        self.protocol: str | None = None

    @property
    def limits(self) -> ProtocolLimits:
        return self._inner.limits if self._inner is not None else self._limits

    @limits.setter
    def limits(self, value: ProtocolLimits) -> None:
        self._limits = value
        if self._inner is not None:
            self._inner.limits = value

    @property
    def gate(self) -> Callable[[int], None] | None:
        return self._gate

    @gate.setter
    def gate(self, value: Callable[[int], None] | None) -> None:
        self._gate = value
        if self._inner is not None:
            self._inner.gate = value

    @property
    def n_messages(self) -> int:
        return self._inner.n_messages if self._inner is not None else 0

    def next_message(self) -> tuple[int, Any]:
        if self._inner is None:
            self._detect()
        assert self._inner is not None
        return self._inner.next_message()

    def _detect(self) -> None:
        try:
            first = exact_reader(self._read_some)(2)
        except StreamClosed as exc:
            raise StreamClosed("connection closed between messages") from exc
        replay = _Replay(first, self._read_some, self._readinto_some)
        if first == MAGIC[:2]:
            self.protocol = "mrd2"
            self._inner = Mrd2MessageReader(replay.read, self._limits, self._gate)
        else:
            self.protocol = "ismrmrd"
            into = replay.readinto if self._readinto_some is not None else None
            self._inner = MessageReader(exact_reader(replay.read, into), self._limits, self._gate)


class _Replay:
    """``read_some`` that first gives back bytes already read."""

    def __init__(
        self,
        head: bytes,
        read_some: Callable[[int], bytes],
        readinto_some: Callable[[memoryview], int] | None = None,
    ) -> None:
        self.head = head
        self.read_some = read_some
        self.readinto_some = readinto_some

    def read(self, n: int) -> bytes:
        if self.head:
            out, self.head = self.head[:n], self.head[n:]
            return out
        return self.read_some(n)

    def readinto(self, view: memoryview) -> int:
        if self.head or self.readinto_some is None:
            data = self.read(len(view))
            view[: len(data)] = data
            return len(data)
        return self.readinto_some(view)


def text_image(text: str, is_error: bool) -> Any:
    """A text as an MRD v2 image without pixels carrying ``reconstream_text`` (see the module docstring)."""
    image = ismrmrd.Image.from_array(np.zeros((0, 0, 0, 0), dtype=np.float32), transpose=False)
    meta = ismrmrd.Meta()
    meta[TEXT_META] = text
    if is_error:
        meta[ERROR_META] = "1"
    image.attribute_string = meta.serialize()
    return image_to_v2(image)


class Mrd2Encoder:
    """Encodes a session's outputs as one MRD v2 stream: header first, then items, then the end marker."""

    def __init__(self, header: Any) -> None:
        self._buffer = io.BytesIO()
        self._writer = mrd.BinaryMrdWriter(self._buffer)
        self._header = header
        self._started = False
        self._ended = False

    def _take(self) -> bytes:
        self._writer._stream.flush()
        data = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return data

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self._writer.write_header(None if self._header is None else header_v1_to_v2(self._header))

    def encode(self, obj: Any) -> tuple[str, bytes] | None:
        """(kind, bytes) for one output (``Close`` ends the stream); None for a kind MRD v2 cannot carry."""
        if self._ended:
            return None
        self._start()
        if isinstance(obj, Close):
            self._ended = True
            self._writer.close()
            return "CLOSE", self._take()
        if isinstance(obj, Text):
            is_error = obj.is_error or obj.text.startswith("ERROR [")  # the server's error texts
            item, kind = text_image(obj.text, is_error), "ERROR" if is_error else "TEXT"
        elif isinstance(obj, ismrmrd.Image | ismrmrd.Acquisition | ismrmrd.Waveform):
            item, kind = to_v2(obj), _IDS[type(obj)].name
        else:
            return None
        self._writer.write_data([item])
        return kind, self._take()


def read_replies(read_some: Callable[[int], bytes]) -> Iterator[Any]:
    """The v1 objects of an MRD v2 reply stream (``Text`` for text images); stops at its end or a cut."""
    reader = Mrd2StreamReader(read_some)
    reader.header_v1()
    try:
        for item in reader.items_v1():
            meta = (
                ismrmrd.Meta.deserialize(item.attribute_string) if isinstance(item, ismrmrd.Image) else None
            )
            if meta is not None and TEXT_META in meta:
                yield Text(str(meta[TEXT_META]), is_error=ERROR_META in meta)
            else:
                yield item
    except Mrd2Error as exc:
        if not exc.truncated:
            raise
        raise StreamClosed(f"the MRD v2 reply stream is cut: {exc}") from exc
