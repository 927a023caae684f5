"""``reconstream simulate pet``: argument parsing and the file-writing run of the PET simulator.

The lead's CLI calls :func:`configure_parser` on the ``pet`` sub-parser and :func:`config_from_args`
on the parsed namespace, then :func:`run_to_file` for ``--out`` or streams
:meth:`PETSimulationJob.messages` (message 1100, see :mod:`recon.tof.listmode`) for ``--to``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hardware_sim.cli_options import count
from hardware_sim.pet.config import PETSimulationConfig, SimulationTally
from hardware_sim.pet.fit import fit_to_scanner
from hardware_sim.pet.phantoms import PETPhantom, nema_iec_phantom, uniform_cylinder_phantom
from hardware_sim.pet.simulator import PETListModeSimulator
from hardware_sim.pet.torso import torso_phantom
from recon.tof.geometry import ScannerGeometry, scanner_by_name
from recon.tof.listmode import ListModeBatch, encode_message

logger = logging.getLogger(__name__)

PHANTOMS = ("nema", "torso", "cylinder")
#: Default injected FDG dose and patient weight of the torso phantom.
TORSO_DOSE_BQ, TORSO_WEIGHT_KG = 370e6, 75.0
SCANNERS = ("signa", "mmr", "small")
#: The cross-calibration cylinder (``--phantom cylinder``): inner radius and length, mm, and concentration, Bq/ml,
#: on a clinical ring (≥ 312 mm radius); a smaller ring gets it scaled with its radius (the ``small`` scanner a
#: Ø 96 × 96 mm cylinder), so that it leaves the same share of the FOV free as a Ø 20 cm cylinder on a Signa.
CYLINDER_RADIUS_MM, CYLINDER_LENGTH_MM, CYLINDER_BQ_PER_ML = 100.0, 200.0, 5000.0
CLINICAL_RING_RADIUS_MM = 312.0


@dataclass(frozen=True)
class PETSimulationJob:
    """One ``simulate pet`` run.

    Attributes:
        phantom: ``"nema"`` or ``"torso"``.
        scanner: ``"signa"``, ``"mmr"`` or ``"small"``.
        voxel_size_mm: voxel size of the phantom maps, mm.
        activity_scale: factor on the phantom's activity (count-rate studies).
        config: the simulation parameters.
        out: PETSIRD output file (exclusive with ``to``).
        to: ``HOST:PORT`` of a reconstruction server (exclusive with ``out``).
        truth: truth file (HDF5); default ``<out>.truth.h5`` (or ``pet_truth.h5`` when streaming).
        calibration_prompts: prompts of a normalisation scan whose estimated crystal efficiencies go
            into the output (0: none).
        calibration_out: PETSIRD file for the normalisation scan's own list-mode (``None``: not written).
    """

    phantom: str
    scanner: str
    voxel_size_mm: float
    activity_scale: float
    config: PETSimulationConfig
    out: Path | None
    to: str | None
    truth: Path
    calibration_prompts: int = 0
    calibration_out: Path | None = None

    @property
    def reading_path(self) -> Path | None:
        """The dose-calibrator reading written beside a cylinder scan (``<out>.dose_calibrator.json``)."""
        if self.phantom != "cylinder" or self.out is None:
            return None
        return Path(f"{self.out}.dose_calibrator.json")

    def __post_init__(self) -> None:
        if self.phantom not in PHANTOMS or self.scanner not in SCANNERS:
            raise ValueError(f"phantom must be one of {PHANTOMS} and scanner one of {SCANNERS}")
        if (self.out is None) == (self.to is None):
            raise ValueError("give exactly one of out and to")
        if self.voxel_size_mm <= 0 or self.activity_scale <= 0 or self.calibration_prompts < 0:
            raise ValueError("voxel_size_mm and activity_scale must be > 0, calibration_prompts >= 0")

    def crystal_efficiencies(self) -> np.ndarray | None:
        """Efficiencies from the normalisation scan (``None`` without one)."""
        if self.calibration_prompts == 0:
            return None
        from hardware_sim.pet.calibration import run_calibration_scan

        return run_calibration_scan(
            self.geometry(),
            self.calibration_prompts,
            seed=self.config.seed + 1,
            scanner_seed=self.config.scanner_seed,
        )

    def cylinder_scale(self) -> float:
        """Size of the calibration cylinder on this scanner relative to its clinical size (≤ 1)."""
        return min(1.0, self.geometry().ring_radius_mm / CLINICAL_RING_RADIUS_MM)

    def geometry(self) -> ScannerGeometry:
        """The scanner geometry."""
        return scanner_by_name(self.scanner)

    def build_phantom(self) -> PETPhantom:
        """The phantom, with its activity scaled by ``activity_scale`` and its geometry fitted to the scanner
        (:func:`hardware_sim.pet.fit.fit_to_scanner`: a uniform shrink when it is wider than the FOV)."""
        return fit_to_scanner(self._unfitted_phantom(), self.geometry())[0]

    def _unfitted_phantom(self) -> PETPhantom:
        if self.phantom == "nema":
            phantom = nema_iec_phantom(voxel_size_mm=self.voxel_size_mm, seed=self.config.seed)
        elif self.phantom == "cylinder":
            s = self.cylinder_scale()
            phantom = uniform_cylinder_phantom(
                CYLINDER_RADIUS_MM * s,
                CYLINDER_LENGTH_MM * s,
                CYLINDER_BQ_PER_ML,
                voxel_size_mm=self.voxel_size_mm,
            )
        else:
            config = self.config  # the torso's uptake follows the dose, weight and uptake time of the job
            phantom = torso_phantom(
                voxel_size_mm=self.voxel_size_mm,
                injected_dose_bq=config.injected_dose_bq or TORSO_DOSE_BQ,
                uptake_time_s=-config.injection_time_s,
                patient_weight_kg=config.patient_weight_kg or TORSO_WEIGHT_KG,
                half_life_s=config.half_life_s,
                seed=config.seed,
            )
        if self.activity_scale == 1.0:
            return phantom
        scaled = (phantom.activity_bq_per_ml * self.activity_scale).astype("float32")
        return PETPhantom(
            phantom.name,
            phantom.grid,
            scaled,
            phantom.mu_per_cm,
            phantom.labels,
            phantom.label_names,
            phantom.weight_kg,
        )

    def simulator(self) -> PETListModeSimulator:
        """A fresh simulator for this job."""
        return PETListModeSimulator(self.build_phantom(), self.geometry(), self.config)

    def messages(self, simulator: PETListModeSimulator) -> Iterator[bytes]:
        """The simulation as framework messages 1100 (one per list-mode batch)."""
        for batch in simulator.batches():
            yield encode_message(batch)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``simulate pet`` options to ``parser``."""
    parser.add_argument("--phantom", choices=PHANTOMS, default="nema", help="phantom (default nema)")
    parser.add_argument("--scanner", choices=SCANNERS, default="signa", help="scanner model (default signa)")
    parser.add_argument(
        "--counts", type=count, default=1_000_000, help="prompt events to simulate, 1e5..1e8 (default 1e6)"
    )
    parser.add_argument(
        "--duration-s", type=float, default=None, help="stop at this acquisition time, s (default: none)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--voxel-mm", type=float, default=2.0, help="phantom voxel size, mm (default 2)")
    parser.add_argument(
        "--activity-scale", type=float, default=1.0, help="factor on the phantom activity (default 1)"
    )
    parser.add_argument(
        "--injected-dose-mbq",
        type=float,
        default=None,
        help="injected dose for SUV, MBq (default: none; torso 370)",
    )
    parser.add_argument(
        "--injection-time-s",
        type=float,
        default=-3600.0,
        help="injection time relative to scan start, s (default -3600)",
    )
    parser.add_argument(
        "--weight-kg", type=float, default=None, help="patient weight for SUV, kg (default: none; torso 75)"
    )
    parser.add_argument("--no-scatter", action="store_true", help="absorb instead of scattering photons")
    parser.add_argument(
        "--calibration-counts",
        type=count,
        default=0,
        help="prompts of a normalisation scan (0: none; 1e7 for clinical quality; default 0)",
    )
    parser.add_argument(
        "--calibration-out",
        type=Path,
        default=None,
        help="also write the normalisation scan (PETSIRD; default: not written)",
    )
    parser.add_argument("--truth", type=Path, default=None, help="truth file (default <out>.truth.h5)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, default=None, help="PETSIRD output file (its folder is created)")
    target.add_argument("--to", default=None, metavar="HOST:PORT", help="stream to a reconstruction server")


def config_from_args(args: argparse.Namespace) -> PETSimulationJob:
    """The job described by parsed ``simulate pet`` arguments."""
    dose = None if args.injected_dose_mbq is None else args.injected_dose_mbq * 1e6
    weight = args.weight_kg
    if args.phantom == "torso":  # the torso is a patient: SUV needs its whole-body dose and weight
        dose, weight = dose or TORSO_DOSE_BQ, weight or TORSO_WEIGHT_KG
    config = PETSimulationConfig(
        n_prompts=args.counts,
        duration_s=args.duration_s,
        seed=args.seed,
        injected_dose_bq=dose,
        injection_time_s=args.injection_time_s,
        patient_weight_kg=weight,
        scatter=not args.no_scatter,
    )
    truth = args.truth or (Path(f"{args.out}.truth.h5") if args.out is not None else Path("pet_truth.h5"))
    return PETSimulationJob(
        args.phantom, args.scanner, args.voxel_mm, args.activity_scale, config, args.out, args.to, truth,
        args.calibration_counts, args.calibration_out,
    )  # fmt: skip


#: ``write_petsird(path, scanner, batches, crystal_efficiencies, patient_weight_kg) -> n_events``, i.e.
#: :func:`plugins.io.petsird_io.write_petsird`, passed in by the CLI (hardware_sim never imports plugins).
BatchWriter = Callable[[Path, ScannerGeometry, Iterable[ListModeBatch], np.ndarray | None, float | None], int]


def run_to_file(
    job: PETSimulationJob, write_batches: BatchWriter, simulator: PETListModeSimulator | None = None
) -> SimulationTally:
    """Simulate ``job`` into ``job.out`` with ``write_batches`` and write the truth file; returns the tallies.

    The CLI calls ``run_to_file(job, plugins.io.petsird_io.write_petsird)``; ``simulator`` (from
    :meth:`PETSimulationJob.simulator`) lets a caller check the job before other work.  Every file is written
    under a temporary name and put in place at the end (:mod:`hardware_sim.staging`): a failed run leaves none.
    """
    from hardware_sim.pet.truth import write_truth_file
    from hardware_sim.staging import staged_files

    if job.out is None:
        raise ValueError("run_to_file needs job.out")
    simulator = simulator or job.simulator()

    def logged(batches: Iterator[ListModeBatch]) -> Iterator[ListModeBatch]:
        for batch in batches:
            logger.info("simulated %d events (%d prompts so far)", batch.n_events, simulator.tally.n_prompts)
            yield batch

    weight_kg = job.config.patient_weight_kg or simulator.phantom.weight_kg
    efficiencies = job.crystal_efficiencies()
    targets = [job.out, job.truth] + ([job.calibration_out] if job.calibration_out is not None else [])
    reading = job.reading_path
    with staged_files(targets + ([reading] if reading is not None else [])) as temps:
        if job.calibration_out is not None and job.calibration_prompts > 0:
            from hardware_sim.pet.calibration import calibration_simulator

            seed = job.config.seed + 7
            scan = calibration_simulator(
                simulator.scanner, job.calibration_prompts, seed, job.config.scanner_seed
            )
            write_batches(temps[2], scan.scanner, scan.batches(), efficiencies, None)
        write_batches(temps[0], simulator.scanner, logged(simulator.batches()), efficiencies, weight_kg)
        write_truth_file(temps[1], simulator)
        scale = simulator.phantom.grid.voxel_size_mm[0] / job.voxel_size_mm
        record_geometry_scale(temps[1], scale)
        if reading is not None:
            write_dose_calibrator_reading(temps[-1], job, scale)
    return simulator.tally


def write_dose_calibrator_reading(path: Path, job: PETSimulationJob, geometry_scale: float) -> None:
    """The cylinder's log sheet as a site keeps it: the activity filled in, measured in a dose calibrator at
    the assay time (``injection_time_s`` before the scan start, shown to 0.01 MBq), the scan start (now, UTC)
    and the phantom's inner dimensions (read by ``reconstream calibrate pet``; it is not the truth file)."""
    import json
    from datetime import UTC, datetime, timedelta

    config = job.config
    scale = geometry_scale * job.cylinder_scale()
    radius_mm, length_mm = CYLINDER_RADIUS_MM * scale, CYLINDER_LENGTH_MM * scale
    volume_ml = np.pi * radius_mm**2 * length_mm / 1000.0
    at_scan_start_bq = CYLINDER_BQ_PER_ML * job.activity_scale * volume_ml
    assay_bq = at_scan_start_bq * 2.0 ** (-config.injection_time_s / config.half_life_s)
    scan_start = datetime.now(UTC).replace(microsecond=0)
    reading = {
        "kind": "pet_cross_calibration_reading",
        "isotope": config.isotope,
        "half_life_s": config.half_life_s,
        "activity_bq": round(assay_bq / 1e4) * 1e4,
        "assay_time": (scan_start + timedelta(seconds=config.injection_time_s)).isoformat(),
        "scan_start": scan_start.isoformat(),
        "phantom": {
            "inner_radius_mm": radius_mm,
            "inner_length_mm": length_mm,
            "centre_xyz_mm": [0.0, 0.0, 0.0],
        },
    }
    path.write_text(json.dumps(reading, indent=2) + "\n", encoding="utf-8")


def record_geometry_scale(truth_path: Path, scale: float) -> None:
    """Attribute ``geometry_scale`` of the truth's ``/phantom``: the shrink applied to fit the scanner (1: none)."""
    import h5py

    with h5py.File(truth_path, "a") as truth:
        truth["phantom"].attrs["geometry_scale"] = float(scale)
