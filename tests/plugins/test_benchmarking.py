"""The budget checker on synthetic benchmark results (no timing here), and the shipped budget file's rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plugins.bench_cli import benchmarks_dir
from plugins.benchmarking import (
    BenchResult,
    Budget,
    BudgetFileError,
    budget_table,
    check_budgets,
    compare_results,
    load_budgets,
    load_results,
    results_table,
    validate_budget,
)

BUDGETS = {"cine": Budget("cine", 2.0, (1.5, 1.6, 1.55, 1.62, 1.58), "five runs on the dev box")}


def result(ratio: float | None) -> dict[str, BenchResult]:
    return {"cine": BenchResult("cine", 0.1, ratio, "fft batch")}


def test_within_budget_passes() -> None:
    (row,) = check_budgets(result(1.9), BUDGETS, tolerance_percent=10)
    assert row.status == "ok" and row.headroom_percent == pytest.approx(5.0)


def test_within_tolerance_passes_and_beyond_fails() -> None:
    assert check_budgets(result(2.19), BUDGETS, 10)[0].status == "ok"
    assert check_budgets(result(2.21), BUDGETS, 10)[0].status == "BREACH"


def test_missing_benchmark_is_reported() -> None:
    assert check_budgets({}, BUDGETS, 10)[0].status == "missing"
    assert check_budgets(result(None), BUDGETS, 10)[0].status == "missing"


def test_table_lists_ratio_budget_and_headroom() -> None:
    table = budget_table(check_budgets(result(2.5), BUDGETS, 10))
    assert "| cine | 2.5 | 2 | -25 % | BREACH |" in table


def test_budget_rule_median_plus_30_percent() -> None:
    validate_budget(Budget("ok", 1.3, (1.0, 1.0, 1.0, 0.9, 1.1), "x"))
    with pytest.raises(BudgetFileError, match="exceeds the median"):
        validate_budget(Budget("loose", 1.31, (1.0, 1.0, 1.0, 0.9, 1.1), "x"))
    with pytest.raises(BudgetFileError, match="at least 5"):
        validate_budget(Budget("few", 1.0, (1.0, 1.0), "x"))
    with pytest.raises(BudgetFileError, match="no justification"):
        validate_budget(Budget("why", 1.0, (1.0,) * 5, " "))


def test_results_json_and_compare(tmp_path: Path) -> None:
    def write(path: Path, median: float, ratio: float) -> None:
        bench = {
            "name": "cine",
            "stats": {"median": median},
            "extra_info": {"ratio": ratio, "reference": "fft"},
        }
        path.write_text(json.dumps({"benchmarks": [bench]}), encoding="utf-8")

    write(tmp_path / "a.json", 0.2, 2.0)
    write(tmp_path / "b.json", 0.1, 1.0)
    a, b = load_results(tmp_path / "a.json"), load_results(tmp_path / "b.json")
    assert a["cine"].ratio == 2.0
    assert "| cine | 200 ms | 100 ms | 0.500 | 0.500 |" in compare_results(a, b)


def test_shipped_budget_file_follows_the_rule() -> None:
    budgets, tolerance = load_budgets(benchmarks_dir() / "budgets.toml")  # validates every entry
    assert budgets, "the quick profile must budget at least one benchmark"
    assert 0 < tolerance <= 50


def test_results_table_shows_side_by_side_figures(tmp_path: Path) -> None:
    bench = {"name": "bart", "stats": {"median": 0.5},
             "extra_info": {"ratio": 1.5, "reference": "fft", "ratio_grappa_to_bart": 0.018, "nrmse_bart": 0.102,
                            "profile": "quick"}}  # fmt: skip
    (tmp_path / "r.json").write_text(json.dumps({"benchmarks": [bench]}), encoding="utf-8")
    table = results_table(load_results(tmp_path / "r.json"))
    assert "ratio_grappa_to_bart 0.018, nrmse_bart 0.102" in table and "profile" not in table
