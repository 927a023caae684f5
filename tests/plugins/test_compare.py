"""``reconstream compare RUN_DIR TRUTH.h5``: scores against the simulator's truth (issue 25)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import ismrmrd
import numpy as np
import pytest

from hardware_sim.pet.phantoms import nema_iec_phantom
from plugins.cli import main
from plugins.compare import nrmse, ssim
from plugins.io.ismrmrd_files import append_to_dataset
from plugins.mr.dixon_images import volume_to_images
from plugins.pet.tof_recon import volume_image
from recon.petmr_ac.grid import axis_aligned_grid, grid_from_pet_image_grid, resample
from recon.tof.geometry import ImageGrid


def _write_images(path: Path, images: list[ismrmrd.Image]) -> None:
    dset = ismrmrd.Dataset(str(path / "images.h5"), "dataset", create_if_needed=True)
    for image in images:
        append_to_dataset(dset, image)
    dset.close()


def _cine_truth(path: Path, rng: np.random.Generator) -> np.ndarray:
    """A minimal MR cine truth (2 slices, 3 phases, 16 × 20); returns |images| · coil_rss."""
    images = (rng.normal(size=(2, 3, 16, 20)) + 1j * rng.normal(size=(2, 3, 16, 20))).astype(np.complex64)
    rss = rng.uniform(0.5, 1.5, (2, 16, 20)).astype(np.float32)
    body = np.zeros((2, 16, 20), bool)
    body[:, 3:13, 4:16] = True
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "reconstream.mr_truth.v1"
        f.attrs["protocol"] = "cine"
        f.attrs["a_field_from_the_future"] = 1.0  # read defensively: unknown fields are ignored
        f.create_dataset("images", data=images)
        f.create_dataset("coil_rss", data=rss)
        f.create_dataset("body_mask", data=body)
    return np.abs(images) * rss[:, None]


def _cine_images(magnitude: np.ndarray) -> list[ismrmrd.Image]:
    out = []
    for s in range(magnitude.shape[0]):
        for p in range(magnitude.shape[1]):
            image = ismrmrd.Image.from_array(magnitude[s, p][None].astype(np.float32))
            image.slice, image.phase, image.image_series_index = s, p, 1
            out.append(image)
    return out


def test_metrics_are_scale_free_and_perfect_on_truth() -> None:
    truth = np.random.default_rng(0).uniform(0.0, 1.0, (32, 32))
    assert nrmse(3.0 * truth, truth) == pytest.approx(0.0, abs=1e-12)
    assert ssim(truth, truth) == pytest.approx(1.0)
    assert nrmse(truth + 0.1 * np.random.default_rng(1).normal(size=truth.shape), truth) > 0.05


def test_compare_prints_nrmse_per_slice_of_a_cine_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    reference = _cine_truth(tmp_path / "cine.truth.h5", rng)
    estimate = 7.0 * reference.copy()
    estimate[1] += 2.0 * rng.normal(size=estimate[1].shape)  # slice 1 noisy, slice 0 exact up to the scale
    run = tmp_path / "run"
    run.mkdir()
    _write_images(run, _cine_images(np.abs(estimate)))
    assert main(["compare", str(run), str(tmp_path / "cine.truth.h5")]) == 0
    printed = capsys.readouterr().out
    assert "slice   0: nRMSE" in printed and "slice   1: nRMSE" in printed
    scores = json.loads((run / "compare.json").read_text())["mr"]["series"]["1"]["slices"]
    assert scores[0]["nrmse"] == pytest.approx(0.0, abs=1e-6) and scores[0]["ssim"] == pytest.approx(1.0)
    assert scores[1]["nrmse"] > 0.05


def test_compare_scores_pet_nema_recovery_background_and_mumap_dice(tmp_path: Path) -> None:
    phantom = nema_iec_phantom(voxel_size_mm=4.0)
    truth = tmp_path / "nema.truth.h5"
    with h5py.File(truth, "w") as f:
        g = f.create_group("phantom")
        for name in ("activity_bq_per_ml", "mu_per_cm", "labels"):
            g.create_dataset(name, data=getattr(phantom, name))
        g.attrs["name"], g.attrs["label_names"] = "nema", json.dumps(list(phantom.label_names))
        for key in ("shape_zyx", "voxel_size_mm", "origin_mm"):
            g.attrs[key] = getattr(phantom.grid, key)
    pet_grid = ImageGrid.centred((40, 70, 70), (4.0, 4.0, 4.0))
    source = axis_aligned_grid(phantom.grid.shape_zyx, phantom.grid.voxel_size_mm, phantom.grid.origin_mm)
    target = grid_from_pet_image_grid(pet_grid)
    activity = resample(phantom.activity_bq_per_ml, source, target, order=1)
    mu = resample(phantom.mu_per_cm, source, target, order=1)
    run = tmp_path / "run"
    run.mkdir()
    pet = volume_image(0.9 * activity, pet_grid, {"Modality": "PT", "Units": "Bq/ml"}, 100, 0)
    mumap = volume_to_images(mu, target, 20, {"Unit": "1/cm", "Role": "mu_map_511keV"})
    _write_images(run, [pet, *mumap])
    assert main(["compare", str(run), str(truth)]) == 0
    scores = json.loads((run / "compare.json").read_text())["pet"]["series"]
    assert scores["100"]["total_activity_bias"] == pytest.approx(-0.1, abs=1e-3)
    assert scores["100"]["recovery_coefficients"]["sphere_37mm"] == pytest.approx(0.9, abs=1e-3)
    assert scores["100"]["background_variability"] == pytest.approx(0.0, abs=0.02)
    assert scores["20"]["tissue_dice"] == pytest.approx(1.0)


def test_compare_refuses_a_folder_without_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _cine_truth(tmp_path / "t.h5", np.random.default_rng(0))
    assert main(["compare", str(tmp_path), str(tmp_path / "t.h5")]) == 2
    assert "no images.h5" in capsys.readouterr().err


def test_compare_on_a_cine_run_as_the_demo_makes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What ``reconstream demo`` does (simulate a cine scan, run the ``cine`` chain), at the smallest size, then
    ``compare`` against its truth file: one nRMSE per slice, within the cine chain's accuracy."""
    raw = tmp_path / "raw_cine.h5"
    simulate = ["simulate", "mr", "--protocol", "cine", "--slices", "1", "--coils", "8", "--phases", "8"]
    assert main([*simulate, "--matrix", "80", "72", "--out", str(raw)]) == 0
    assert (
        main(["run", "--chain", "cine", "--input", str(raw), "--out", str(tmp_path), "--device", "cpu"]) == 0
    )
    capsys.readouterr()
    assert main(["compare", str(tmp_path), str(tmp_path / "raw_cine.truth.h5")]) == 0
    assert "slice   0: nRMSE" in capsys.readouterr().out
    (series,) = json.loads((tmp_path / "compare.json").read_text())["mr"]["series"].values()
    assert 0.0 < series["slices"][0]["nrmse"] < 0.3 and series["slices"][0]["ssim"] > 0.7
