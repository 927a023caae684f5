"""PETSIRD (vendor-neutral PET raw data, PyPI ``petsird``) writing and reading.

Mapping of a cylindrical :class:`recon.tof.geometry.ScannerGeometry` onto PETSIRD:

- one module type; a *module* is one crystal ring (``n_crystals_per_ring`` box crystals, radial depth
  along the module's first axis, front face at ``ring_radius_mm``), replicated ``n_rings`` times along
  ``z`` at the ring positions.  With one energy bin the PETSIRD detection bin is therefore
  ``module * n_crystals_per_ring + element`` = our crystal id.
- TOF bin edges (mm) ``w * (k - n/2)`` for ``k = 0..n``; PETSIRD stores ``(t1 - t2)·c/2`` for the first
  detection bin, which must be the larger one: events ``(c1 < c2, tof_bin)`` are written as
  ``(c2, c1, tof_idx = -tof_bin + n//2)``.
- per-crystal efficiencies (a calibration result) go to ``detection_bin_efficiencies``.
- list-mode batches are written as one ``EventTimeBlock`` per millisecond (PETSIRD events carry no
  time stamp of their own); reading gathers consecutive blocks into batches.
- events are encoded and decoded with numpy (:mod:`plugins.io.petsird_fast`, byte-identical to the
  ``petsird`` library; ≈ 1 µs/event instead of 11–14); files of other layouts are read by the library.
- :class:`PETSIRDWriter` is the stream plugin (entry point ``petsird_writer``) that writes the batches
  passing through a chain.

PETSIRD has no depth of interaction or coincidence window for TOF scanners; the model name carries the
built-in scanner's name, and :func:`scanner_geometry_from_information` returns that built-in scanner
when the stored geometry matches it, otherwise a geometry derived from the file.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import petsird
from pydantic import Field

from plugins.io.petsird_fast import (
    FastPETSIRDWriter,
    PackedBlocks,
    PETSIRDEvents,
    fast_event_blocks,
    packed_time_blocks,
)
from plugins.runtime.config import PluginConfig
from plugins.runtime.plugin import ChainContext, Plugin
from recon.tof.geometry import SPEED_OF_LIGHT_MM_PER_PS, ScannerGeometry, scanner_by_name, scanner_names
from recon.tof.listmode import ListModeBatch, PETAcquisitionInfo

MODEL_PREFIX = "reconstream:"


def _transform(rotation_rad: float, translation_mm: np.ndarray) -> petsird.RigidTransformation:
    c, s = math.cos(rotation_rad), math.sin(rotation_rad)
    rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    matrix = np.hstack([rotation, (rotation @ translation_mm)[:, None]])
    return petsird.RigidTransformation(matrix=matrix.astype(np.float32))


def _crystal_box(size_mm: tuple[float, float, float]) -> petsird.BoxSolidVolume:
    """A box with one corner at the origin: (radial depth, transaxial, axial) along (x, y, z)."""
    transaxial, axial, depth = size_mm
    corners = [(x, y, z) for x in (0.0, depth) for y in (0.0, transaxial) for z in (0.0, axial)]
    shape = petsird.BoxShape(corners=[petsird.Coordinate(c=np.array(c, np.float32)) for c in corners])
    return petsird.BoxSolidVolume(shape=shape, material_id=1)


def _ring_module(scanner: ScannerGeometry) -> petsird.DetectorModule:
    transaxial, axial, _ = scanner.crystal_size_mm
    crystals = petsird.ReplicatedBoxSolidVolume(object=_crystal_box(scanner.crystal_size_mm))
    offset = np.array([scanner.ring_radius_mm, -transaxial / 2.0, -axial / 2.0])
    for azimuth in scanner.crystal_azimuths_rad():
        crystals.transforms.append(_transform(float(azimuth), offset))
    return petsird.DetectorModule(detecting_elements=crystals)


def scanner_information(
    scanner: ScannerGeometry, crystal_efficiencies: np.ndarray | None = None
) -> petsird.ScannerInformation:
    """PETSIRD scanner information of a cylindrical scanner (optionally with crystal efficiencies)."""
    rings = petsird.ReplicatedDetectorModule(object=_ring_module(scanner))
    for z_mm in scanner.ring_positions_z_mm():
        rings.transforms.append(_transform(0.0, np.array([0.0, 0.0, z_mm])))
    width = scanner.tof_bin_width_mm()
    edges = (width * (np.arange(scanner.n_tof_bins + 1) - scanner.n_tof_bins / 2.0)).astype(np.float32)
    if not scanner.is_tof:  # non-TOF: the single bin spans the coincidence window
        half = SPEED_OF_LIGHT_MM_PER_PS * scanner.coincidence_window_ns * 1000.0 / 4.0
        edges = np.array([-half, half], np.float32)
    tof_fwhm_mm = SPEED_OF_LIGHT_MM_PER_PS * (scanner.tof_fwhm_ps or 0.0) / 2.0
    efficiencies = petsird.DetectionEfficiencies(calibration_factor=1.0)
    if crystal_efficiencies is not None:
        efficiencies.detection_bin_efficiencies = [np.asarray(crystal_efficiencies, np.float32)]
    return petsird.ScannerInformation(
        model_name=MODEL_PREFIX + scanner.name,
        scanner_geometry=petsird.ScannerGeometry(replicated_modules=[rings]),
        tof_bin_edges=[[petsird.BinEdges(edges=edges)]],
        tof_resolution=[[tof_fwhm_mm]],
        event_energy_bin_edges=[petsird.BinEdges(edges=np.array(scanner.energy_window_kev, np.float32))],
        energy_resolution_at_511=[scanner.energy_resolution_percent / 100.0],
        prompt_event_policy=petsird.CoincidencePolicy.REJECT_HIGHER_MULTIPLES,
        delayed_event_policy=petsird.CoincidencePolicy.REJECT_HIGHER_MULTIPLES,
        detection_efficiencies=efficiencies,
    )


def detection_bin_centres_mm(info: petsird.ScannerInformation, type_of_module: int = 0) -> np.ndarray:
    """Centre of every detecting element of one module type, ``(n_modules * n_elements, 3)`` float64,
    in detection-bin order (energy bins not expanded).  Works for any PETSIRD geometry of boxes."""
    replicated = info.scanner_geometry.replicated_modules[type_of_module]
    elements = replicated.object.detecting_elements
    corners = np.array([c.c for c in elements.object.shape.corners], dtype=np.float64)
    centre = np.append(corners.mean(axis=0), 1.0)
    element_matrices = np.stack([t.matrix for t in elements.transforms]).astype(np.float64)
    in_module = element_matrices @ centre  # (n_elements, 3)
    module_matrices = np.stack([t.matrix for t in replicated.transforms]).astype(np.float64)
    homogeneous = np.concatenate([in_module, np.ones((in_module.shape[0], 1))], axis=1)
    return np.einsum("mij,ej->mei", module_matrices, homogeneous).reshape(-1, 3)


def _derived_geometry(info: petsird.ScannerInformation, name: str) -> ScannerGeometry:
    replicated = info.scanner_geometry.replicated_modules[0]
    elements = replicated.object.detecting_elements
    corners = np.array([c.c for c in elements.object.shape.corners], dtype=np.float64)
    depth, transaxial, axial = np.ptp(corners, axis=0)
    centres = detection_bin_centres_mm(info)
    n_rings, n_per_ring = len(replicated.transforms), len(elements.transforms)
    radius_front = float(np.hypot(centres[0, 0], centres[0, 1]) - depth / 2.0)
    z = centres[::n_per_ring, 2]
    edges = np.asarray(info.tof_bin_edges[0][0].edges, dtype=np.float64)
    n_tof = len(edges) - 1
    bin_width_ps = float(np.mean(np.diff(edges))) * 2.0 / SPEED_OF_LIGHT_MM_PER_PS
    fwhm_mm = float(info.tof_resolution[0][0])
    window_ns = float(np.ptp(edges)) * 2.0 / SPEED_OF_LIGHT_MM_PER_PS / 1000.0
    energy = info.event_energy_bin_edges[0].edges
    return ScannerGeometry(
        name=name,
        n_crystals_per_ring=n_per_ring,
        n_rings=n_rings,
        ring_radius_mm=radius_front,
        crystal_size_mm=(float(transaxial), float(axial), float(depth)),
        ring_spacing_mm=float(np.mean(np.diff(z))) if n_rings > 1 else float(axial),
        depth_of_interaction_mm=float(depth) / 2.0,
        tof_fwhm_ps=fwhm_mm * 2.0 / SPEED_OF_LIGHT_MM_PER_PS if n_tof > 1 and fwhm_mm > 0 else None,
        tof_bin_width_ps=bin_width_ps,
        n_tof_bins=n_tof,
        coincidence_window_ns=window_ns,
        energy_window_kev=(float(energy[0]), float(energy[-1])),
        energy_resolution_percent=float(info.energy_resolution_at_511[0]) * 100.0,
    )


def scanner_geometry_from_information(info: petsird.ScannerInformation) -> ScannerGeometry:
    """The cylindrical scanner described by ``info`` (one module type of ring modules)."""
    if info.scanner_geometry.number_of_module_types() != 1:
        raise ValueError("only PETSIRD scanners with one module type map onto a cylindrical ScannerGeometry")
    name = info.model_name.removeprefix(MODEL_PREFIX)
    derived = _derived_geometry(info, name or "petsird")
    if name in scanner_names():
        builtin = scanner_by_name(name)
        same = np.allclose(
            builtin.crystal_positions_mm(), _with_doi(derived, builtin.depth_of_interaction_mm), atol=0.05
        )
        if same and builtin.n_tof_bins == derived.n_tof_bins:
            return builtin
    return derived


def _with_doi(scanner: ScannerGeometry, doi_mm: float) -> np.ndarray:
    fields = {f: getattr(scanner, f) for f in scanner.__dataclass_fields__}
    return ScannerGeometry(**{**fields, "depth_of_interaction_mm": doi_mm}).crystal_positions_mm()


def crystal_efficiencies_from_information(info: petsird.ScannerInformation) -> np.ndarray | None:
    """Per-crystal efficiencies stored in ``info`` (float32), or ``None``."""
    stored = info.detection_efficiencies.detection_bin_efficiencies
    if not stored:
        return None
    return np.asarray(stored[0], dtype=np.float32)


def _events(first: np.ndarray, second: np.ndarray, tof_idx: np.ndarray) -> list[petsird.CoincidenceEvent]:
    return [
        petsird.CoincidenceEvent(detection_bins=[int(a), int(b)], tof_idx=int(t))
        for a, b, t in zip(first.tolist(), second.tolist(), tof_idx.tolist(), strict=True)
    ]


def time_blocks_of_batch(batch: ListModeBatch, scanner: ScannerGeometry) -> Iterator[petsird.TimeBlock]:
    """PETSIRD event time blocks (one per millisecond) holding the events of ``batch``."""
    tof_idx = (scanner.max_tof_bin - batch.tof_bin.astype(np.int64)).astype(np.int64)
    starts = np.flatnonzero(np.diff(batch.time_ms.astype(np.int64), prepend=-1))
    for begin, end in zip(starts.tolist(), [*starts[1:].tolist(), batch.n_events], strict=True):
        part = slice(begin, end)
        prompt = batch.is_prompt[part]
        pair = (batch.crystal_id_2[part], batch.crystal_id_1[part], tof_idx[part])
        block = petsird.EventTimeBlock(
            time_interval=petsird.TimeInterval(
                start=int(batch.time_ms[begin]), stop=int(batch.time_ms[begin]) + 1
            ),
            prompt_events=[[_events(*(a[prompt] for a in pair))]],
            delayed_events=[[_events(*(a[~prompt] for a in pair))]],
        )
        yield petsird.TimeBlock.EventTimeBlock(block)


def petsird_header(
    scanner: ScannerGeometry,
    crystal_efficiencies: np.ndarray | None = None,
    patient_weight_kg: float | None = None,
) -> petsird.Header:
    """PETSIRD header for an acquisition on ``scanner``."""
    exam = petsird.ExamInformation(modality="PT")
    if patient_weight_kg is not None:
        exam.patient = petsird.DICOMPatientInformation(patients_weight=float(patient_weight_kg))
    return petsird.Header(scanner=scanner_information(scanner, crystal_efficiencies), exam=exam)


def write_petsird(
    path: str | Path,
    scanner: ScannerGeometry,
    batches: Iterable[ListModeBatch],
    crystal_efficiencies: np.ndarray | None = None,
    patient_weight_kg: float | None = None,
) -> int:
    """Write ``batches`` (of ``scanner``) to a binary PETSIRD file; returns the number of events."""
    n_events = 0
    with FastPETSIRDWriter(str(path)) as writer:
        writer.write_header(petsird_header(scanner, crystal_efficiencies, patient_weight_kg))
        for batch in batches:
            if batch.scanner != scanner.name:
                raise ValueError(f"batch of scanner {batch.scanner!r} written as {scanner.name!r}")
            writer.write_time_blocks(PackedBlocks(*packed_time_blocks(batch, scanner)))  # type: ignore[arg-type]
            n_events += batch.n_events
    return n_events


def _block_arrays(block: petsird.EventTimeBlock) -> PETSIRDEvents:
    lists: list[tuple[int, int, int, bool]] = []
    for events, prompt in ((block.prompt_events, True), (block.delayed_events, False)):
        for row in events or []:
            for pair_list in row:
                lists.extend((e.detection_bins[0], e.detection_bins[1], e.tof_idx, prompt) for e in pair_list)
    table = np.array(lists, dtype=np.int64).reshape(-1, 4)
    return PETSIRDEvents(
        int(block.time_interval.start),
        table[:, :2].astype(np.uint32),
        table[:, 2].astype(np.uint32),
        table[:, 3] == 1,
    )


def read_petsird_raw(path: str | Path, fast: bool = True) -> tuple[petsird.Header, list[PETSIRDEvents]]:
    """Read any binary PETSIRD file: its header and the events of every event time block (all module
    types pooled; other time-block kinds are skipped).  ``fast``: decode with numpy when the layout
    allows (:mod:`plugins.io.petsird_fast`), else through the library."""
    if fast:
        with petsird.BinaryPETSIRDReader(str(path), skip_completed_check=True) as reader:
            header = reader.read_header()
        blocks_fast = fast_event_blocks(path, header)
        if blocks_fast is not None:
            return header, blocks_fast
    blocks: list[PETSIRDEvents] = []
    with petsird.BinaryPETSIRDReader(str(path)) as reader:
        header = reader.read_header()
        for time_block in reader.read_time_blocks():
            if isinstance(time_block, petsird.TimeBlock.EventTimeBlock):
                blocks.append(_block_arrays(time_block.value))
    return header, blocks


def _batch_from_blocks(blocks: list[PETSIRDEvents], scanner: ScannerGeometry, last: bool) -> ListModeBatch:
    bins = np.concatenate([b.detection_bins for b in blocks]).astype(np.int32)
    tof_idx = np.concatenate([b.tof_idx for b in blocks]).astype(np.int64)
    return ListModeBatch(
        crystal_id_1=bins[:, 1].copy(),
        crystal_id_2=bins[:, 0].copy(),
        tof_bin=(scanner.max_tof_bin - tof_idx).astype(np.int16),
        is_prompt=np.concatenate([b.is_prompt for b in blocks]),
        time_ms=np.concatenate([np.full(b.tof_idx.shape[0], b.start_ms, np.uint32) for b in blocks]),
        scanner=scanner.name,
        is_last_in_frame=last,
    )


def read_petsird(
    path: str | Path, events_per_batch: int = 1 << 16
) -> tuple[ScannerGeometry, list[ListModeBatch], petsird.Header]:
    """Read a PETSIRD file written for a cylindrical scanner into list-mode batches (one frame)."""
    header, blocks = read_petsird_raw(path)
    scanner = scanner_geometry_from_information(header.scanner)
    batches: list[ListModeBatch] = []
    pending: list[PETSIRDEvents] = []
    n_pending = 0
    for block in blocks:
        pending.append(block)
        n_pending += block.tof_idx.shape[0]
        if n_pending >= events_per_batch:
            batches.append(_batch_from_blocks(pending, scanner, last=False))
            pending, n_pending = [], 0
    if pending or not batches:
        batches.append(_batch_from_blocks(pending or [_empty_block()], scanner, last=True))
    else:
        batches[-1] = ListModeBatch(**{**batches[-1].__dict__, "is_last_in_frame": True})
    return scanner, batches, header


#: F-18 half-life, s: PETSIRD headers written here carry no isotope, so decay correction assumes FDG.
_F18_HALF_LIFE_S = 6586.2


def acquisition_info_from_petsird(
    header: petsird.Header, scanner: ScannerGeometry, batches: list[ListModeBatch]
) -> PETAcquisitionInfo:
    """What a PETSIRD file tells the reconstruction besides its events: the frame (from the first and last
    1 ms time block), the calibration's crystal efficiencies and the patient weight.  No dose is stored, so
    there is no SUV; the isotope is taken as F-18 for decay correction."""
    stamps = [b.time_ms for b in batches if b.n_events]
    first_ms = min(int(t[0]) for t in stamps) if stamps else 0
    last_ms = max(int(t[-1]) for t in stamps) if stamps else 0
    patient = header.exam.patient if header.exam is not None else None
    weight_kg = float(patient.patients_weight) if patient is not None and patient.patients_weight else 1.0
    return PETAcquisitionInfo(
        scanner=scanner.name,
        frame_start_s=first_ms / 1000.0,
        frame_duration_s=(last_ms - first_ms + 1) / 1000.0,
        isotope="F-18 (assumed)",
        half_life_s=_F18_HALF_LIFE_S,
        injected_dose_bq=0.0,
        injection_time_s=0.0,
        patient_weight_kg=weight_kg,
        crystal_efficiencies=crystal_efficiencies_from_information(header.scanner),
    )


def _empty_block() -> PETSIRDEvents:
    return PETSIRDEvents(0, np.zeros((0, 2), np.uint32), np.zeros(0, np.uint32), np.zeros(0, bool))


class PETSIRDWriterConfig(PluginConfig):
    """Parameters of :class:`PETSIRDWriter`."""

    filename: str = Field(
        "listmode.petsird", min_length=1, description="PETSIRD file name in the output folder"
    )
    pass_through: bool = Field(True, description="forward the list-mode batches to the next stage")


class PETSIRDWriter(Plugin):
    """Write PET list-mode batches to a PETSIRD file in the output folder (one file per run)."""

    Config = PETSIRDWriterConfig
    accepts = (ListModeBatch,)

    def __init__(self, config: PluginConfig, context: ChainContext) -> None:
        super().__init__(config, context)
        if context.out_dir is None:
            raise ValueError("petsird_writer needs an output folder (out_dir)")
        self._writer: FastPETSIRDWriter | None = None
        self._scanner: ScannerGeometry | None = None
        self.n_events = 0

    def process(self, item: ListModeBatch) -> Iterable[ListModeBatch]:
        config = self.config
        assert isinstance(config, PETSIRDWriterConfig) and self.context.out_dir is not None
        if self._writer is None:
            extra = self.context.extras.get("pet_scanner")
            self._scanner = extra if isinstance(extra, ScannerGeometry) else scanner_by_name(item.scanner)
            self._writer = FastPETSIRDWriter(str(self.context.out_dir / config.filename))
            self._writer.write_header(petsird_header(self._scanner))
        assert self._scanner is not None
        self._writer.write_time_blocks(PackedBlocks(*packed_time_blocks(item, self._scanner)))  # type: ignore[arg-type]
        self.n_events += item.n_events
        return (item,) if config.pass_through else ()

    def finish(self) -> Iterable[ListModeBatch]:
        if self._writer is not None:
            self._writer.close()
            self.log.info("wrote %d events to %s", self.n_events, getattr(self.config, "filename", ""))
        return ()
