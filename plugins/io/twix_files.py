"""Siemens twix (``.dat``, VB and VD/VE multi-raid) read with ``twixtools`` into ISMRMRD v1 acquisitions.

Readouts are read one at a time (``twixtools.mdb.Mdb`` at each file position; never the whole file), and
each file position is checked against the file size first, so a truncated file stops with a
:class:`TwixTruncated` naming the byte offset after the last complete readout (everything before it is
converted); a readout whose header contradicts itself (its announced DMA length differs from what its
channels × samples take) stops with a :class:`TwixCorrupt` naming its byte offset.  Of a multi-raid file the last measurement is read by default (``measurement=-1``); noise
adjustment readouts of earlier measurements are put in front of it, as a reconstruction needs them.

Per readout (``mdh`` → ``ismrmrd.Acquisition``, as ``siemens_to_ismrmrd`` does):

* data ``(channels, samples)`` complex64 with readout oversampling kept; ``discard_pre/post`` from the cut-off,
  ``center_sample`` from ``CenterCol``, ``sample_time_us`` from the protocol's dwell time;
* counters Lin, Par, Ave, Sli, Eco, Phs, Rep, Set, Seg → ``idx``; Ida…Ide → ``idx.user[0:5]``;
* flags: NOISEADJSCAN → IS_NOISE_MEASUREMENT, PATREFSCAN → IS_PARALLEL_CALIBRATION, PATREFANDIMASCAN →
  IS_PARALLEL_CALIBRATION_AND_IMAGING, REFLECT → IS_REVERSE, PHASCOR → IS_PHASECORR_DATA, RTFEEDBACK,
  HPFEEDBACK, FIRST/LASTSCANINSLICE, LASTSCANINMEAS; SYNCDATA (PMU) blocks are skipped;
* time stamps: ``TimeStamp`` → ``acquisition_time_stamp`` and ``PMUTimeStamp`` (time since the last ECG/PMU
  trigger) → ``physiology_time_stamp[0]``, both in 2.5 ms ticks;
* geometry in patient coordinates (mm, Siemens Sag/Cor/Tra = LPS): ``position`` from the slice position,
  ``phase_dir``, ``read_dir``, ``slice_dir`` from the slice quaternion (W, X, Y, Z), columns P R S.
"""

from __future__ import annotations

import ctypes
import logging
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import ismrmrd
import numpy as np

from plugins.io.ismrmrd_files import InputFormatError, RawInput

log = logging.getLogger("reconstream.io.twix")

_FLAGS = {
    "NOISEADJSCAN": ismrmrd.ACQ_IS_NOISE_MEASUREMENT,
    "PATREFSCAN": ismrmrd.ACQ_IS_PARALLEL_CALIBRATION,
    "PATREFANDIMASCAN": ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING,
    "REFLECT": ismrmrd.ACQ_IS_REVERSE,
    "PHASCOR": ismrmrd.ACQ_IS_PHASECORR_DATA,
    "RTFEEDBACK": ismrmrd.ACQ_IS_RTFEEDBACK_DATA,
    "HPFEEDBACK": ismrmrd.ACQ_IS_HPFEEDBACK_DATA,
    "FIRSTSCANINSLICE": ismrmrd.ACQ_FIRST_IN_SLICE,
    "LASTSCANINSLICE": ismrmrd.ACQ_LAST_IN_SLICE,
    "LASTSCANINMEAS": ismrmrd.ACQ_LAST_IN_MEASUREMENT,
}
_COUNTERS = (
    ("kspace_encode_step_1", "Lin"),
    ("kspace_encode_step_2", "Par"),
    ("average", "Ave"),
    ("slice", "Sli"),
    ("contrast", "Eco"),
    ("phase", "Phs"),
    ("repetition", "Rep"),
    ("set", "Set"),
    ("segment", "Seg"),
)
_MDH_MIN_BYTES = 128
_DMA_LENGTH_MASK = (1 << 25) - 1  # FlagsAndDMALength: the low 25 bits are the block length in bytes


