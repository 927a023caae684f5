"""The reconstream command line: simulate, reconstruct, serve.

reconstream demo [--out DIR]                      simulate a short cine scan and reconstruct it in-process
reconstream run --chain NAME --input IN [--input IN2 ...] --out OUT [--set stage.key=value ...] [--device]
                [--executor ray [--ray-address HOST:PORT]]   heavy units on a Ray cluster
                [--deliver AE@HOST:PORT ... --outbox DIR]   also write DICOM and send it to a PACS
reconstream chains list | chains show NAME | chains schema NAME | chains save NAME --from CHAIN --set S.K=V
reconstream simulate mr|pet|petmr ... --out FILE|DIR
reconstream serve | send | replay                 the ISMRMRD-protocol server and its client
reconstream bench                                 latency benchmarks
reconstream compare RUN_DIR TRUTH.h5              score a run's images against the simulator's truth
reconstream calibrate pet --input CYL.petsird --reading READING.json   the scanner's PET cross-calibration
reconstream convert twix FILE.dat --out FILE.h5    Siemens twix → ISMRMRD (also mrd2 ↔ ismrmrd)

Inputs are recognised by their content: ISMRMRD v1 (HDF5 or stream), MRD v2, Siemens twix, PETSIRD.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("reconstream")

# Subcommands provided by other modules: (module, help).  Each module offers
# configure_parser(parser) and main(args) -> int; imported only when its subcommand is used or listed.
_EXTENSIONS: dict[str, tuple[str, str]] = {
    "serve": ("plugins.server.cli", "run the ISMRMRD-protocol reconstruction server"),
    "send": ("plugins.server.client_cli", "send a raw-data file to a server and save what comes back"),
    "replay": ("plugins.server.replay_cli", "replay a journaled server session"),
    "journal": ("plugins.server.journal_cli", "list or verify journaled sessions, make a journal key"),
    "sweep": (
        "plugins.sweep_cli",
        "run a chain over a parameter grid, score each point, mark the Pareto front",
    ),
    "report": ("plugins.report_cli", "write one self-contained HTML page for a run or a sweep folder"),
    "bench": ("plugins.bench_cli", "run the latency benchmarks"),
    "compare": ("plugins.compare_cli", "score a run's images against the simulator's truth file"),
    "export": ("plugins.io.dicom.export_cli", "export a run's images as DICOM or NIfTI"),
    "outbox": ("plugins.io.dicom.outbox_cli", "list, retry or purge the DICOM delivery outbox"),
    "calibrate": ("plugins.pet.calibrate_cli", "cross-calibrate the PET scanner (calibrate pet)"),
    "convert": ("plugins.convert_cli", "convert raw data: Siemens twix → ISMRMRD, ISMRMRD v1 ↔ MRD v2"),
}


def _cmd_chains(args: argparse.Namespace) -> int:
    from plugins.runtime.chain import load_chain, parameter_set_paths, shipped_chain_names
    from plugins.runtime.config import describe_fields

    if args.action == "list":
        for name in shipped_chain_names():
            chain = load_chain(name)
            print(f"{name:16s} {chain.description}")
        for name, path in parameter_set_paths().items():
            chain = load_chain(name)
            print(f"{name:16s} {chain.description}  [parameter set on {chain.base}: {path}]")
        return 0
    if not args.name:
        raise ValueError(f"chains {args.action}: give a chain name or .toml file")
    if args.action == "save":
        from plugins.runtime.parameter_sets import save_parameter_set

        path = save_parameter_set(args.name, args.base, args.set or (), args.description)
        print(
            f"parameter set {args.name!r} on {args.base!r} saved to {path}; run it with --chain {args.name}"
        )
        return 0
    chain = load_chain(args.name)
    if args.action == "schema":
        import json

        from plugins.runtime.chain_schema import chain_schema

        print(json.dumps(chain_schema(chain), indent=2, ensure_ascii=False))
        return 0
    print(f"chain {chain.name!r} ({chain.source}): {chain.description}")
    for i, stage in enumerate(chain.stages, start=1):
        doc = (stage.plugin_class.__doc__ or "").strip().splitlines()
        print(f"\n{i}. stage {stage.name!r}: plugin {stage.plugin!r} — {doc[0] if doc else ''}")
        current = stage.config.model_dump()
        for row in describe_fields(type(stage.config)):
            allowed = f" [{row['allowed']}]" if row["allowed"] else ""
            default = "required" if row["required"] else f"default {row['default']!r}"
            print(
                f"     {row['name']} = {current[row['name']]!r}  ({default}, "
                f"{row['type']}{allowed}) {row['description']}"
            )
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from plugins.executor_cli import executor_config
    from plugins.runtime.chain import load_chain
    from plugins.runtime.executor import open_executor
    from plugins.runtime.session import combined_inputs, run_to_folder

    chain = load_chain(args.chain, args.set or ())
    inputs = [Path(p) for p in args.input]
    config = executor_config(args)
    header, extras, items = combined_inputs(inputs)
    executor = open_executor(config)
    try:
        summary = run_to_folder(
            chain,
            items,
            Path(args.out),
            header=header,
            device=args.device,
            inputs=inputs,
            extras=extras,
            progress=sys.stderr.isatty(),
            executor=executor,
        )
    finally:
        executor.close()
    print(
        f"{summary.n_images} images, {len(summary.reports)} reports written to {summary.out_dir} "
        f"(device {summary.device})"
    )
    if args.images_mrd2:
        from plugins.io.mrd2_files import write_image_file

        print(f"MRD v2 images: {write_image_file(summary.out_dir, header)}")
    for warning in summary.warnings:
        print(f"warning: {warning}")
    status = _deliver_run(chain.delivery, args, summary.out_dir)
    _maybe_report(args, summary.out_dir)
    return report_interruption(summary) or status


#: Exit status of ``run`` and ``replay`` when the input was interrupted (complete units reconstructed).
EXIT_PARTIAL = 6


def report_interruption(summary: Any) -> int:
    """Print what an interrupted input left out; returns :data:`EXIT_PARTIAL` then, else 0."""
    if summary.interrupted is None:
        return 0
    print(f"partial: {summary.interrupted}")
    for unit in summary.incomplete:
        print(f"partial: {unit['kind']} {unit['index']} not reconstructed ({unit['missing']})")
    print(f"partial: details in {summary.out_dir / 'incomplete.json'}")
    return EXIT_PARTIAL


def _deliver_run(delivery: Any, args: argparse.Namespace, out_dir: Path) -> int:
    """DICOM delivery of a finished run: the chain's ``[delivery]`` plus ``--deliver``/``--outbox``."""
    if args.deliver or args.outbox:
        from plugins.io.dicom.delivery_config import DeliveryConfig

        delivery = (delivery or DeliveryConfig()).with_destinations(args.deliver or (), args.outbox)
    if delivery is None:
        return 0
    if not delivery.destination:
        raise ValueError(
            "run: --outbox needs --deliver AE@HOST:PORT or a [[delivery.destination]] in the chain"
        )
    from plugins.io.dicom.session_delivery import deliver_run

    for line in deliver_run(out_dir, delivery):
        print(line)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from plugins.demo import run_demo

    status = run_demo(Path(args.out), device=args.device)
    return _maybe_report(args, Path(args.out)) or status


