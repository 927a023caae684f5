"""``reconstream simulate mr|pet|petmr``: run a hardware simulator into a file, or stream it to a server.

The raw data go to ``--out`` (ISMRMRD HDF5 ``.h5`` or stream ``.bin`` for MR; PETSIRD for PET); the
ground truth goes to ``<out stem>.truth.h5`` beside it, a file no chain ever opens.  ``petmr`` writes a
folder: ``dixon.h5`` and ``listmode.petsird`` of one torso in one frame of reference and one ``truth.h5``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("reconstream.simulate")


def truth_path_for(out: Path) -> Path:
    """``exam.h5`` → ``exam.truth.h5``."""
    return out.with_name(out.stem + ".truth.h5")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="modality", required=True)
    for modality in ("mr", "pet", "petmr"):
        p = sub.add_parser(modality, help=f"{modality.upper()} hardware simulator")
        try:
            importlib.import_module(f"hardware_sim.{modality}.cli").configure_parser(p)
        except ImportError as exc:
            p.description = f"(the {modality} simulator is not available: {exc})"
        _add_missing(p, "--out", help="output file (raw data); the truth goes to <stem>.truth.h5")
        if modality == "petmr":
            continue
        _add_missing(p, "--to", metavar="HOST:PORT", help="stream to a reconstream/Gadgetron server instead")
        _add_missing(p, "--chain", default=None, help="chain the server should run (with --to)")
        _add_missing(p, "--realtime", action="store_true", help="with --to: send at the scanner's pace (TR)")


def _add_missing(parser: argparse.ArgumentParser, flag: str, **kwargs: Any) -> None:
    """Add an option unless the simulator's own parser already defines it."""
    if flag not in parser._option_string_actions:
        parser.add_argument(flag, **kwargs)


def main(args: argparse.Namespace) -> int:
    cli = importlib.import_module(f"hardware_sim.{args.modality}.cli")
    if args.modality == "pet":
        return _simulate_pet(cli, args)
    if args.modality == "petmr":
        return _simulate_petmr(cli, args)
    if args.to:
        from plugins.server.client import stream_simulation

        return int(stream_simulation(args, cli))
    if not args.out:
        raise ValueError("simulate: give --out FILE (or --to HOST:PORT)")
    return _simulate_mr(cli, args, Path(args.out))


def _simulate_pet(cli: Any, args: argparse.Namespace) -> int:
    job = cli.config_from_args(args)
    if args.to:
        from plugins.server.client import parse_host_port, send_session

        host, port = parse_host_port(args.to)
        chain = args.chain or "pet-tof"
        result = send_session(
            host, port, chain, None, job.simulator().batches(), realtime=bool(args.realtime)
        )
        print(
            f"{result.n_items_sent} list-mode batches sent to {host}:{port} (chain {chain!r}); "
            f"{len(result.images)} images, {len(result.errors)} errors back"
        )
        return 0 if result.closed and not result.errors else 1
    from plugins.io.petsird_io import write_petsird

    tally = cli.run_to_file(job, write_petsird)
    print(f"{tally.n_prompts} prompts written to {job.out}; truth in {job.truth}")
    if job.reading_path is not None:
        print(f"dose calibrator reading in {job.reading_path} (for reconstream calibrate pet)")
    return 0


def _simulate_petmr(cli: Any, args: argparse.Namespace) -> int:
    from plugins.io.ismrmrd_files import write_raw
    from plugins.io.petsird_io import write_petsird

    job = cli.config_from_args(args)
    _exam, tally = cli.run_to_folder(job, write_raw, write_petsird)
    print(
        f"Dixon exam in {job.dixon_path}, {tally.n_prompts} prompts in {job.listmode_path}; truth in {job.truth_path}"
    )
    return 0


def _simulate_mr(cli: Any, args: argparse.Namespace, out: Path) -> int:
    from hardware_sim.mr import simulate_exam
    from plugins.io.ismrmrd_files import write_raw

    config = cli.config_from_args(args)
    exam = simulate_exam(config)
    n_items = write_raw(out, exam.header, _with_progress(exam.items()))
    exam.write_truth(truth_path_for(out))
    print(f"{n_items} items written to {out}; truth in {truth_path_for(out)}")
    return 0


def _with_progress(items: Any) -> Any:
    import sys

    if not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, desc="simulating", unit="item")
