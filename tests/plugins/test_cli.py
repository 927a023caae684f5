"""The ``reconstream`` command line: chains list/show, run (small simulated cine), and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest

from plugins.cli import main
from plugins.io.ismrmrd_files import write_raw


def test_chains_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chains", "list"]) == 0
    listing = capsys.readouterr().out
    assert "cine " in listing and "cartesian" in listing
    assert main(["chains", "show", "cine"]) == 0
    shown = capsys.readouterr().out
    assert "stage 'unfold'" in shown and "rr_tolerance_percent" in shown and "default" in shown


@pytest.fixture(scope="module")
def small_cine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hardware_sim.mr import MRExamConfig, simulate_exam

    config = MRExamConfig(
        protocol="cine",
        n_slices=1,
        n_coils=8,
        n_readout=96,
        n_phase_encodes=72,
        n_calibration_lines=16,
        n_phases=8,
        heart_rate_bpm=75.0,
        seed=3,
    )
    exam = simulate_exam(config)
    path = tmp_path_factory.mktemp("raw") / "cine.h5"
    write_raw(path, exam.header, exam.items())
    return path


def test_run_writes_images_previews_and_provenance(small_cine: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert (
        main(
            [
                "run",
                "--chain",
                "cine",
                "--input",
                str(small_cine),
                "--out",
                str(out),
                "--set",
                "bin.n_phases=8",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    with h5py.File(out / "images.h5", "r") as f:
        groups = [k for k in f["dataset"] if k.startswith("image_")]
        assert groups
        assert sum(f["dataset"][g]["data"].shape[0] for g in groups) == 8
    assert list((out / "png").glob("*.png"))
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["inputs"][0]["sha256"] and provenance["device"] == "cpu"
    assert provenance["outputs"]["n_images"] == 8
    assert "n_phases = 8" in (out / "chain.effective.toml").read_text()


def test_run_with_a_bad_parameter_names_it(
    small_cine: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            "--chain",
            "cine",
            "--input",
            str(small_cine),
            "--out",
            str(tmp_path / "o"),
            "--set",
            "bin.rr_tolerance_ms=5",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "stage 'bin'" in err and "rr_tolerance_ms" in err and "rr_tolerance_percent" in err


def test_run_with_a_missing_input_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["run", "--chain", "cine", "--input", str(tmp_path / "nope.h5"), "--out", str(tmp_path / "o")])
        == 2
    )
    assert "nope.h5: no such file" in capsys.readouterr().err
