"""Latency of MR-based attenuation correction for one bed position (issue 8).

"From the last Dixon readout to the μ-map on the PET grid": the 3-D inverse FFTs of the three echoes
(256 × 192 × 64, coil-combined) plus water/fat separation with the field-map estimate, swap check, tissue
classes, μ per class, resampling to a Signa-like PET grid (90 × 198 × 198, 2.78 × 3 × 3 mm), smoothing to the
PET resolution and the (precomputed) hardware μ-map.  Measured beside the FFTs alone, in one run (``extra_info["ratio"]`` = total / FFTs):

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest benchmarks/test_bench_petmr_ac.py --benchmark-only

The data are a synthetic elliptic torso (subcutaneous fat, lungs, soft tissue, a smooth B0 of ±100 Hz) with
the six-peak fat model; they exist only to give the steps realistic masks and field maps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from benchmarks.conftest import record_ratio
from recon.common.fft import fftc, ifftc
from recon.petmr_ac.fat_model import HAMILTON_LIVER_FAT, fat_signal_factors, larmor_frequency_hz
from recon.petmr_ac.grid import axis_aligned_grid
from recon.petmr_ac.mumap import default_table, hardware_mumap
from recon.petmr_ac.pipeline import mumap_from_dixon

ECHO_TIMES_S = (1.2e-3, 2.4e-3, 3.6e-3)
FIELD_T = 1.5
SHAPE = (64, 192, 256)
MR_VOXEL_MM = (4.0, 2.0, 2.0)


def _torso_echoes(rng: np.random.Generator) -> np.ndarray:
    _, n_y, n_x = SHAPE
    y, x = np.mgrid[:n_y, :n_x].astype(np.float32)
    r_body = ((y - n_y / 2) / (0.4 * n_y)) ** 2 + ((x - n_x / 2) / (0.45 * n_x)) ** 2
    r_inner = ((y - n_y / 2) / (0.4 * n_y - 8)) ** 2 + ((x - n_x / 2) / (0.45 * n_x - 8)) ** 2
    lungs = (((y - n_y / 2) / (0.2 * n_y)) ** 2 + ((np.abs(x - n_x / 2) - 0.2 * n_x) / (0.1 * n_x)) ** 2) <= 1
    water = np.where(r_inner <= 1, 0.95, np.where(r_body <= 1, 0.1, 0.0)) * np.where(lungs, 0.02, 1.0)
    fat = np.where(r_inner <= 1, 0.05, np.where(r_body <= 1, 0.9, 0.0)) * np.where(lungs, 0.0, 1.0)
    zz, yy, xx = np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij")
    field_hz = 100.0 * (0.8 * xx + 0.5 * yy**2 + 0.2 * zz)
    c = fat_signal_factors(np.array(ECHO_TIMES_S), HAMILTON_LIVER_FAT, larmor_frequency_hz(FIELD_T))
    echoes = np.empty((len(ECHO_TIMES_S), *SHAPE), dtype=np.complex64)
    for n, t in enumerate(ECHO_TIMES_S):
        signal = (water + c[n] * fat)[None] * np.exp(2j * np.pi * field_hz * t)
        noise = rng.normal(0, 0.02, SHAPE) + 1j * rng.normal(0, 0.02, SHAPE)
        echoes[n] = signal + noise
    return echoes


@pytest.fixture(scope="module")
def bed() -> dict[str, Any]:
    echoes = _torso_echoes(np.random.default_rng(0))
    kspace = fftc(torch.from_numpy(echoes), dims=(-3, -2, -1))
    mr = axis_aligned_grid(SHAPE, MR_VOXEL_MM, (-126.0, -190.0, -254.0))
    pet = axis_aligned_grid((90, 198, 198), (2.78, 3.0, 3.0), (-123.7, -294.0, -294.0))
    table = hardware_mumap(pet, [default_table(table_top_y_mm=160.0)])
    return {"kspace": kspace, "mr": mr, "pet": pet, "table": table}


def _ffts(kspace: torch.Tensor) -> np.ndarray:
    return ifftc(kspace, dims=(-3, -2, -1)).numpy()


def test_dixon_ffts_alone(benchmark: Any, bed: dict[str, Any]) -> None:
    images = benchmark.pedantic(_ffts, args=(bed["kspace"],), rounds=3, warmup_rounds=1)
    assert images.shape == (3, *SHAPE)


def test_last_readout_to_mumap_on_pet_grid(benchmark: Any, bed: dict[str, Any]) -> None:
    def run() -> np.ndarray:
        echoes = _ffts(bed["kspace"])
        result = mumap_from_dixon(
            echoes,
            ECHO_TIMES_S,
            larmor_frequency_hz(FIELD_T),
            bed["mr"],
            bed["pet"],
            hardware_mu_per_cm=bed["table"],
        )
        return result.mu_per_cm

    mu = benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    record_ratio(benchmark, lambda: _ffts(bed["kspace"]), "3-D iFFTs of the 3 echoes", rounds=3)
    assert mu.shape == bed["pet"].shape_zyx and float(mu.max()) > 0.09
