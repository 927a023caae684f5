"""Which FFT backend for CPU tensors: pyFFTW (cached plans) vs torch.fft vs scipy.fft vs numpy.fft.

A stack of 2-D complex64 FFTs of cardiac k-space (16 coils × 192 × 156, after oversampling removal).
Floor: 5·N·log2(N) flops per 2-D transform of N = 192·156 points; pyFFTW reaches ≈ 25–32 GFLOP/s per core
on this class of machine.  ``recon.common.fft`` uses pyFFTW for CPU tensors when this benchmark shows it
ahead; ``ratio`` is each backend's time / numpy.fft's, measured in the same run.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import scipy.fft
import torch

from benchmarks.conftest import bench_profile, record_ratio
from recon.common import fft as fft_module

N_COILS = 16 if bench_profile() == "quick" else 30
SHAPE = (N_COILS, 192, 156) if bench_profile() == "quick" else (N_COILS, 256, 208)


def _kspace() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.complex(torch.randn(SHAPE, generator=g), torch.randn(SHAPE, generator=g))


def _numpy_reference(x: np.ndarray) -> Any:
    return lambda: np.fft.ifft2(x, norm="ortho")


@pytest.mark.parametrize("backend", ["pyfftw", "torch", "scipy"])
def test_fft2_backend(benchmark: Any, backend: str) -> None:
    x = _kspace()
    xn = x.numpy()
    if backend == "scipy":
        benchmark(lambda: scipy.fft.ifft2(xn, norm="ortho", workers=1))
    else:
        fft_module.set_cpu_backend(backend)  # type: ignore[arg-type]
        try:
            benchmark(lambda: fft_module.ifftc(x, dims=(-2, -1)))
        finally:
            fft_module.set_cpu_backend("auto")
    record_ratio(benchmark, _numpy_reference(xn), "numpy.fft.ifft2, same stack")
    n = SHAPE[1] * SHAPE[2]
    flops = SHAPE[0] * 5 * n * math.log2(n)
    benchmark.extra_info["gflops"] = flops / benchmark.stats.stats.median / 1e9
