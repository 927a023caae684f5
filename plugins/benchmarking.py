"""Machine-normalised latency budgets: read pytest-benchmark JSON, check ratios against budgets, tabulate.

Each budgeted benchmark stores ``extra_info["ratio"]`` = its median time / the median time of a reference
kernel of similar cost timed in the same run (see ``benchmarks/conftest.py``).  ``benchmarks/budgets.toml``
holds, per benchmark, the budget on that ratio, the five measured ratios that justify it and a sentence of
justification.  The rule, checked by the tests: a budget is at most the median of its ≥ 5 measured runs
plus 30 %.  CI fails when a measured ratio exceeds its budget by more than ``tolerance_percent``.
"""

from __future__ import annotations

import json
import statistics
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUDGET_MARGIN = 1.30  # a budget may be at most the median measured ratio + 30 %
MIN_MEASURED_RUNS = 5


@dataclass(frozen=True)
class BenchResult:
    """One benchmark from a pytest-benchmark JSON file (times in seconds)."""

    name: str
    median_s: float
    ratio: float | None
    reference: str
    details: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Budget:
    """A ratio budget and the measurements that justify it."""

    name: str
    max_ratio: float
    measured_ratios: tuple[float, ...]
    justification: str


@dataclass(frozen=True)
class BudgetRow:
    """One line of the budget table."""

    name: str
    ratio: float | None
    max_ratio: float
    headroom_percent: float | None
    status: str  # "ok", "BREACH" or "missing"


class BudgetFileError(ValueError):
    """The budget file breaks the rules; the message names the entry."""


def load_results(path: Path) -> dict[str, BenchResult]:
    """Benchmarks of a pytest-benchmark ``--benchmark-json`` file, by name."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    results = {}
    for bench in data.get("benchmarks", []):
        extra = bench.get("extra_info", {})
        ratio = extra.get("ratio")
        results[bench["name"]] = BenchResult(
            name=bench["name"],
            median_s=float(bench["stats"]["median"]),
            ratio=float(ratio) if ratio is not None else None,
            reference=str(extra.get("reference", "")),
            details=tuple(
                (key, float(value))
                for key, value in extra.items()
                if key not in _PLUMBING_KEYS
                and isinstance(value, int | float)
                and not isinstance(value, bool)
            ),
        )
    return results


#: extra_info keys that are part of the ratio machinery rather than results worth showing
_PLUMBING_KEYS = {"ratio", "reference", "reference_median_s", "profile"}


def load_budgets(path: Path) -> tuple[dict[str, Budget], float]:
    """Budgets by benchmark name, and the CI tolerance in percent.  Validates the 5-runs + 30 % rule."""
    doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    tolerance = float(doc.get("tolerance_percent", 0.0))
    budgets = {}
    for name, entry in doc.get("budget", {}).items():
        budget = Budget(
            name=name,
            max_ratio=float(entry["max_ratio"]),
            measured_ratios=tuple(float(r) for r in entry["measured_ratios"]),
            justification=str(entry.get("justification", "")),
        )
        validate_budget(budget)
        budgets[name] = budget
    return budgets, tolerance


def validate_budget(budget: Budget) -> None:
    """Raise :class:`BudgetFileError` unless the budget follows the rule (≥ 5 runs, ≤ median + 30 %)."""
    if len(budget.measured_ratios) < MIN_MEASURED_RUNS:
        raise BudgetFileError(
            f"budget {budget.name!r}: {len(budget.measured_ratios)} measured runs, "
            f"at least {MIN_MEASURED_RUNS} are needed"
        )
    limit = statistics.median(budget.measured_ratios) * BUDGET_MARGIN
    if budget.max_ratio > limit + 1e-12:
        raise BudgetFileError(
            f"budget {budget.name!r}: max_ratio {budget.max_ratio:.4g} exceeds the median of its "
            f"measured runs + 30 % ({limit:.4g})"
        )
    if not budget.justification.strip():
        raise BudgetFileError(f"budget {budget.name!r}: no justification")


def check_budgets(
    results: Mapping[str, BenchResult], budgets: Mapping[str, Budget], tolerance_percent: float
) -> list[BudgetRow]:
    """One row per budget; ``BREACH`` when ratio > max_ratio · (1 + tolerance), ``missing`` when not run."""
    rows = []
    for name, budget in sorted(budgets.items()):
        result = results.get(name)
        if result is None or result.ratio is None:
            rows.append(BudgetRow(name, None, budget.max_ratio, None, "missing"))
            continue
        headroom = (budget.max_ratio - result.ratio) / budget.max_ratio * 100.0
        breach = result.ratio > budget.max_ratio * (1.0 + tolerance_percent / 100.0)
        rows.append(BudgetRow(name, result.ratio, budget.max_ratio, headroom, "BREACH" if breach else "ok"))
    return rows


def budget_table(rows: Sequence[BudgetRow]) -> str:
    """A Markdown table of every ratio, its budget and the headroom."""
    lines = ["| benchmark | ratio | budget | headroom | status |", "|---|---:|---:|---:|---|"]
    for row in rows:
        ratio = f"{row.ratio:.3g}" if row.ratio is not None else "—"
        headroom = f"{row.headroom_percent:+.0f} %" if row.headroom_percent is not None else "—"
        lines.append(f"| {row.name} | {ratio} | {row.max_ratio:.3g} | {headroom} | {row.status} |")
    return "\n".join(lines)


def results_table(results: Mapping[str, BenchResult]) -> str:
    """A Markdown table of all benchmarks: median time, ratio, its reference and the other figures a
    benchmark reports (events/s, side-by-side external references such as BART's time ratio and nRMSE)."""
    lines = ["| benchmark | median | ratio | reference | details |", "|---|---:|---:|---|---|"]
    for name, r in sorted(results.items()):
        ratio = f"{r.ratio:.3g}" if r.ratio is not None else "—"
        details = ", ".join(f"{key} {value:.4g}" for key, value in r.details)
        lines.append(f"| {name} | {_human_time(r.median_s)} | {ratio} | {r.reference} | {details} |")
    return "\n".join(lines)


def compare_results(a: Mapping[str, BenchResult], b: Mapping[str, BenchResult]) -> str:
    """Markdown table of B/A median-time ratios (and ratio-of-ratios) per benchmark present in both."""
    lines = ["| benchmark | A median | B median | B/A time | B/A normalised |", "|---|---:|---:|---:|---:|"]
    for name in sorted(set(a) & set(b)):
        ra, rb = a[name], b[name]
        norm = f"{rb.ratio / ra.ratio:.3f}" if ra.ratio and rb.ratio else "—"
        lines.append(
            f"| {name} | {_human_time(ra.median_s)} | {_human_time(rb.median_s)} | "
            f"{rb.median_s / ra.median_s:.3f} | {norm} |"
        )
    return "\n".join(lines)


def _human_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def summary_json(results: Mapping[str, BenchResult], rows: Sequence[BudgetRow]) -> dict[str, Any]:
    """Machine-readable summary (for archiving beside the raw pytest-benchmark JSON)."""
    return {
        "results": {
            n: {"median_s": r.median_s, "ratio": r.ratio, "reference": r.reference}
            for n, r in results.items()
        },
        "budgets": [row.__dict__ for row in rows],
    }