def _maybe_report(args: argparse.Namespace, folder: Path) -> int:
    """With ``--report``: write the folder's HTML page and say where (returns 0)."""
    if getattr(args, "report", False):
        from plugins.report import write_report

        print(f"report: {write_report(folder)}")
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    module = importlib.import_module("plugins.simulate_cli")
    return int(module.main(args))


def _add_common_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    p.add_argument(
        "--report", action="store_true", help="also write OUT/report.html (one self-contained page)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconstream", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "demo", help="simulate a short cine scan and reconstruct it (no scanner, server or GPU)"
    )
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    _add_common_run_args(p)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("run", help="run a chain over input files")
    p.add_argument("--chain", required=True, help="shipped chain name or a .toml file")
    p.add_argument("--input", action="append", required=True, help="input file (repeatable)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--set", action="append", metavar="STAGE.KEY=VALUE", help="override a chain parameter")
    p.add_argument(
        "--deliver",
        action="append",
        metavar="AE@HOST:PORT",
        help="write DICOM and send it there (repeatable)",
    )
    p.add_argument("--outbox", default=None, help="durable outbox folder for --deliver (default out/outbox)")
    p.add_argument(
        "--images-mrd2", action="store_true", help="also write the images as an MRD v2 stream OUT/images.mrd"
    )
    _add_common_run_args(p)
    from plugins.executor_cli import add_executor_args

    add_executor_args(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "chains",
        help="list chains and parameter sets, show one with all parameters, export its JSON Schema, save a set",
    )
    p.add_argument("action", choices=["list", "show", "schema", "save"])
    p.add_argument("name", nargs="?", help="chain name or .toml file (save: the new parameter set's name)")
    p.add_argument("--from", dest="base", default=None, help="save: the chain the parameter set derives from")
    p.add_argument("--set", action="append", metavar="STAGE.KEY=VALUE", help="save: a changed parameter")
    p.add_argument("--description", default=None, help="save: one line saying what the set is for")
    p.set_defaults(func=_cmd_chains)

    p = sub.add_parser(
        "simulate", help="run the hardware simulator (mr, pet or petmr) into a file or to a server"
    )
    _configure_simulate(p)
    p.set_defaults(func=_cmd_simulate)

    for name, (module, help_text) in _EXTENSIONS.items():
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(func=_extension(module), _extension_module=module)
        _configure_extension(module, p)
    _use_defaults_formatter(parser)
    return parser


