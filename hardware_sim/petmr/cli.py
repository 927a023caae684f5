"""``reconstream simulate petmr --out DIR``: a Dixon exam and the PET list-mode of one torso, one truth file.

Both simulators share the anatomy (the MR thorax, :mod:`hardware_sim.mr.anatomy`, which the PET torso
derives from) and the frame of reference: DICOM patient coordinates LPS in mm, head first supine, the magnet
isocentre (= PET scanner centre) at the origin.  ``DIR`` receives

- ``dixon.h5``: the multi-echo GRE Dixon exam (ISMRMRD HDF5, axial slices centred on the isocentre),
- ``listmode.petsird``: the PET list-mode of the FDG torso (as ``simulate pet`` writes it),
- ``truth.h5``: the single truth file, never opened by a chain: the PET truth at the root (layout of
  :mod:`hardware_sim.pet.truth`) and the MR truth in the group ``/mr`` (layout of
  :mod:`hardware_sim.mr.truth`); root attributes ``frame_of_reference``, ``heart_contraction_pet`` and
  ``geometry_scale``.

The PET job is checked (phantom fitted to the scanner, simulator built) before the MR simulation starts, and
everything is written into a temporary folder beside ``DIR`` whose files move into ``DIR`` only when both
simulations succeeded.  On a scanner narrower than the torso (``small``) the PET torso is shrunk to fit
(:mod:`hardware_sim.pet.fit`) and, to keep one anatomy, the Dixon exam's geometry is scaled by the same factor:
field of view, slice thickness and slice positions in the header (the k-space samples of an object scaled by s
imaged with a field of view scaled by s are the same numbers); the MR truth's slice positions follow.
"""

from __future__ import annotations

import argparse
import copy
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import h5py
import ismrmrd

from hardware_sim.cli_options import count, field_help, validated
from hardware_sim.mr.config import MRExamConfig
from hardware_sim.mr.exam import SimulatedExam, simulate_exam
from hardware_sim.pet.cli import SCANNERS, BatchWriter, PETSimulationJob, run_to_file
from hardware_sim.pet.config import PETSimulationConfig, SimulationTally
from hardware_sim.pet.torso import mean_contraction
from hardware_sim.staging import staged_folder

logger = logging.getLogger(__name__)

DIXON_FILE, LISTMODE_FILE, TRUTH_FILE = "dixon.h5", "listmode.petsird", "truth.h5"
FRAME_OF_REFERENCE = "DICOM patient LPS, mm, head first supine, origin at the magnet isocentre = PET centre"
_MR = MRExamConfig.model_fields

#: ``write_raw(path, header, items) -> n_items`` (:func:`plugins.io.ismrmrd_files.write_raw`), passed in.
RawWriter = Callable[[Path, Any, Iterable[Any]], int]


