"""``reconstream sweep``: run a chain over a grid of parameters, score each point, mark the Pareto front."""

from __future__ import annotations

import argparse
from pathlib import Path

from plugins.executor_cli import add_executor_args, executor_config
from plugins.sweep import parse_grid, run_sweep


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chain", required=True, help="chain or parameter set to sweep")
    parser.add_argument(
        "--grid",
        action="append",
        required=True,
        metavar="STAGE.KEY=V1,V2",
        help="values of one parameter (repeatable; sim.KEY=... changes the simulated data)",
    )
    parser.add_argument(
        "--data",
        default="simulated",
        help="simulated[:KEY=VALUE,...] (simulator settings) or a raw file with <stem>.truth.h5 beside it",
    )
    parser.add_argument("--out", required=True, help="folder for the points, sweep.csv and sweep.json")
    parser.add_argument("--jobs", type=int, default=1, help="points run at once (processes)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] for every point")
    parser.add_argument("--report", action="store_true", help="also write OUT/report.html")
    add_executor_args(parser)


def main(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise ValueError(f"sweep: --jobs must be ≥ 1, got {args.jobs}")
    executor = executor_config(args)
    if executor is not None and args.jobs > 1:
        raise ValueError("sweep: give either --jobs N (processes here) or --executor ray, not both")
    axes = [parse_grid(spec) for spec in args.grid]
    rows = run_sweep(args.chain, axes, args.data, Path(args.out), args.jobs, args.device, executor=executor)
    keys = [a.key for a in axes]
    print(" | ".join([*keys, "quality", "latency_s", "pareto"]))
    for row in rows:
        cells = [str(row[k]) for k in keys] + [
            f"{row['quality']:.4g}",
            f"{row['latency_s']:.2f}",
            "*" if row["pareto"] else "",
        ]
        print(" | ".join(cells))
    print(f"written: {Path(args.out) / 'sweep.csv'}, {Path(args.out) / 'sweep.json'}")
    if args.report:
        from plugins.report import write_sweep_report

        print(f"report: {write_sweep_report(Path(args.out))}")
    return 0
