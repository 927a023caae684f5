"""Which raw-data format a file holds, decided by its first bytes (the suffix only breaks ties).

=================  ==================================================================================
kind               recognised by
=================  ==================================================================================
ismrmrd-hdf5       the HDF5 signature ``89 48 44 46 0d 0a 1a 0a`` at byte 0
ismrmrd-stream     a first message id 1, 2 or 3 (CONFIG_FILE, CONFIG_TEXT, HEADER) of the v1 protocol
mrd2               ``yardl`` magic, format version 1 and a schema of protocol ``Mrd``
petsird            ``yardl`` magic, format version 1 and a schema of protocol ``PETSIRD``
twix               Siemens VD/VE multi-raid header (uint32 0, then 1…64 measurements) or a VB header
                   (uint32 header length, then ``Config``)
=================  ==================================================================================

Anything else is :func:`describe` d in one line (what its first bytes look like) for the error message.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from plugins.io.ismrmrd_files import InputFormatError, RawInput

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
YARDL_MAGIC = b"yardl"
_PEEK_BYTES = 512
_KNOWN_MAGICS = (
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"<?xml", "an XML document"),
    (b"{", "JSON or other text"),
)

READABLE = "ISMRMRD v1 (HDF5 or stream), MRD v2 binary stream, Siemens twix .dat, PETSIRD list mode"


@dataclass(frozen=True)
class DetectedFormat:
    """What a file holds: ``kind`` (a row of the module table, or ``unknown``) and a one-line description."""

    kind: str
    description: str


def _peek(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(_PEEK_BYTES)


def detect_format(path: str | Path) -> DetectedFormat:
    """The format of ``path`` from its first bytes; :class:`InputFormatError` when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise InputFormatError(f"{path}: no such file")
    try:
        head = _peek(path)
    except OSError as exc:
        raise InputFormatError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    if head.startswith(HDF5_SIGNATURE):
        return DetectedFormat("ismrmrd-hdf5", "an HDF5 file")
    if head.startswith(YARDL_MAGIC):
        return _yardl_kind(head)
    if _is_twix(head):
        return DetectedFormat("twix", "a Siemens twix raw-data file")
    if len(head) >= 2 and struct.unpack("<H", head[:2])[0] in (1, 2, 3) and _is_v1_stream(head):
        return DetectedFormat("ismrmrd-stream", "an ISMRMRD v1 stream")
    return DetectedFormat("unknown", describe(head))


def _yardl_kind(head: bytes) -> DetectedFormat:
    schema = head[9:200]  # after magic and int32 version: a varint length, then the schema JSON
    for mark, kind in ((b'{"protocol":{"name":"Mrd"', "mrd2"), (b'{"protocol":{"name":"PETSIRD"', "petsird")):
        if mark in schema[: 4 + len(mark)]:
            return DetectedFormat(kind, f"a yardl binary stream of protocol {kind}")
    name = schema.split(b'"name":"', 1)[-1].split(b'"', 1)[0].decode("ascii", "replace")[:40]
    return DetectedFormat(
        "unknown", f"a yardl binary stream of protocol {name!r}, neither MRD v2 nor PETSIRD"
    )


def _is_twix(head: bytes) -> bool:
    if len(head) < 16:
        return False
    first, second = struct.unpack("<II", head[:8])
    if first == 0 and 1 <= second <= 64:  # VD/VE: MrParcRaidFileHeader (hdSize 0, count)
        return True
    return 32 <= first < (1 << 26) and head[8:14] == b"Config"  # VB: header length, buffer count, "Config"


def _is_v1_stream(head: bytes) -> bool:
    msg_id = struct.unpack("<H", head[:2])[0]
    if msg_id == 1:  # CONFIG_FILE: 1024 bytes of a NUL-terminated printable name
        name = head[2:].split(b"\x00", 1)[0]
        return 0 < len(name) and name.isascii() and name.decode("ascii").isprintable()
    if len(head) < 7:
        return False
    text = head[6:].lstrip()
    return text.startswith((b"<", b"[", b"#", b'"')) or text[:1].isalpha()


def describe(head: bytes) -> str:
    """One line saying what bytes look like (a known magic, text, or the first bytes in hex)."""
    if not head:
        return "an empty file"
    for magic, what in _KNOWN_MAGICS:
        if head.startswith(magic):
            return what
    if len(head) > 132 and head[128:132] == b"DICM":
        return "a DICOM file"
    sample = head[:64]
    if all(32 <= b < 127 or b in (9, 10, 13) for b in sample):
        first_line = sample.decode("ascii").splitlines()[0] if sample.strip() else ""
        return f"a text file starting {first_line[:40]!r}"
    return f"a binary file starting with bytes {sample[:8].hex(' ')}"


def open_raw_input(path: str | Path) -> RawInput:
    """Open an MR raw-data file of any format in the module table (PETSIRD excepted: see ``open_input``).

    The items are read lazily; an unknown format is an :class:`InputFormatError` naming the file, what it
    looks like, and what is readable.
    """
    path = Path(path)
    fmt = detect_format(path)
    if fmt.kind == "ismrmrd-hdf5":
        from plugins.io.ismrmrd_files import read_hdf5

        return read_hdf5(path)
    if fmt.kind == "ismrmrd-stream":
        from plugins.io.ismrmrd_files import read_stream

        return read_stream(path)
    if fmt.kind == "mrd2":
        from plugins.io.mrd2_files import read_mrd2

        return read_mrd2(path)
    if fmt.kind == "twix":
        from plugins.io.twix_files import read_twix_input

        return read_twix_input(path)
    what = fmt.description if fmt.kind == "unknown" else f"{fmt.description}, not MR raw data"
    raise InputFormatError(
        f"{path}: not a raw-data file reconstream reads: it looks like {what} (reads {READABLE})"
    )
