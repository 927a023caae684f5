"""Item types that travel between plugins besides the ``ismrmrd`` objects themselves.

MR raw data travel as ``ismrmrd.Acquisition`` and ``ismrmrd.Waveform``, images as ``ismrmrd.Image``;
PET list-mode as :class:`recon.tof.listmode.ListModeBatch`.  Side outputs that are not images (a flow
report, a log of rejected heartbeats) travel as :class:`Report`.

An input that stopped before its end (a truncated file, a journal cut by a crash or a disconnect) ends
with a :class:`StreamInterrupted` marker: stages that collect units (slices, series, frames) then emit
the complete ones and, for each incomplete one, an :class:`IncompleteUnit` saying what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Report:
    """A named side output written next to the images (``--out``) and sent to clients as TEXT.

    Attributes:
        filename: file name relative to the output folder, e.g. ``"flow_report.json"``.
        content: the bytes to write.
        media_type: MIME type, e.g. ``"application/json"``, ``"text/csv"``, ``"image/png"``.
        source: name of the plugin that produced it.
    """

    filename: str
    content: bytes
    media_type: str
    source: str = ""

    def __post_init__(self) -> None:
        if "/" in self.filename or "\\" in self.filename or self.filename.startswith("."):
            raise ValueError(f"report filename must be a plain file name, got {self.filename!r}")


@dataclass(frozen=True)
class StreamInterrupted:
    """The last item of an input that stopped before its end.

    Attributes:
        reason: what happened, e.g. ``"connection closed inside message #812 (ACQUISITION)"``.
        n_messages: complete messages read before the cut.
    """

    reason: str
    n_messages: int = 0


@dataclass(frozen=True)
class IncompleteUnit:
    """A unit a stage did not reconstruct because the input was interrupted inside it.

    Attributes:
        stage: the plugin that held it (e.g. ``cine_accumulate``).
        kind: ``slice``, ``series`` or ``frame``.
        index: its index (``idx.slice`` for a slice).
        readouts_received: readouts of the unit that did arrive.
        missing: what did not arrive, in words (e.g. ``"ky lines 96-191 (96 of 192)"``).
    """

    stage: str
    kind: str
    index: int
    readouts_received: int
    missing: str

    def as_dict(self) -> dict[str, object]:
        return {
            "stage": self.stage,
            "kind": self.kind,
            "index": self.index,
            "readouts_received": self.readouts_received,
            "missing": self.missing,
        }


def describe_item(item: object) -> str:
    """A short human description of a stream item for error messages (type and its indices)."""
    import ismrmrd

    if isinstance(item, ismrmrd.Acquisition):
        idx = item.idx
        return (
            f"Acquisition scan_counter={item.scan_counter} slice={idx.slice} set={idx.set} "
            f"line={idx.kspace_encode_step_1} contrast={idx.contrast}"
        )
    if isinstance(item, ismrmrd.Image):
        return f"Image series={item.image_series_index} slice={item.slice} phase={item.phase} set={item.set}"
    if isinstance(item, ismrmrd.Waveform):
        return f"Waveform id={item.waveform_id} time_stamp={item.time_stamp}"
    if isinstance(item, Report):
        return f"Report {item.filename}"
    return type(item).__name__