def _configure_simulate(p: argparse.ArgumentParser) -> None:
    try:
        module = importlib.import_module("plugins.simulate_cli")
    except ImportError:
        return
    module.configure_parser(p)


def _configure_extension(module_name: str, p: argparse.ArgumentParser) -> None:
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        p.description = f"(not available in this installation: {module_name} is missing)"
        return
    module.configure_parser(p)


def _extension(module_name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        module = importlib.import_module(module_name)
        return int(module.main(args))

    return run


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from plugins.runtime.chain import ChainConfigError
    from plugins.runtime.pipeline import ChainError

    try:
        return int(args.func(args))
    except (ChainConfigError, ChainError, ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"reconstream {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except (OSError, KeyError, TypeError, EOFError) as exc:  # e.g. an unreadable or foreign input file
        if args.verbose:
            log.exception("reconstream %s failed", args.command)
        print(
            f"reconstream {args.command}: error: {type(exc).__name__}: {_one_line(exc)} (-v shows where)",
            file=sys.stderr,
        )
        return 2


def _one_line(exc: BaseException) -> str:
    """The error as one line: a pydantic validation error lists ``field value: reason`` without web links."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        parts = []
        for error in exc.errors(include_url=False):
            where = ".".join(str(p) for p in error.get("loc", ()))
            reason = str(error.get("msg", "invalid")).removeprefix("Value error, ")
            parts.append(f"{where} = {error.get('input')!r}: {reason}" if where else reason)
        return f"{exc.title}: " + "; ".join(parts)
    return " ".join(str(exc).split())


class _DefaultsFormatter(argparse.RawDescriptionHelpFormatter):
    """Help that states every option's default (unless its text already does, or there is none)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text.lower()
            or action.required
            or default in (None, False, argparse.SUPPRESS)
            or not action.option_strings
            or isinstance(action, argparse._HelpAction)
        ):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, list | tuple) else str(default)
        shown = shown or "none"
        return f"{text} (default {shown})".strip()


def _use_defaults_formatter(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` and all its sub-parsers the :class:`_DefaultsFormatter`."""
    parser.formatter_class = _DefaultsFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                _use_defaults_formatter(child)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