class TwixTruncated(InputFormatError):
    """A twix file ends (or breaks) inside a readout; ``offset`` is the byte after the last complete one."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class TwixCorrupt(TwixTruncated):
    """A twix readout whose header is damaged (impossible length, no channels); ``offset`` is its first byte."""


@dataclass(frozen=True)
class Measurement:
    """One measurement of a twix file: its index, byte offset and announced length (bytes)."""

    index: int
    offset: int
    length: int


def measurements(fh: BinaryIO, file_size: int) -> tuple[bool, list[Measurement]]:
    """(is VD/VE, the measurements) from the multi-raid header (VB files hold one measurement)."""
    fh.seek(0)
    first, second = struct.unpack("<II", fh.read(8))
    if not (first < 10000 and second <= 64):
        return False, [Measurement(0, 0, file_size)]
    from twixtools import hdr_def

    fh.seek(0)
    raid = np.frombuffer(fh.read(hdr_def.MultiRaidFileHeader.itemsize), dtype=hdr_def.MultiRaidFileHeader)[0]
    entries = raid["entry"][: int(raid["hdr"]["count_"])]
    out = [
        Measurement(k, int(e["off_"]), int(e["len_"]) or file_size - int(e["off_"]))
        for k, e in enumerate(entries)
    ]
    return True, out


def _protocol(fh: BinaryIO, meas: Measurement, path: Path) -> tuple[dict[str, Any], int]:
    from twixtools import twixprot

    fh.seek(meas.offset)
    raw = fh.read(4)
    if len(raw) < 4:
        raise TwixTruncated(
            f"{path}: measurement {meas.index} starts at byte {meas.offset}, past the end", meas.offset
        )
    (hdr_len,) = struct.unpack("<I", raw)
    if meas.offset + hdr_len > os.fstat(fh.fileno()).st_size:
        raise TwixTruncated(
            f"{path}: the protocol header of measurement {meas.index} ({hdr_len} bytes at byte {meas.offset}) is cut",
            meas.offset,
        )
    fh.seek(meas.offset)
    try:
        hdr = twixprot.parse_twix_hdr(fh)
    except (KeyError, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise InputFormatError(
            f"{path}: the protocol header of measurement {meas.index} at byte {meas.offset} is unreadable: {exc}"
        ) from exc
    return hdr, hdr_len


def readouts(fh: BinaryIO, meas: Measurement, hdr_len: int, is_ve: bool, path: Path) -> Iterator[Any]:
    """The ``Mdb`` blocks of one measurement, one at a time, up to ACQEND.

    A readout whose header does not describe itself (the DMA length it announces differs from what its
    channels × samples take, or it has no channels) raises :class:`TwixCorrupt`; a file that ends inside a
    readout raises :class:`TwixTruncated`.  Both name the readout's byte offset; the readouts before it are
    complete.  ACQEND is recognised before the length check: VB files end in an ACQEND block that announces
    more bytes than the file holds.
    """
    from twixtools import mdh_def
    from twixtools.mdb import Mdb

    file_size = os.fstat(fh.fileno()).st_size
    header_type = mdh_def.Scan_header if is_ve else mdh_def.VB17_header
    header_bytes = ctypes.sizeof(header_type)
    pos = meas.offset + hdr_len
    end = meas.offset + meas.length
    while pos + _MDH_MIN_BYTES < end:
        if pos + header_bytes > file_size:
            raise TwixTruncated(_cut(path, meas, pos, file_size), pos)
        fh.seek(pos)
        mdh = header_type.from_buffer_copy(fh.read(header_bytes))
        if mdh_def.is_flag_set(mdh, "ACQEND"):
            return
        dma_len = int(mdh.FlagsAndDMALength) & _DMA_LENGTH_MASK
        if mdh_def.is_flag_set(mdh, "SYNCDATA"):  # PMU / sequence data: a free-form payload after the header
            if dma_len < header_bytes:
                raise TwixCorrupt(f"{path}: readout at byte {pos} announces {dma_len} bytes (corrupt)", pos)
        elif int(mdh.UsedChannels) == 0 or dma_len != _readout_bytes(mdh, is_ve):
            raise TwixCorrupt(
                f"{path}: readout at byte {pos} is corrupt: its header announces {dma_len} bytes, but "
                f"{int(mdh.UsedChannels)} channels × {int(mdh.SamplesInScan)} samples take "
                f"{_readout_bytes(mdh, is_ve)}",
                pos,
            )
        if pos + dma_len > file_size:
            raise TwixTruncated(_cut(path, meas, pos, file_size), pos)
        fh.seek(pos)
        try:
            mdb = Mdb(fh, is_ve)
        except (ValueError, struct.error) as exc:
            raise TwixCorrupt(f"{path}: readout at byte {pos} is malformed ({exc})", pos) from exc
        pos += dma_len
        yield mdb


def _readout_bytes(mdh: Any, is_ve: bool) -> int:
    """Bytes of a readout from its own header: per channel a channel header (VE, 32) or a full mdh (VB, 128)
    and 8 bytes a sample; VE adds the 192-byte scan header once."""
    from twixtools import mdh_def

    per_channel = ctypes.sizeof(mdh_def.Channel_header if is_ve else mdh_def.VB17_header)
    total = int(mdh.UsedChannels) * (per_channel + 8 * int(mdh.SamplesInScan))
    return total + (ctypes.sizeof(mdh_def.Scan_header) if is_ve else 0)


def _cut(path: Path, meas: Measurement, pos: int, file_size: int) -> str:
    return (
        f"{path}: twix measurement {meas.index} is cut at byte {file_size} inside the readout starting at byte {pos} "
        f"(the file ends before its announced end at byte {meas.offset + meas.length})"
    )


def _directions(quaternion: Any) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """(read, phase, slice) unit vectors from a Siemens slice quaternion (W, X, Y, Z)."""
    w, a, b, c = (float(q) for q in quaternion)
    phase = (1 - 2 * (b * b + c * c), 2 * (a * b + c * w), 2 * (a * c - b * w))
    read = (2 * (a * b - c * w), 1 - 2 * (a * a + c * c), 2 * (b * c + a * w))
    slice_ = (2 * (a * c + b * w), 2 * (b * c - a * w), 1 - 2 * (a * a + b * b))
    return read, phase, slice_


def acquisition_from_mdb(mdb: Any, dwell_time_us: float) -> ismrmrd.Acquisition:
    """One twix readout as an ISMRMRD v1 acquisition (see the module docstring for the mapping)."""
    mdh = mdb.mdh
    acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(mdb.data, dtype=np.complex64))
    flags = 0
    for name in mdb.get_active_flags():
        bit = _FLAGS.get(name)
        if bit is not None:
            flags |= 1 << (bit - 1)
    acq.flags = flags
    acq.measurement_uid = int(mdh.MeasUID) & 0xFFFFFFFF
    acq.scan_counter = int(mdh.ScanCounter)
    acq.acquisition_time_stamp = int(mdh.TimeStamp)
    acq.physiology_time_stamp = (int(mdh.PMUTimeStamp), 0, 0)
    acq.discard_pre, acq.discard_post = int(mdh.CutOff.Pre), int(mdh.CutOff.Post)
    acq.center_sample = int(mdh.CenterCol)
    acq.sample_time_us = dwell_time_us
    for name, field in _COUNTERS:
        setattr(acq.idx, name, int(getattr(mdh.Counter, field)))
    acq.idx.user = (*(int(getattr(mdh.Counter, f)) for f in ("Ida", "Idb", "Idc", "Idd", "Ide")), 0, 0, 0)
    pos = mdh.SliceData.SlicePos
    acq.position = (float(pos.Sag), float(pos.Cor), float(pos.Tra))
    acq.read_dir, acq.phase_dir, acq.slice_dir = _directions(mdh.SliceData.Quaternion)
    return acq


@dataclass
class TwixReader:
    """An open twix file: its measurements, and the chosen one's protocol (``hdr``) and readouts."""

    path: Path
    fh: BinaryIO
    is_ve: bool
    all_measurements: list[Measurement]
    chosen: Measurement
    hdr: dict[str, Any]
    hdr_len: int
    centre_line: int | None = None

    def dwell_time_us(self) -> float:
        from plugins.io.twix_header import _get, _num

        return _num(_get(self.hdr, "MeasYaps", "sRXSPEC", "alDwellTime", 0), 0.0) * 1e-3

    def noise_readouts(self) -> Iterator[Any]:
        """Noise adjustment readouts of the measurements before the chosen one."""
        for meas in self.all_measurements[: self.chosen.index]:
            _, hdr_len = _protocol(self.fh, meas, self.path)
            for mdb in readouts(self.fh, meas, hdr_len, self.is_ve, self.path):
                if mdb.is_flag_set("NOISEADJSCAN"):
                    yield mdb

    def chosen_readouts(self) -> Iterator[Any]:
        """The chosen measurement's readouts (PMU SYNCDATA blocks skipped)."""
        for mdb in readouts(self.fh, self.chosen, self.hdr_len, self.is_ve, self.path):
            if not mdb.is_flag_set("SYNCDATA"):
                yield mdb


