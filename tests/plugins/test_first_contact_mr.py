"""Issue 25, MR commands as documented (reduced size): ``simulate mr`` then ``run --chain flow|petmr|cartesian``.

Checks what the commands write, not only their exit codes: velocity images zero outside the body with a
window from the VENC, one beats report per encoding, Dixon fat fraction 0–100 % and masked, a smooth B0 map,
one preview per series, and the ``cartesian`` chain refusing data it would merge (echoes, encodings).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import ismrmrd
import numpy as np
import pytest
from scipy import ndimage

from plugins.cli import main

SMALL = ["--slices", "1", "--coils", "8", "--matrix", "96", "80", "--noise-std", "2.5e-4", "--seed", "2"]


def _series(path: Path) -> dict[int, tuple[np.ndarray, list[dict[str, str]]]]:
    """``series → ((images, y, x) float pixels, meta per image)`` of an ``images.h5``."""
    with h5py.File(path, "r") as fh:
        groups = [g for g in fh["dataset"] if g.startswith("image_")]
    dataset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=False)
    out = {}
    try:
        for group in groups:
            images = [dataset.read_image(group, i) for i in range(dataset.number_of_images(group))]
            images.sort(key=lambda im: (int(im.slice), int(im.phase)))
            pixels = np.stack([np.asarray(im.data).reshape(im.data.shape[-2:]).real for im in images])
            metas = []
            for im in images:
                meta = ismrmrd.Meta.deserialize(im.attribute_string)
                metas.append({str(k): str(meta[k]) for k in meta})
            out[int(images[0].image_series_index)] = (pixels, metas)
    finally:
        dataset.close()
    return out


def _air(magnitude_yx: np.ndarray, fraction: float = 0.03) -> np.ndarray:
    """Low-signal pixels connected to the image border (air around the body, not the lungs)."""
    low = magnitude_yx < fraction * np.percentile(magnitude_yx, 99)
    labels, _ = ndimage.label(low)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    air = np.isin(labels, border[border > 0])
    return ndimage.binary_erosion(air, iterations=2)  # away from the body's edge


def _corners(shape: tuple[int, ...], size: int = 8) -> np.ndarray:
    mask = np.zeros(shape[-2:], dtype=bool)
    for ys in (slice(0, size), slice(-size, None)):
        for xs in (slice(0, size), slice(-size, None)):
            mask[ys, xs] = True
    return mask


@pytest.fixture(scope="module")
def flow_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("flow") / "flow.h5"
    args = ["simulate", "mr", "--protocol", "flow", *SMALL, "--phases", "10", "--heart-rate", "120"]
    assert main([*args, "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def dixon_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dixon") / "dixon.h5"
    small = [*SMALL]
    small[1] = "2"  # two slices
    assert main(["simulate", "mr", "--protocol", "dixon", "--echoes", "3", *small, "--out", str(path)]) == 0
    return path


def test_flow_velocities_zero_outside_body_window_from_venc_one_report_per_encoding(
    flow_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert main(["run", "--chain", "flow", "--input", str(flow_file), "--out", str(out)]) == 0
    series = _series(out / "images.h5")
    magnitude, _ = series[1]
    velocity, metas = series[2]
    air = _air(magnitude.mean(axis=0))
    assert air.sum() > 0.2 * air.size
    assert np.all(velocity[:, air] == 0.0)
    body = magnitude.mean(axis=0) > 0.2 * np.percentile(magnitude, 99)
    assert np.count_nonzero(velocity[:, body]) > 0.9 * velocity[:, body].size  # values kept in the body
    venc = float(metas[0]["VENC_cm_per_s"])
    assert metas[0]["WindowCenter"] == "0" and float(metas[0]["WindowWidth"]) == 2 * venc
    beats = {p.name: json.loads(p.read_text()) for p in out.glob("cine_beats_*.json")}
    assert sorted(beats) == ["cine_beats_slice000.json", "cine_beats_slice000_set1.json"]
    assert [beats[name]["set"] for name in sorted(beats)] == [0, 1]
    assert sorted(p.name for p in (out / "png").iterdir()) == [
        "series1.gif", "series1.png", "series2.gif", "series2.png"
    ]  # fmt: skip
    provenance = json.loads((out / "provenance.json").read_text())
    assert sorted(provenance["outputs"]["reports"]) == sorted(set(provenance["outputs"]["reports"]))


def test_dixon_maps_masked_clipped_smooth_and_one_preview_per_series(
    dixon_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert main(["run", "--chain", "petmr", "--input", str(dixon_file), "--out", str(out)]) == 0
    series = _series(out / "images.h5")
    water, fat = series[10][0], series[11][0]
    ff, ff_meta = series[12]
    b0, b0_meta = series[13]
    assert ff.min() >= 0.0 and ff.max() <= 100.0
    assert ff_meta[0]["Unit"] == "percent" and ff_meta[0]["WindowWidth"] == "100"
    signal = water + fat
    low = signal < 0.02 * np.percentile(signal, 99)
    assert np.all(ff[low] == 0.0) and np.all(b0[:, _corners(b0.shape)] == 0.0)
    body = signal > 0.3 * np.percentile(signal, 99)
    steps = np.abs(np.diff(b0, axis=2))[body[:, :, 1:] & body[:, :, :-1]]
    assert np.median(steps) < 1.0  # Hz per pixel: smooth, no blocks or speckle
    assert b0_meta[0]["Unit"] == "Hz" and b0_meta[0]["WindowCenter"] == "0"
    previews = sorted(p.name for p in (out / "png").iterdir())
    assert previews == ["series10.png", "series11.png", "series12.png", "series13.png", "series20.png"]


def test_cartesian_refuses_dixon_echoes(
    dixon_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--chain", "cartesian", "--input", str(dixon_file), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert "3 echoes (idx.contrast 0..2)" in err and "petmr" in err
    assert len(err.strip().splitlines()) == 1


def test_cartesian_refuses_two_flow_encodings(
    flow_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--chain", "cartesian", "--input", str(flow_file), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert "2 encodings (idx.set 0..1" in err and "flow chain" in err
