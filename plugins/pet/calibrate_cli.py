"""``reconstream calibrate pet``: the scanner's cross-calibration from a uniform cylinder scan.

reconstream calibrate pet --input CYLINDER.petsird --reading READING.json [--chain pet-tof] [--set ...]
                          [--dose-calibrator-uncertainty-percent 2] [--out FILE] [--device cpu]

Reconstructs the scan with the chain's PET settings (:mod:`plugins.pet.cross_calibration`) and writes the
calibration (factor, uncertainty, date, settings it holds for) to ``--out`` or to the scanner's file in the
calibration folder, where ``pet_tof_osem`` finds it (``calibration_file = "auto"``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

#: Typical 1σ accuracy of a well-maintained dose calibrator for F-18 (constancy-checked; the legal limit is 5 %).
DEFAULT_DOSE_CALIBRATOR_UNCERTAINTY_PERCENT = 2.0


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add ``calibrate pet`` and its options to ``parser``."""
    sub = parser.add_subparsers(dest="modality", required=True)
    p = sub.add_parser("pet", help="cross-calibrate the PET scanner from a uniform cylinder scan")
    p.add_argument("--input", required=True, type=Path, help="list-mode scan of the cylinder (PETSIRD)")
    p.add_argument(
        "--reading", required=True, type=Path, help="the phantom's dose-calibrator reading (JSON log sheet)"
    )
    p.add_argument("--chain", default="pet-tof", help="chain whose PET reconstruction settings to calibrate")
    p.add_argument("--set", action="append", metavar="STAGE.KEY=VALUE", help="override a chain parameter")
    p.add_argument(
        "--dose-calibrator-uncertainty-percent",
        type=float,
        default=DEFAULT_DOSE_CALIBRATOR_UNCERTAINTY_PERCENT,
        help="1σ accuracy of the dose calibrator, %%",
    )
    p.add_argument("--out", type=Path, default=None, help="calibration file (default: the scanner's file)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")


def main(args: argparse.Namespace) -> int:
    """Run ``calibrate pet``; prints the factor and where it was written."""
    from plugins.io.petsird_io import acquisition_info_from_petsird, read_petsird
    from plugins.pet.calibration_file import default_calibration_path, write_calibration
    from plugins.pet.cross_calibration import cross_calibrate, read_reading
    from plugins.runtime.chain import load_chain
    from plugins.runtime.session import is_petsird_file

    if not 0.0 <= args.dose_calibrator_uncertainty_percent <= 20.0:
        raise ValueError("--dose-calibrator-uncertainty-percent must be within 0..20")
    reading = read_reading(args.reading)
    chain = load_chain(args.chain, args.set or ())
    if not Path(args.input).is_file():
        raise FileNotFoundError(f"no such list-mode file {args.input}")
    if not is_petsird_file(Path(args.input)):
        raise ValueError(f"{args.input} is not a PETSIRD list-mode file (the cylinder scan of simulate pet)")
    scanner, batches, header = read_petsird(args.input)
    info = acquisition_info_from_petsird(header, scanner, batches)
    calibration = cross_calibrate(
        batches,
        info,
        reading,
        chain,
        args.dose_calibrator_uncertainty_percent / 100.0,
        scan_file=str(args.input),
        device=args.device,
    )
    path = write_calibration(calibration, args.out or default_calibration_path(calibration.scanner))
    m = calibration.measurement
    print(
        f"scanner {calibration.scanner}: factor {calibration.factor:.4f} ± "
        f"{100 * calibration.uncertainty_relative:.1f} % (statistical {100 * calibration.statistical_uncertainty_relative:.2f} %, "
        f"dose calibrator {100 * calibration.dose_calibrator_uncertainty_relative:.1f} %); "
        f"known {m.known_concentration_bq_per_ml:.0f} Bq/ml, image {m.image_concentration_bq_per_ml:.0f} Bq/ml "
        f"in {m.voi_volume_ml:.0f} ml; written to {path}"
    )
    for warning in m.quality_warnings:
        print(f"warning: calibration image: {warning}")
    return 0
