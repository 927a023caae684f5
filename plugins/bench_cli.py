"""``reconstream bench``: run the latency benchmarks, print a table, check the ratio budgets.

reconstream bench [--profile quick|full] [--device cpu|cuda|all] [--out DIR] [--check] [-k EXPR]
reconstream bench --compare A.json B.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from plugins.benchmarking import (
    budget_table,
    check_budgets,
    compare_results,
    load_budgets,
    load_results,
    results_table,
    summary_json,
)


def benchmarks_dir() -> Path:
    """The repository's ``benchmarks/`` folder (benchmarks run from a source checkout)."""
    return Path(__file__).resolve().parent.parent / "benchmarks"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        choices=["quick", "full"],
        default="quick",
        help="quick: reduced representative sizes (CI); full: clinical sizes",
    )
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda", "all"],
        default="all",
        help="which device variants to run (cuda variants skip without a GPU)",
    )
    parser.add_argument("--out", default="out/bench", help="folder for benchmarks.json and summary.md")
    parser.add_argument("--check", action="store_true", help="fail (exit 1) when a ratio breaches its budget")
    parser.add_argument("-k", dest="keyword", default=None, help="pytest -k expression to select benchmarks")
    parser.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"), help="compare two result files")


def main(args: argparse.Namespace) -> int:
    if args.compare:
        a, b = (load_results(Path(p)) for p in args.compare)
        print(compare_results(a, b))
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "benchmarks.json"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(benchmarks_dir()),
        "--benchmark-only",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--benchmark-json={json_path}",
        "-o",
        "addopts=",
    ]
    selectors = [args.keyword] if args.keyword else []
    if args.device != "all":
        selectors.append(f"not {'cuda' if args.device == 'cpu' else 'cpu'}")
    if selectors:
        cmd += ["-k", " and ".join(f"({s})" for s in selectors)]
    env = dict(os.environ, RECONSTREAM_BENCH_PROFILE=args.profile)
    code = subprocess.call(cmd, env=env)
    if code != 0 or not json_path.exists():
        print(f"reconstream bench: the benchmark run failed (pytest exit {code})", file=sys.stderr)
        return code or 1
    results = load_results(json_path)
    budgets, tolerance = load_budgets(benchmarks_dir() / "budgets.toml")
    rows = check_budgets(results, budgets, tolerance) if args.profile == "quick" else []
    text = f"## Benchmarks ({args.profile} profile)\n\n{results_table(results)}\n"
    if rows:
        text += f"\n## Ratio budgets (tolerance {tolerance:g} %)\n\n{budget_table(rows)}\n"
    (out / "summary.md").write_text(text, encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(summary_json(results, rows), indent=2), encoding="utf-8")
    print(text)
    failed = [r for r in rows if r.status != "ok"]
    if args.check and failed:
        print("budget check failed: " + ", ".join(f"{r.name} ({r.status})" for r in failed), file=sys.stderr)
        return 1
    return 0
