"""The shipped ``petmr`` chain end to end: Dixon acquisitions then PET list-mode in one session."""

from __future__ import annotations

import itertools
from pathlib import Path

import h5py
import ismrmrd
import numpy as np

from hardware_sim.mr.config import MRExamConfig
from hardware_sim.mr.exam import simulate_exam
from plugins.cli import main
from plugins.pet.items import PETMuMap
from plugins.pet.tof_recon import image_grid_for
from plugins.runtime.chain import load_chain
from plugins.runtime.pipeline import Pipeline
from plugins.runtime.plugin import ChainContext
from recon.petmr_ac.grid import grid_from_pet_image_grid, resample
from recon.petmr_ac.tissue import dice
from recon.tof.geometry import ImageGrid, scanner_by_name
from recon.tof.listmode import ListModeBatch


def _uniform_listmode(n_events: int, rng: np.random.Generator) -> ListModeBatch:
    """Random LORs through a uniform cylinder on the small scanner (only the stream mechanics matter here)."""
    scanner = scanner_by_name("small")
    ring = rng.integers(0, scanner.n_rings, (2, n_events))
    offset = rng.integers(scanner.n_crystals_per_ring // 4, 3 * scanner.n_crystals_per_ring // 4, n_events)
    a = rng.integers(0, scanner.n_crystals_per_ring, n_events)
    c1 = scanner.crystal_id(ring[0], a)
    c2 = scanner.crystal_id(ring[1], (a + offset) % scanner.n_crystals_per_ring)
    tof = rng.integers(-3, 4, n_events).astype(np.int16)
    return ListModeBatch(
        c1,
        c2,
        tof,
        np.ones(n_events, bool),
        np.sort(rng.integers(0, 10_000, n_events)).astype(np.uint32),
        "small",
        0,
        True,
    )


def test_petmr_chain_emits_dixon_images_mumap_and_pet_image() -> None:
    exam = simulate_exam(
        MRExamConfig(
            protocol="dixon", n_slices=2, n_coils=8, n_echoes=3, n_readout=64, n_phase_encodes=48, seed=2
        )
    )
    chain = load_chain(
        "petmr",
        [
            "mumap.scanner=small",
            "mumap.voxel_size_mm=8.0",
            "mumap.truncation_completion=false",
            "osem.voxel_size_mm=8.0",
            "osem.n_iterations=1",
            "osem.n_subsets=2",
            "osem.scatter=false",
            "osem.max_sensitivity_pairs=100000",
        ],
    )
    context = ChainContext("petmr", header=exam.header)
    pet = _uniform_listmode(20_000, np.random.default_rng(0))
    outputs = list(Pipeline(chain, context).run(itertools.chain(exam.items(), [pet])))
    series = {int(o.image_series_index) for o in outputs if isinstance(o, ismrmrd.Image)}
    assert {10, 11, 12, 13, 20}.issubset(series)  # water, fat, FF, B0, μ-map
    assert 100 in series  # the attenuation-corrected PET image
    assert not any(isinstance(o, PETMuMap) for o in outputs)  # consumed by the PET reconstruction


def test_petmr_chain_with_truncation_completion_from_nac() -> None:
    exam = simulate_exam(
        MRExamConfig(
            protocol="dixon", n_slices=2, n_coils=8, n_echoes=3, n_readout=64, n_phase_encodes=48, seed=2
        )
    )
    chain = load_chain(
        "petmr",
        [
            "mumap.scanner=small",
            "mumap.voxel_size_mm=8.0",
            "mumap.nac_voxel_size_mm=10.0",
            "mumap.nac_max_events=20000",
            "osem.voxel_size_mm=8.0",
            "osem.n_iterations=1",
            "osem.n_subsets=2",
            "osem.scatter=false",
            "osem.max_sensitivity_pairs=100000",
        ],
    )
    pet = _uniform_listmode(20_000, np.random.default_rng(1))
    outputs = list(
        Pipeline(chain, ChainContext("petmr", header=exam.header)).run(itertools.chain(exam.items(), [pet]))
    )
    mu_images = [o for o in outputs if isinstance(o, ismrmrd.Image) and int(o.image_series_index) == 20]
    assert mu_images
    meta = ismrmrd.Meta.deserialize(mu_images[0].attribute_string)
    assert int(meta["TruncationCompletedVoxels"]) > 0  # the NAC outline reaches beyond the 2-slice MR slab
    assert any(isinstance(o, ismrmrd.Image) and int(o.image_series_index) == 100 for o in outputs)


def test_simulate_petmr_then_run_the_chain_on_it(tmp_path: Path) -> None:
    """``simulate petmr`` writes Dixon, list-mode and one truth file of one torso; the chain runs on them and
    its μ-map (tissue, not lung) lies on the true μ-map in the shared frame of reference."""
    data, out = tmp_path / "sim", tmp_path / "out"
    simulate = ["simulate", "petmr", "--out", str(data), "--counts", "20000", "--voxel-mm", "8"]
    assert main([*simulate, "--slices", "4", "--coils", "8", "--matrix", "64", "48"]) == 0
    assert {p.name for p in data.iterdir()} == {"dixon.h5", "listmode.petsird", "truth.h5"}
    inputs = ["--input", str(data / "dixon.h5"), "--input", str(data / "listmode.petsird")]
    settings = [
        "mumap.voxel_size_mm=8.0", "mumap.nac_voxel_size_mm=10.0", "mumap.nac_max_events=20000",
        "osem.voxel_size_mm=8.0", "osem.n_iterations=1", "osem.n_subsets=2", "osem.scatter=false",
        "osem.max_sensitivity_pairs=100000", "mumap.lung_mu_iterations=1", "mumap.lung_mu_subsets=2",
        "mumap.lung_mu_max_sensitivity_pairs=100000",
    ]  # fmt: skip
    sets = [arg for s in settings for arg in ("--set", s)]
    assert main(["run", "--chain", "petmr", *inputs, "--out", str(out), *sets, "--device", "cpu"]) == 0
    with h5py.File(out / "images.h5", "r") as f:
        mu = f["dataset/image_20/data"][:, 0, 0]
        meta = ismrmrd.Meta.deserialize(f["dataset/image_20/attributes"][0])
        assert "image_100" in f["dataset"]  # the attenuation-corrected PET image
    assert meta["HardwareTemplates"] == "table,anterior_array" and meta["BoneClass"].startswith("absent")
    assert meta["LungMu"].startswith("TOF estimate")  # the shipped chain estimates the lung coefficient
    with h5py.File(data / "truth.h5", "r") as truth:
        assert "mr" in truth and "labels" in truth["mr"] and "LPS" in truth.attrs["frame_of_reference"]
        phantom = truth["phantom"]
        mu_true = phantom["mu_per_cm"][...]
        true_grid = ImageGrid(*(tuple(phantom.attrs[k]) for k in ("shape_zyx", "voxel_size_mm", "origin_mm")))
    grid = image_grid_for(scanner_by_name("signa"), 8.0, None)
    mu_true = resample(mu_true, grid_from_pet_image_grid(true_grid), grid_from_pet_image_grid(grid), order=1)
    z, y, x = (grid.axis_centres_mm(a) for a in range(3))
    # the MR slab (4 × 8 mm), inside the torso's outline: neither the arms (completed from the NAC), nor coil, nor table
    inside = (x / 175.0) ** 2 + (y[:, None] / 116.0) ** 2 <= 1.0
    region = (np.abs(z) < 16.0)[:, None, None] & inside[None]
    assert dice(mu[region] > 0.05, mu_true[region] > 0.05) >= 0.9
