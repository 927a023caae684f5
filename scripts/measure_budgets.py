#!/usr/bin/env python3
"""Run the quick benchmark profile N times (default 5) and write ``benchmarks/budgets.toml`` from the ratios.

Each budget is the median of the measured ratios + 30 % (the rule the tests check), with the five
measured values and the machine/date stored as its justification.  Budgets not measured (``-k`` selects
some) keep their entries, and the file's tolerance is kept unless ``--tolerance-percent`` is given.
Review the diff before committing (and add to a justification what the machine's load was).

    .venv/bin/python scripts/measure_budgets.py [--runs 5] [-k EXPR] [--tolerance-percent P]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plugins.bench_cli import budgeted_node_ids, pytest_benchmark_command  # noqa: E402
from plugins.benchmarking import budget_from_runs, budgets_toml, load_budgets, load_results  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("-k", dest="keyword", default=None)
    parser.add_argument(
        "--tolerance-percent", type=float, default=None, help="CI tolerance (default: the file's, else 15)"
    )
    args = parser.parse_args()
    node_ids = budgeted_node_ids()
    wanted = [node.rsplit("::", 1)[1] for node in node_ids]
    ratios: dict[str, list[float]] = {name: [] for name in wanted}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            json_path = Path(tmp) / f"run{run}.json"
            cmd = pytest_benchmark_command(node_ids, json_path, args.keyword or "")
            subprocess.run(cmd, check=True, cwd=ROOT, env=dict(os.environ, RECONSTREAM_BENCH_PROFILE="quick"))
            for name, result in load_results(json_path).items():
                if name in ratios and result.ratio is not None:
                    ratios[name].append(result.ratio)
            print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
    path = ROOT / "benchmarks" / "budgets.toml"
    kept, tolerance = load_budgets(path) if path.is_file() else ({}, 15.0)
    if args.tolerance_percent is not None:
        tolerance = args.tolerance_percent
    for name, values in ratios.items():
        if not values:
            continue  # not selected (-k): its budget stays as it is
        if len(values) < args.runs:
            print(f"warning: {name} measured {len(values)} times, its budget is kept", file=sys.stderr)
            continue
        justification = (
            f"median of {len(values)} quick-profile runs + 30 % on {platform.node()} ({os.cpu_count()} cores), "
            f"{date.today().isoformat()}"
        )
        kept[name] = budget_from_runs(name, values, justification)
    text = budgets_toml(list(kept.values()), tolerance)
    path.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