def open_twix(path: str | Path, measurement: int = -1) -> TwixReader:
    """Open a twix file and parse the protocol of ``measurement`` (negative: from the end)."""
    path = Path(path)
    fh = path.open("rb")
    try:
        file_size = os.fstat(fh.fileno()).st_size
        is_ve, found = measurements(fh, file_size)
        if not -len(found) <= measurement < len(found):
            raise InputFormatError(
                f"{path}: measurement {measurement} does not exist (the file holds {len(found)})"
            )
        chosen = found[measurement]
        hdr, hdr_len = _protocol(fh, chosen, path)
    except BaseException:
        fh.close()
        raise
    return TwixReader(path, fh, is_ve, found, chosen, hdr, hdr_len)


def read_twix_input(path: str | Path, measurement: int = -1) -> RawInput:
    """A twix file as a raw input: the v1 header and a lazy iterator of acquisitions.

    The header needs the first imaging readout (samples, channels, centre line), so the readouts up to it
    are read ahead; a file that ends inside a readout ends with a ``StreamInterrupted`` naming the offset.
    """
    from plugins.io.twix_header import twix_header

    reader = open_twix(path, measurement)
    items = _acquisitions(reader)
    ahead: list[Any] = []
    try:
        for item in items:
            ahead.append(item)
            if isinstance(item, ismrmrd.Acquisition) and not item.is_flag_set(
                ismrmrd.ACQ_IS_NOISE_MEASUREMENT
            ):
                break
    except BaseException:
        reader.fh.close()
        raise
    first = next((a for a in ahead if isinstance(a, ismrmrd.Acquisition)), None)
    if first is None:
        reader.fh.close()
        raise InputFormatError(f"{reader.path}: measurement {reader.chosen.index} holds no readouts")
    imaging = [a for a in ahead if isinstance(a, ismrmrd.Acquisition)][-1]
    header = twix_header(
        reader.hdr, int(imaging.number_of_samples), int(imaging.active_channels), reader.centre_line or 0
    )
    return RawInput(path=reader.path, header=header, items=_chain(ahead, items))


def _chain(ahead: list[Any], rest: Iterator[Any]) -> Iterator[Any]:
    yield from ahead
    yield from rest


def _acquisitions(reader: TwixReader) -> Iterator[Any]:
    from plugins.runtime.items import StreamInterrupted

    dwell = reader.dwell_time_us()
    n = 0
    try:
        for mdb in _all_readouts(reader):
            acq = acquisition_from_mdb(mdb, dwell)
            if reader.centre_line is None and not mdb.is_flag_set("NOISEADJSCAN"):
                reader.centre_line = int(mdb.mdh.CenterLin)
            n += 1
            yield acq
    except TwixTruncated as exc:
        yield StreamInterrupted(str(exc), n)
    finally:
        reader.fh.close()


def _all_readouts(reader: TwixReader) -> Iterator[Any]:
    yield from reader.noise_readouts()
    yield from reader.chosen_readouts()
