"""Sweeps: a two-parameter sweep of the CS cine chain scored against truth, the Pareto front, and bad grid
values refused before any work."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from plugins.runtime.chain import ChainConfigError
from plugins.sweep import pareto_front, parse_grid, run_sweep

SMALL = (
    "simulated:n_slices=1,n_coils=8,n_readout=64,n_phase_encodes=64,n_phases=8,n_calibration_lines=16,"
    "heart_rate_bpm=90,views_per_segment=8,undersampling=variable_density,seed=2"
)


def test_two_parameter_sweep_scores_every_point_in_the_known_directions(tmp_path: Path) -> None:
    pytest.importorskip("hardware_sim.mr.exam")
    axes = [parse_grid("sim.acceleration=2,4"), parse_grid("unfold.cs_cg_iterations=1,20")]
    rows = run_sweep("cine-cs", axes, SMALL, tmp_path, progress=lambda _line: None)
    assert len(rows) == 4 and all(0 < row["quality"] < 1 for row in rows)
    by = {(row["sim.acceleration"], row["unfold.cs_cg_iterations"]): row for row in rows}
    for iterations in (1, 20):  # image error rises with acceleration
        assert by[(4, iterations)]["quality"] > by[(2, iterations)]["quality"]
    slow = sum(by[(r, 20)]["latency_s"] for r in (2, 4))
    fast = sum(by[(r, 1)]["latency_s"] for r in (2, 4))
    assert slow > fast  # 20 CG iterations per ADMM step cost more than one
    assert any(row["pareto"] for row in rows)
    with (tmp_path / "sweep.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 4
    document = json.loads((tmp_path / "sweep.json").read_text())
    assert document["grid"] == {"sim.acceleration": [2, 4], "unfold.cs_cg_iterations": [1, 20]}
    assert document["points"][0]["scores"]["mr"]["series"]


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ("unfold.cs_cg_iterations=1,-3", "cs_cg_iterations"),
        ("unfold.cs_cg_iteration=1,2", "unknown key 'cs_cg_iteration'"),
        ("sim.acceleration=2,99", "sim.acceleration = 99"),
        ("nodot=1", "expected STAGE.KEY"),
    ],
)
def test_bad_grid_values_are_refused_before_any_work(tmp_path: Path, grid: str, message: str) -> None:
    with pytest.raises(ChainConfigError, match=message):
        run_sweep("cine-cs", [parse_grid(grid)], SMALL, tmp_path / "out", progress=lambda _line: None)
    assert not (tmp_path / "out").exists()


def test_pareto_front_keeps_the_points_nothing_beats() -> None:
    rows = [
        {"quality": 0.10, "latency_s": 5.0},
        {"quality": 0.12, "latency_s": 1.0},
        {"quality": 0.13, "latency_s": 2.0},  # beaten by the second in both
        {"quality": float("nan"), "latency_s": 0.5},  # unscored: never on the front
    ]
    assert pareto_front(rows) == [True, True, False, False]


def test_a_file_without_truth_is_scored_by_snr_ghosting_and_sharpness(tmp_path: Path) -> None:
    pytest.importorskip("hardware_sim.mr.exam")
    from hardware_sim.mr import simulate_exam
    from plugins.io.ismrmrd_files import write_raw
    from tests.plugins.server.helpers import small_two_slice_cine_config

    exam = simulate_exam(small_two_slice_cine_config(6))
    raw = write_raw(tmp_path / "scanner.h5", exam.header, exam.items()) and tmp_path / "scanner.h5"
    rows = run_sweep(
        "cine", [parse_grid("unfold.method=grappa,sense")], str(raw), tmp_path / "sw", progress=print
    )
    document = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    for row, point in zip(rows, document["points"], strict=True):
        series = point["scores"]["no_truth"]["series"]["1"]
        assert series["snr"] > 5 and series["n_images"] == 16 and 0 < row["quality"] == 1 / series["snr"]
