"""``reconstream export RUN_DIR --dicom|--nifti --out DIR``: a finished run's images as DICOM or NIfTI."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run folder (holding images.h5 and provenance.json)")
    p.add_argument("--dicom", action="store_true", help="write DICOM (one folder per series)")
    p.add_argument("--nifti", action="store_true", help="write NIfTI-1 .nii.gz (one file per series)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--deliver", action="append", metavar="AE@HOST:PORT", help="send the DICOM to this node (repeatable)"
    )
    p.add_argument("--outbox", default="out/outbox", help="durable outbox folder for --deliver")


def main(args: argparse.Namespace) -> int:
    from plugins.io.dicom.export import export_dicom, export_nifti

    if not (args.dicom or args.nifti):
        raise ValueError("reconstream export: say --dicom, --nifti or both")
    out = Path(args.out)
    if args.dicom:
        instances = export_dicom(Path(args.run_dir), out)
        n_series = len({i.series_uid for i in instances})
        print(f"{len(instances)} DICOM instances in {n_series} series written to {out}", file=sys.stdout)
        for text in args.deliver or ():
            from plugins.io.dicom.delivery import send_study
            from plugins.io.dicom.outbox import DicomDestination, Outbox

            destination = DicomDestination.parse(text)
            files = [(str(i.path), i.study_uid, i.sop_uid) for i in instances]
            result, counts = send_study(Outbox(Path(args.outbox)), destination, files)
            print(f"{result.status_line}; verified by C-FIND: {sum(counts.values())} instances in the study")
    if args.nifti:
        paths = export_nifti(Path(args.run_dir), out)
        print(f"{len(paths)} NIfTI files written to {out}", file=sys.stdout)
    return 0
