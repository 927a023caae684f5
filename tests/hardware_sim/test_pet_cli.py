"""``simulate pet`` argument handling, file output through PETSIRD, and the truth file."""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np
import pytest

from hardware_sim.pet.cli import config_from_args, configure_parser, run_to_file
from hardware_sim.pet.truth import read_truth_file_counts
from plugins.io.petsird_io import crystal_efficiencies_from_information, read_petsird, write_petsird
from recon.tof.listmode import concatenate_batches, decode_message


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    return parser.parse_args(list(argv))


def test_arguments_need_exactly_one_target() -> None:
    with pytest.raises(SystemExit):
        _parse("--phantom", "nema")
    with pytest.raises(SystemExit):
        _parse("--out", "a.petsird", "--to", "localhost:9002")
    job = config_from_args(
        _parse("--scanner", "mmr", "--counts", "123", "--seed", "7", "--to", "localhost:9002")
    )
    assert job.scanner == "mmr" and job.config.n_prompts == 123 and job.config.seed == 7 and job.out is None
    job = config_from_args(_parse("--phantom", "torso", "--out", "x.petsird", "--injected-dose-mbq", "300"))
    assert job.truth == Path("x.petsird.truth.h5") and job.config.injected_dose_bq == pytest.approx(3e8)


def test_nema_is_scaled_to_fit_the_small_scanner(tmp_path: Path) -> None:
    job = config_from_args(
        _parse(
            "--scanner", "small", "--counts", "100", "--voxel-mm", "8", "--out", str(tmp_path / "x.petsird")
        )
    )
    phantom = job.simulator().phantom  # the full-size phantom would not fit the 150 mm bore
    assert phantom.grid.voxel_size_mm[0] < 8.0 and phantom.name == "nema"


def test_simulate_to_petsird_and_truth_file(tmp_path: Path) -> None:
    out = tmp_path / "nema.petsird"
    calibration = tmp_path / "norm.petsird"
    args = _parse(
        "--phantom", "nema", "--scanner", "signa", "--counts", "3000", "--voxel-mm", "4", "--out", str(out),
        "--calibration-counts", "2000", "--calibration-out", str(calibration),
    )  # fmt: skip
    tally = run_to_file(config_from_args(args), write_petsird)
    scanner, batches, header = read_petsird(out)
    efficiencies = crystal_efficiencies_from_information(header.scanner)
    assert efficiencies is not None and efficiencies.shape == (scanner.n_crystals,)
    assert float(efficiencies.mean()) == pytest.approx(1.0, abs=1e-4)
    _, calibration_batches, _ = read_petsird(calibration)
    assert sum(b.n_prompts for b in calibration_batches) == 2000
    events = concatenate_batches(batches)
    assert scanner.name == "signa" and events.n_prompts == 3000 == tally.n_prompts
    assert events.n_delayeds == tally.n_delayeds
    counts = read_truth_file_counts(Path(f"{out}.truth.h5"))
    assert counts["n_trues"] + counts["n_scatters"] + counts["n_randoms"] == 3000
    assert counts["n_trues"] > counts["n_randoms"] > 0 and counts["n_scatters"] > 0
    with h5py.File(f"{out}.truth.h5", "r") as truth:
        activity = truth["phantom/activity_bq_per_ml"][...]
        assert activity.max() == pytest.approx(4 * 5300.0)
        assert truth["crystals/true_efficiencies"].shape == (scanner.n_crystals,)
        assert tuple(truth["phantom"].attrs["voxel_size_mm"]) == (4.0, 4.0, 4.0)


def test_stream_messages_decode_to_batches() -> None:
    job = config_from_args(_parse("--counts", "500", "--voxel-mm", "4", "--to", "localhost:9002"))
    simulator = job.simulator()
    batches = [decode_message(message) for message in job.messages(simulator)]
    assert sum(b.n_prompts for b in batches) == 500 and batches[-1].is_last_in_frame
    assert np.all(np.concatenate([b.crystal_id_1 for b in batches]) < simulator.scanner.n_crystals)


def test_torso_on_the_mmr_is_non_tof_and_attenuated_by_coil_and_table() -> None:
    job = config_from_args(
        _parse("--phantom", "torso", "--scanner", "mmr", "--counts", "1500", "--voxel-mm", "5", "--to", "h:1")
    )
    simulator = job.simulator()
    batches = list(simulator.batches())
    assert all(np.all(b.tof_bin == 0) for b in batches) and sum(b.n_prompts for b in batches) == 1500
    tally = simulator.tally
    assert tally.n_trues > 0 and tally.n_scatters > 0 and tally.n_randoms + tally.n_delayeds > 0
    # SUV bookkeeping: soft tissue (SUV 0.7) = 0.7 × decayed dose / weight with the reported dose and weight
    info = simulator.acquisition_info()
    assert (info.injected_dose_bq, info.patient_weight_kg) == (370e6, 75.0)
    suv_unit = info.injected_dose_bq * info.decay_factor_at_frame_start() / (info.patient_weight_kg * 1000.0)
    soft = simulator.phantom.activity_bq_per_ml[simulator.phantom.label_mask("soft_tissue")]
    assert float(soft.mean()) == pytest.approx(0.7 * suv_unit, rel=1e-5)
