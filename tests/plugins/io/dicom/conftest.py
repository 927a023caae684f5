"""Run folders shared by the DICOM tests: a simulated double-oblique cine and flow session run through
the shipped chains (smallest sizes), LGE, MOLLI and T2* sessions through ``lge-psir``, ``t1-molli`` and
``t2star-map`` (small matrix), and a synthetic PET + Dixon + μ-map folder built from the plugins'
own image makers (no reconstruction)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

CINE = {"n_slices": 2, "n_coils": 8, "n_readout": 64, "n_phase_encodes": 52, "n_phases": 4}


def _run_chain(protocol: str, out: Path, chain: str | None = None, **config: int) -> Path:
    from hardware_sim.mr import MRExamConfig, simulate_exam
    from plugins.io.ismrmrd_files import write_raw
    from plugins.runtime.chain import load_chain
    from plugins.runtime.session import combined_inputs, run_to_folder

    exam = simulate_exam(MRExamConfig(protocol=protocol, **config))  # type: ignore[arg-type]
    raw = out.parent / f"{out.name}.h5"
    write_raw(raw, exam.header, exam.items())
    header, extras, items = combined_inputs([raw])
    run_to_folder(
        load_chain(chain or protocol), items, out, header=header, device="cpu", inputs=[raw], extras=extras
    )
    return out


@pytest.fixture(scope="session")
def cine_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run_chain("cine", tmp_path_factory.mktemp("cine") / "run", **CINE)


@pytest.fixture(scope="session")
def flow_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run_chain("flow", tmp_path_factory.mktemp("flow") / "run", **{**CINE, "n_slices": 1})


TISSUE = {"n_coils": 8, "n_readout": 96, "n_phase_encodes": 78}


@pytest.fixture(scope="session")
def lge_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run_chain("lge", tmp_path_factory.mktemp("lge") / "run", chain="lge-psir", **TISSUE)


@pytest.fixture(scope="session")
def molli_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run_chain("molli", tmp_path_factory.mktemp("molli") / "run", chain="t1-molli", **TISSUE)


@pytest.fixture(scope="session")
def t2star_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run_chain("t2star", tmp_path_factory.mktemp("t2star") / "run", chain="t2star-map", **TISSUE)


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PET (series 10, Bq/ml, F-18, SUV factor), Dixon fat fraction (20, %) and μ-map (30, 1/cm)."""
    from plugins.io.outputs import OutputWriter
    from plugins.mr.dixon_images import volume_to_images
    from plugins.pet.tof_recon import volume_image
    from recon.petmr_ac.grid import axis_aligned_grid
    from recon.tof.geometry import ImageGrid

    out = tmp_path_factory.mktemp("synthetic") / "run"
    rng = np.random.default_rng(0)
    writer = OutputWriter(out)
    pet_grid = ImageGrid.centred((4, 8, 8), (3.0, 2.0, 2.0))
    pet_meta = {
        "Modality": "PT", "Units": "Bq/ml", "DecayCorrection": "START", "FrameStart_s": "0",
        "FrameDuration_s": "600", "Isotope": "F18", "Iterations": "3", "Subsets": "4", "TOF": "True",
        "AttenuationCorrection": "MR Dixon", "ScatterScale": "1.0", "SUVbwScaleFactor": "0.000203",
    }  # fmt: skip
    writer.write(volume_image(rng.uniform(0, 5000, (4, 8, 8)).astype(np.float32), pet_grid, pet_meta, 10, 0))
    grid = axis_aligned_grid((3, 8, 8), (4.0, 2.5, 2.5), (-4.0, -8.75, -8.75))
    ff = rng.uniform(0, 100, (3, 8, 8)).astype(np.float32)
    for image in volume_to_images(ff, grid, 20, {"DixonMap": "fat_fraction", "Unit": "percent"}):
        writer.write(image)
    mu = rng.uniform(0, 0.15, (3, 8, 8)).astype(np.float32)
    for image in volume_to_images(mu, grid, 30, {"Unit": "1/cm", "Role": "mu_map_511keV"}):
        writer.write(image)
    writer.close()
    shutil.rmtree(out / "png", ignore_errors=True)
    return out
