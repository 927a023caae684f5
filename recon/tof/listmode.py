"""PET list-mode data types and their wire format (framework message id 1100).

List-mode data are event-major: every array of a :class:`ListModeBatch` has one entry per coincidence
event.  The LOR endpoints of event ``i`` are ``scanner.crystal_positions_mm()[crystal_id_1[i]]`` and
``[crystal_id_2[i]]``; ``tof_bin`` is signed, 0 is the LOR midpoint and positive bins mean the emission
was nearer crystal 2 (see :mod:`recon.tof.geometry`).

Wire layout of message 1100 (PET list-mode batch on the ISMRMRD stream), all little-endian::

    uint16   message id = 1100
    uint64   payload_length           (bytes that follow, = 4 + header_length + 15 * n_events)
    --- payload ---
    uint32   header_length            (bytes of the JSON header that follows)
    bytes    header                   UTF-8 JSON object:
                                      {"version": 1, "scanner": str, "frame_index": int,
                                       "is_last_in_frame": bool, "n_events": int}
    int32    crystal_id_1[n_events]
    int32    crystal_id_2[n_events]
    int16    tof_bin[n_events]
    uint8    is_prompt[n_events]      (1 = prompt, 0 = delayed coincidence)
    uint32   time_ms[n_events]

The length after the id lets a reader skip or bound the message (as :mod:`plugins.io.protocol` does).
:func:`encode_batch` / :func:`decode_batch` write and read the *payload*; :func:`encode_message` /
:func:`decode_message` the whole message with id and length; :func:`read_batch` reads a payload from
any ``read_exact(n) -> bytes`` callable, e.g. a socket reader.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Framework message id of a PET list-mode batch on the ISMRMRD stream.
MESSAGE_ID_LISTMODE_BATCH = 1100
#: Version of the JSON header written by :func:`encode_batch`.
WIRE_VERSION = 1
#: Bytes per event on the wire: 4 + 4 + 2 + 1 + 4.
BYTES_PER_EVENT = 15

_FIELD_DTYPES: dict[str, np.dtype[Any]] = {
    "crystal_id_1": np.dtype(np.int32),
    "crystal_id_2": np.dtype(np.int32),
    "tof_bin": np.dtype(np.int16),
    "is_prompt": np.dtype(np.bool_),
    "time_ms": np.dtype(np.uint32),
}
_WIRE_DTYPES: dict[str, np.dtype[Any]] = {
    "crystal_id_1": np.dtype("<i4"),
    "crystal_id_2": np.dtype("<i4"),
    "tof_bin": np.dtype("<i2"),
    "is_prompt": np.dtype("u1"),
    "time_ms": np.dtype("<u4"),
}


@dataclass(frozen=True)
class ListModeBatch:
    """A batch of coincidence events (event-major; every array has shape ``(n_events,)``).

    Attributes:
        crystal_id_1: first crystal of each event, int32, ``ring * n_crystals_per_ring + index_in_ring``.
        crystal_id_2: second crystal, int32, different from ``crystal_id_1``.
        tof_bin: signed TOF bin, int16; 0 = LOR midpoint, positive = emission nearer ``crystal_id_2``.
        is_prompt: bool; True for a prompt coincidence, False for a delayed-window coincidence (randoms
            estimate).
        time_ms: detection time, uint32, ms since the start of the acquisition; non-decreasing.
        scanner: :attr:`recon.tof.geometry.ScannerGeometry.name` of the scanner that recorded the events.
        frame_index: index of the time frame the batch belongs to, >= 0.
        is_last_in_frame: True on the last batch of a frame (a reconstruction may start then).
    """

    crystal_id_1: np.ndarray
    crystal_id_2: np.ndarray
    tof_bin: np.ndarray
    is_prompt: np.ndarray
    time_ms: np.ndarray
    scanner: str
    frame_index: int = 0
    is_last_in_frame: bool = False

    def __post_init__(self) -> None:
        n_events = None
        for field, dtype in _FIELD_DTYPES.items():
            array = getattr(self, field)
            if not isinstance(array, np.ndarray) or array.ndim != 1:
                raise ValueError(f"ListModeBatch.{field} must be a 1-D numpy array")
            if array.dtype != dtype:
                raise TypeError(f"ListModeBatch.{field} must have dtype {dtype}, got {array.dtype}")
            if n_events is None:
                n_events = array.shape[0]
            elif array.shape[0] != n_events:
                raise ValueError(f"ListModeBatch.{field} has {array.shape[0]} events, expected {n_events}")
        if not self.scanner:
            raise ValueError("ListModeBatch.scanner must name the scanner")
        if self.frame_index < 0:
            raise ValueError(f"ListModeBatch.frame_index must be >= 0, got {self.frame_index}")
        if n_events:
            self._validate_values()

    def _validate_values(self) -> None:
        if min(int(self.crystal_id_1.min()), int(self.crystal_id_2.min())) < 0:
            raise ValueError("ListModeBatch crystal ids must be >= 0")
        if np.any(self.crystal_id_1 == self.crystal_id_2):
            raise ValueError("ListModeBatch events must join two different crystals")
        if self.time_ms.shape[0] > 1 and np.any(np.diff(self.time_ms.astype(np.int64)) < 0):
            raise ValueError("ListModeBatch.time_ms must be non-decreasing")

    @property
    def n_events(self) -> int:
        """Number of events in the batch."""
        return int(self.crystal_id_1.shape[0])

    @property
    def n_prompts(self) -> int:
        """Number of prompt events."""
        return int(np.count_nonzero(self.is_prompt))

    @property
    def n_delayeds(self) -> int:
        """Number of delayed-window events."""
        return self.n_events - self.n_prompts

    def select(self, mask: np.ndarray) -> ListModeBatch:
        """The events where the boolean ``mask`` (shape ``(n_events,)``) is True, same frame metadata."""
        return ListModeBatch(
            crystal_id_1=self.crystal_id_1[mask],
            crystal_id_2=self.crystal_id_2[mask],
            tof_bin=self.tof_bin[mask],
            is_prompt=self.is_prompt[mask],
            time_ms=self.time_ms[mask],
            scanner=self.scanner,
            frame_index=self.frame_index,
            is_last_in_frame=self.is_last_in_frame,
        )


def validate_batch_for_scanner(batch: ListModeBatch, n_crystals: int, n_tof_bins: int) -> None:
    """Raise ``ValueError`` when crystal ids or TOF bins of ``batch`` are out of range for a scanner."""
    if batch.n_events == 0:
        return
    if max(int(batch.crystal_id_1.max()), int(batch.crystal_id_2.max())) >= n_crystals:
        raise ValueError(f"crystal id out of range for a scanner with {n_crystals} crystals")
    if int(np.abs(batch.tof_bin.astype(np.int32)).max()) > n_tof_bins // 2:
        raise ValueError(f"TOF bin out of range for {n_tof_bins} TOF bins")


def concatenate_batches(batches: Sequence[ListModeBatch]) -> ListModeBatch:
    """Join batches of one scanner and frame in order (events are assumed to be in time order)."""
    if not batches:
        raise ValueError("need at least one batch")
    first = batches[0]
    if any(b.scanner != first.scanner for b in batches):
        raise ValueError("cannot concatenate batches of different scanners")
    arrays = {f: np.concatenate([getattr(b, f) for b in batches]) for f in _FIELD_DTYPES}
    return ListModeBatch(
        **arrays,
        scanner=first.scanner,
        frame_index=first.frame_index,
        is_last_in_frame=batches[-1].is_last_in_frame,
    )


@dataclass(frozen=True)
class PETAcquisitionInfo:
    """What a scanner provides besides the events (no ground truth).

    Attributes:
        scanner: :attr:`recon.tof.geometry.ScannerGeometry.name`.
        frame_start_s: start of the frame, s since the start of the acquisition, >= 0.
        frame_duration_s: frame duration, s, > 0.
        isotope: isotope name, e.g. ``"F-18"``.
        half_life_s: isotope half-life, s, > 0 (F-18: 6586.2 s).
        injected_dose_bq: injected activity at injection time, Bq, >= 0.
        injection_time_s: injection time relative to the frame start, s (negative = before the frame).
        patient_weight_kg: patient (or phantom) weight for SUV, kg, > 0.
        crystal_efficiencies: relative crystal detection efficiencies from a calibration (normalisation)
            scan, shape ``(n_crystals,)``, float32, mean ≈ 1; ``None`` when not available.
        singles_rate_per_crystal_cps: measured singles rate of each crystal, shape ``(n_crystals,)``,
            float64, counts/s, for randoms-from-singles estimates; ``None`` when not available.
    """

    scanner: str
    frame_start_s: float
    frame_duration_s: float
    isotope: str
    half_life_s: float
    injected_dose_bq: float
    injection_time_s: float
    patient_weight_kg: float
    crystal_efficiencies: np.ndarray | None = None
    singles_rate_per_crystal_cps: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not self.scanner:
            raise ValueError("PETAcquisitionInfo.scanner must name the scanner")
        if self.frame_start_s < 0 or self.frame_duration_s <= 0:
            raise ValueError("PETAcquisitionInfo needs frame_start_s >= 0 and frame_duration_s > 0")
        if self.half_life_s <= 0 or self.injected_dose_bq < 0 or self.patient_weight_kg <= 0:
            raise ValueError(
                "PETAcquisitionInfo needs half_life_s > 0, injected_dose_bq >= 0, patient_weight_kg > 0"
            )
        for name in ("crystal_efficiencies", "singles_rate_per_crystal_cps"):
            array = getattr(self, name)
            if array is None:
                continue
            if not isinstance(array, np.ndarray) or array.ndim != 1:
                raise ValueError(f"PETAcquisitionInfo.{name} must be a 1-D numpy array or None")
            if not np.all(np.isfinite(array)) or np.any(array < 0):
                raise ValueError(f"PETAcquisitionInfo.{name} must be finite and >= 0")

    def decay_factor_at_frame_start(self) -> float:
        """Fraction of the injected activity left at the frame start, ``2**(injection_time_s / half_life_s)``."""
        return float(2.0 ** (self.injection_time_s / self.half_life_s))


def event_payload_size(n_events: int) -> int:
    """Bytes of packed event arrays that follow the JSON header of a message with ``n_events`` events."""
    return BYTES_PER_EVENT * n_events


def _header_bytes(batch: ListModeBatch) -> bytes:
    header = {
        "version": WIRE_VERSION,
        "scanner": batch.scanner,
        "frame_index": batch.frame_index,
        "is_last_in_frame": batch.is_last_in_frame,
        "n_events": batch.n_events,
    }
    return json.dumps(header, separators=(",", ":")).encode("utf-8")


def encode_batch(batch: ListModeBatch) -> bytes:
    """The payload of message 1100 for ``batch``: header length, JSON header, packed arrays."""
    header = _header_bytes(batch)
    parts = [struct.pack("<I", len(header)), header]
    for field, wire_dtype in _WIRE_DTYPES.items():
        parts.append(np.ascontiguousarray(getattr(batch, field), dtype=wire_dtype).tobytes())
    return b"".join(parts)


def encode_message(batch: ListModeBatch) -> bytes:
    """The complete message 1100: ``uint16`` id, ``uint64`` payload length, payload."""
    payload = encode_batch(batch)
    return struct.pack("<HQ", MESSAGE_ID_LISTMODE_BATCH, len(payload)) + payload


def _parse_header(raw: bytes) -> dict[str, Any]:
    header = json.loads(raw.decode("utf-8"))
    if not isinstance(header, dict) or header.get("version") != WIRE_VERSION:
        raise ValueError(f"unsupported list-mode header: {header!r}")
    if not isinstance(header.get("n_events"), int) or header["n_events"] < 0:
        raise ValueError(f"bad n_events in list-mode header: {header!r}")
    return header


def _batch_from_payload(header: dict[str, Any], payload: bytes) -> ListModeBatch:
    n_events = header["n_events"]
    if len(payload) != event_payload_size(n_events):
        raise ValueError(
            f"list-mode payload has {len(payload)} bytes, expected {event_payload_size(n_events)}"
        )
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for field, wire_dtype in _WIRE_DTYPES.items():
        size = wire_dtype.itemsize * n_events
        wire = np.frombuffer(payload, dtype=wire_dtype, count=n_events, offset=offset)
        arrays[field] = wire.astype(_FIELD_DTYPES[field])  # copy: native dtype, writable, owns its memory
        offset += size
    return ListModeBatch(
        **arrays,
        scanner=str(header["scanner"]),
        frame_index=int(header["frame_index"]),
        is_last_in_frame=bool(header["is_last_in_frame"]),
    )


def read_batch(read_exact: Callable[[int], bytes]) -> ListModeBatch:
    """Read one payload of message 1100 with ``read_exact(n) -> n bytes``."""
    (header_length,) = struct.unpack("<I", read_exact(4))
    header = _parse_header(read_exact(header_length))
    return _batch_from_payload(header, read_exact(event_payload_size(header["n_events"])))


def decode_batch(payload: bytes) -> ListModeBatch:
    """Decode a payload written by :func:`encode_batch` (exactly; trailing bytes are an error)."""
    view = memoryview(payload)
    position = 0

    def read_exact(n_bytes: int) -> bytes:
        nonlocal position
        if position + n_bytes > len(view):
            raise ValueError("list-mode payload truncated")
        chunk = bytes(view[position : position + n_bytes])
        position += n_bytes
        return chunk

    batch = read_batch(read_exact)
    if position != len(view):
        raise ValueError(f"{len(view) - position} trailing bytes after the list-mode payload")
    return batch


def decode_message(message: bytes) -> ListModeBatch:
    """Decode a complete message 1100 as written by :func:`encode_message`."""
    if len(message) < 10:
        raise ValueError("list-mode message too short")
    message_id, length = struct.unpack_from("<HQ", message, 0)
    if message_id != MESSAGE_ID_LISTMODE_BATCH:
        raise ValueError(f"expected message id {MESSAGE_ID_LISTMODE_BATCH}, got {message_id}")
    if length != len(message) - 10:
        raise ValueError(f"message 1100 announces {length} payload bytes but carries {len(message) - 10}")
    return decode_batch(message[10:])
