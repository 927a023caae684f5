"""Per-readout cost of the streaming MR stages noise adjust and oversampling removal (issue 19).

Readouts: the cine default, 16 coils × 384 samples (192 recon samples × 2 oversampling), complex64, a
noise prescan first; the stage handles them as the chains do (blocks of up to ``max_block_readouts``).

Floor, written down before optimising (2-core development VM, one core per stage):

* noise adjust: one (16 × 16)·(16 × 384) complex product per readout = 98 304 complex multiply-adds =
  0.79 MFLOP: 5 µs at one core's AVX-512 peak (≈ 160 GFLOP/s), ≈ 13 µs at the ≈ 58 GFLOP/s one OpenBLAS
  thread reaches here; moving 48 KiB in and out at ≈ 27 GB/s: ≈ 4 µs.
* oversampling removal: 16 × (384-point inverse + 192-point forward FFT) = 0.38 MFLOP (5 N log2 N): ≈ 15 µs
  at FFTW's ≈ 25 GFLOP/s on one core.  The same map as a dense (384 → 192) matrix is 9.4 MFLOP per readout
  (≈ 160 µs at 58 GFLOP/s), so this stage uses the FFTs.
* before this change (commit 5edbcb3, per readout, load ≈ 2): noise adjust 0.3–0.6 ms and oversampling
  removal 0.8–1.1 ms, nearly all of it two OpenBLAS threads waking up for one small product each.

Reference, same run, same readouts, one BLAS thread: the batched matrix product of the readouts — the
whitening matrix times all of them as one (16 × 16)·(16 × N·384) product for noise adjust; all of them times
the dense (384 × 192) crop matrix for oversampling removal.  ``extra_info`` holds the per-readout figures and,
for noise adjust, each stage's per-readout compute time inside a two-stage pipeline (its queues deliver
blocks of at most ``queue_size + 1`` readouts; the noise stage's time includes computing the covariance and
whitening matrix from the prescan once).
"""

from __future__ import annotations

from typing import Any

import ismrmrd
import numpy as np
import torch

from benchmarks.conftest import bench_profile, median_seconds, record_ratio
from plugins.mr.cine_noise import CineNoiseAdjust
from plugins.mr.cine_oversampling import CineRemoveOversampling
from plugins.runtime.chain import ChainSpec, StageSpec
from plugins.runtime.pipeline import Pipeline
from plugins.runtime.plugin import ChainContext
from recon.cine.noise import remove_readout_oversampling
from recon.common.blas_threads import single_thread_blas

N_COILS, N_SAMPLES = 16, 384
N_READOUTS = 256 if bench_profile() == "quick" else 2048
CTX = ChainContext(chain_name="bench")


def _readouts(n: int, seed: int = 0) -> tuple[list[ismrmrd.Acquisition], list[ismrmrd.Acquisition]]:
    """(noise prescan readouts, imaging readouts with correlated coil noise; the last ends the slice)."""
    rng = np.random.default_rng(seed)
    mixing = np.eye(N_COILS) + 0.2 * rng.standard_normal((N_COILS, N_COILS))

    def readout(noise: bool) -> ismrmrd.Acquisition:
        white = rng.standard_normal((N_COILS, N_SAMPLES)) + 1j * rng.standard_normal((N_COILS, N_SAMPLES))
        acq = ismrmrd.Acquisition.from_array((mixing @ white).astype(np.complex64))
        acq.sample_time_us = 2.5
        if noise:
            acq.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
        return acq

    noise, imaging = [readout(True) for _ in range(4)], [readout(False) for _ in range(n)]
    imaging[-1].set_flag(ismrmrd.ACQ_LAST_IN_SLICE)
    return noise, imaging


def _noise_plugin(noise: list[ismrmrd.Acquisition]) -> CineNoiseAdjust:
    plugin = CineNoiseAdjust(CineNoiseAdjust.Config(), CTX)
    assert list(plugin.run(noise)) == []  # the prescan is consumed
    return plugin


def _two_stage_compute_per_readout_us(noise: list[Any], imaging: list[Any]) -> dict[str, float]:
    stages = (
        StageSpec("noise", "cine_noise_adjust", CineNoiseAdjust, CineNoiseAdjust.Config()),
        StageSpec(
            "oversampling",
            "cine_remove_oversampling",
            CineRemoveOversampling,
            CineRemoveOversampling.Config(factor=2),
        ),
    )
    pipeline = Pipeline(ChainSpec("bench", "noise + oversampling", "<bench>", stages), CTX)
    assert sum(1 for _ in pipeline.run([*noise, *imaging])) == len(imaging)
    wall = {f"in_pipeline_{s.stage}_us_per_readout": s.compute_s / len(imaging) * 1e6 for s in pipeline.stats}
    cpu = {f"in_pipeline_{s.stage}_cpu_us_per_readout": s.cpu_s / len(imaging) * 1e6 for s in pipeline.stats}
    return {**wall, **cpu}


def test_noise_adjust_per_readout(benchmark: Any) -> None:
    noise, imaging = _readouts(N_READOUTS)
    pristine = [acq.data.copy() for acq in imaging]
    plugin = _noise_plugin(noise)

    def restore() -> None:  # whitening works in place: every round starts from the raw readouts
        for acq, data in zip(imaging, pristine, strict=True):
            acq.data[:] = data

    def whiten_all() -> int:
        return sum(1 for _ in plugin.run(imaging))

    benchmark.pedantic(whiten_all, setup=restore, rounds=7, warmup_rounds=1)
    w = plugin._matrix(2.5)
    assert w is not None
    coil_major = np.ascontiguousarray(np.stack(pristine, axis=1)).reshape(N_COILS, -1)

    def batched_product() -> None:
        with single_thread_blas():
            w @ coil_major

    record_ratio(benchmark, batched_product, "(16 × 16)·(16 × N·384) product of the same readouts, 1 thread")
    benchmark.extra_info["per_readout_us"] = benchmark.stats.stats.median / N_READOUTS * 1e6
    benchmark.extra_info["reference_per_readout_us"] = (
        benchmark.extra_info["reference_median_s"] / N_READOUTS * 1e6
    )
    restore()
    benchmark.extra_info.update(_two_stage_compute_per_readout_us(noise, imaging))


def test_remove_oversampling_per_readout(benchmark: Any) -> None:
    _, imaging = _readouts(N_READOUTS, seed=1)
    plugin = CineRemoveOversampling(CineRemoveOversampling.Config(factor=2), CTX)

    def crop_all() -> int:
        return sum(1 for _ in plugin.run(imaging))

    benchmark.pedantic(crop_all, rounds=7, warmup_rounds=1)
    eye = torch.eye(N_SAMPLES, dtype=torch.complex128)
    crop = remove_readout_oversampling(eye, 2, dim=-1).to(torch.complex64).numpy()
    rows = np.stack([acq.data for acq in imaging]).reshape(-1, N_SAMPLES)

    def batched_product() -> None:
        with single_thread_blas():
            rows @ crop

    record_ratio(
        benchmark, batched_product, "(N·16 × 384)·(384 × 192) dense crop product, same readouts, 1 thread"
    )
    benchmark.extra_info["per_readout_us"] = benchmark.stats.stats.median / N_READOUTS * 1e6
    benchmark.extra_info["reference_per_readout_us"] = (
        benchmark.extra_info["reference_median_s"] / N_READOUTS * 1e6
    )
    benchmark.extra_info["ifft_fft_of_the_same_rows_us_per_readout"] = (
        median_seconds(lambda: np.fft.fft(np.fft.ifft(rows)[:, :192])) / N_READOUTS * 1e6
    )