@dataclass(frozen=True)
class PETMRJob:
    """One ``simulate petmr`` run.

    Attributes:
        mr: the Dixon exam (protocol ``dixon``, axial slices centred on the isocentre).
        pet: the PET job (torso phantom, list-mode to ``out_dir/listmode.petsird``).
        out_dir: output folder.
    """

    mr: MRExamConfig
    pet: PETSimulationJob
    out_dir: Path

    def __post_init__(self) -> None:
        if self.mr.protocol != "dixon" or self.pet.phantom != "torso":
            raise ValueError("simulate petmr pairs a Dixon exam with the torso phantom")

    @property
    def dixon_path(self) -> Path:
        """The ISMRMRD Dixon exam."""
        return self.out_dir / DIXON_FILE

    @property
    def listmode_path(self) -> Path:
        """The PETSIRD list-mode."""
        return self.out_dir / LISTMODE_FILE

    @property
    def truth_path(self) -> Path:
        """The single truth file."""
        return self.out_dir / TRUTH_FILE


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``simulate petmr`` options to ``parser``."""
    parser.add_argument(
        "--scanner", choices=SCANNERS, default="signa", help="PET scanner model (default signa)"
    )
    parser.add_argument(
        "--counts", type=count, default=1_000_000, help="PET prompt events, 1e5..1e8 (default 1e6)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed of both simulators")
    parser.add_argument("--voxel-mm", type=float, default=2.0, help="PET phantom voxel size, mm")
    parser.add_argument("--no-scatter", action="store_true", help="PET: absorb instead of scattering photons")
    parser.add_argument(
        "--field", type=float, choices=[1.5, 3.0], default=3.0, help="MR field strength, T (default 3.0)"
    )
    parser.add_argument("--echoes", type=int, choices=[2, 3], default=3, help="Dixon echoes (default 3)")
    parser.add_argument("--slices", type=int, default=32, help="axial Dixon slices (default 32)")
    parser.add_argument(
        "--slice-thickness-mm",
        type=float,
        default=8.0,
        help="Dixon slice thickness = spacing, mm (default 8)",
    )
    parser.add_argument(
        "--coils", type=int, default=_MR["n_coils"].default, help=field_help(MRExamConfig, "n_coils")
    )
    parser.add_argument(
        "--matrix", type=int, nargs=2, metavar=("READOUT", "PHASE"), default=None,
        help="Dixon recon matrix (default 192 156; the readout FOV is 450 mm)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder (dixon.h5, listmode.petsird, truth.h5)"
    )


#: The option that sets each MR config field (errors name the option).
_MR_FLAGS = {
    "n_echoes": "--echoes",
    "n_slices": "--slices",
    "slice_thickness_mm": "--slice-thickness-mm",
    "n_coils": "--coils",
    "n_readout": "--matrix READOUT",
    "n_phase_encodes": "--matrix PHASE",
}


def config_from_args(args: argparse.Namespace) -> PETMRJob:
    """The job described by parsed ``simulate petmr`` arguments."""
    matrix = args.matrix or (_MR["n_readout"].default, _MR["n_phase_encodes"].default)
    mr = validated(
        MRExamConfig,
        _MR_FLAGS,
        protocol="dixon",
        field_strength_t=args.field,
        n_echoes=args.echoes,
        n_slices=args.slices,
        slice_thickness_mm=args.slice_thickness_mm,
        n_coils=args.coils,
        n_readout=matrix[0],
        n_phase_encodes=matrix[1],
        seed=args.seed,
    )
    out_dir = Path(args.out)
    pet_config = PETSimulationConfig(
        n_prompts=args.counts,
        seed=args.seed,
        injected_dose_bq=370e6,
        patient_weight_kg=75.0,
        scatter=not args.no_scatter,
    )
    pet = PETSimulationJob(
        "torso",
        args.scanner,
        args.voxel_mm,
        1.0,
        pet_config,
        out_dir / LISTMODE_FILE,
        None,
        out_dir / TRUTH_FILE,
    )
    return PETMRJob(mr, pet, out_dir)


def run_to_folder(
    job: PETMRJob, write_raw: RawWriter, write_batches: BatchWriter
) -> tuple[SimulatedExam, SimulationTally]:
    """Write the Dixon exam, the PET list-mode and the single truth file into ``job.out_dir`` (all or nothing)."""
    simulator = job.pet.simulator()  # fits the phantom and checks it against the scanner before any MR work
    scale = simulator.phantom.grid.voxel_size_mm[0] / job.pet.voxel_size_mm
    with staged_folder(job.out_dir) as temp:
        staged = replace(
            job,
            out_dir=temp,
            pet=replace(job.pet, out=temp / LISTMODE_FILE, truth=temp / TRUTH_FILE),
        )
        exam = simulate_exam(job.mr)
        header, items = scaled_mr_geometry(exam.header, exam.items(), scale)
        write_raw(staged.dixon_path, header, items)
        tally = run_to_file(staged.pet, write_batches, simulator)
        _append_mr_truth(exam, staged.truth_path, scale)
    return exam, tally


def _append_mr_truth(exam: SimulatedExam, truth_path: Path, scale: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mr_truth = Path(tmp) / "mr_truth.h5"
        exam.write_truth(mr_truth)
        with h5py.File(mr_truth, "r") as source, h5py.File(truth_path, "a") as truth:
            group = truth.create_group("mr")
            for name in source:
                source.copy(name, group)
            for key, value in source.attrs.items():
                group.attrs[key] = value
            if scale != 1.0 and "slice_positions_mm" in group:
                group["slice_positions_mm"][...] = group["slice_positions_mm"][...] * scale
            group.attrs["geometry_scale"] = scale
            truth.attrs["frame_of_reference"] = FRAME_OF_REFERENCE
            truth.attrs["heart_contraction_pet"] = mean_contraction()
            truth.attrs["geometry_scale"] = scale


def scaled_mr_geometry(header: Any, items: Iterable[Any], scale: float) -> tuple[Any, Iterator[Any]]:
    """The MR exam as it would be of the anatomy scaled by ``scale`` about the isocentre: header fields of view
    (incl. slice thickness) and every acquisition's position × scale; k-space samples unchanged."""
    if scale == 1.0:
        return header, iter(items)
    logger.warning("Dixon geometry scaled × %.3f with the PET torso (one anatomy)", scale)
    header = copy.deepcopy(header)
    for encoding in header.encoding:
        for space in (encoding.encodedSpace, encoding.reconSpace):
            fov = space.fieldOfView_mm
            fov.x, fov.y, fov.z = fov.x * scale, fov.y * scale, fov.z * scale

    def positions() -> Iterator[Any]:
        for item in items:
            if isinstance(item, ismrmrd.Acquisition):
                item.position = tuple(float(p) * scale for p in item.position)
            yield item

    return header, positions()
