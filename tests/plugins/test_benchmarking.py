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
    budget_from_runs,
    budget_table,
    budgets_toml,
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


def test_budget_file_round_trip_keeps_order_and_text(tmp_path: Path) -> None:
    """What scripts/measure_budgets.py writes reads back the same, including a justification with quotes."""
    shipped, tolerance = load_budgets(benchmarks_dir() / "budgets.toml")
    fresh = budget_from_runs("test_new[cpu]", [2.0, 2.1, 1.9, 2.2, 2.05], 'quoted "load 6" note, 1 µs')
    assert fresh.max_ratio == 2.665  # median 2.05 × 1.3 = 2.665
    path = tmp_path / "budgets.toml"
    path.write_text(budgets_toml([*shipped.values(), fresh], tolerance), encoding="utf-8")
    again, tolerance_again = load_budgets(path)
    assert tolerance_again == tolerance
    assert list(again) == [*shipped, "test_new[cpu]"]
    assert again == {**shipped, "test_new[cpu]": fresh}
    # the shipped file is what the script writes: regenerating it changes no byte
    shipped_text = (benchmarks_dir() / "budgets.toml").read_text(encoding="utf-8")
    assert budgets_toml(list(shipped.values()), tolerance) == shipped_text


def test_budget_from_runs_rounds_down_onto_the_rule() -> None:
    budget = budget_from_runs("x", [4.231, 5.324, 4.593, 4.346, 4.315], "idle")
    assert budget.max_ratio == 5.649  # 4.346 × 1.3 = 5.6498, rounded down
