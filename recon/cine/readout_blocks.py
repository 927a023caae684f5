"""Block kernels of the streaming readout stages: prewhitening and oversampling removal of many readouts at once.

The streaming stages hand over a *block* of consecutive readouts of one shape, stacked as a numpy array
``(readouts, coils, samples)`` complex64, so each stage costs one numpy call (whitening) or one pair of
batched FFTs (oversampling removal) per block instead of one Python-level call per readout.  Both run on one CPU
thread: the products are small, and extra BLAS/FFTW threads only add wake-up cost on a busy 2-core host
(measured: a 16 × 16 by 16 × 384 product took 19 µs on one OpenBLAS thread and 740 µs on two, at load 2).

Results equal :func:`recon.cine.noise.prewhiten` and :func:`recon.cine.noise.remove_readout_oversampling`
(the definitions; tested) within complex64 rounding.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyfftw
import torch

from recon.cine.noise import remove_readout_oversampling
from recon.common.blas_threads import single_thread_blas

Complex64 = npt.NDArray[np.complex64]


def whiten_block(whitening: Complex64, block: Complex64, out: Complex64 | None = None) -> Complex64:
    """Prewhiten a block of readouts, ``out[:, r] = whitening @ block[:, r]``, one BLAS product per readout
    inside one numpy call.

    One product per readout, not one for the whole block: OpenBLAS's result depends on the number of
    columns of a product (measured with 4 coils × 128 samples: products over 1 or 2 readouts agree, those
    over 3 to 64 readouts differ from them by up to 2·10⁻⁶), and how many readouts share a block depends on
    when they arrive.  With one product per readout a
    readout's bits do not depend on its block, so a replayed session reproduces the served images exactly.
    Cost (``benchmarks/test_bench_mr_stages.py``, 16 coils × 384 samples, 2-core VM, 2026-12-05, separate runs
    before and after): the noise-adjust stage took 32–34 µs per readout, against 29–31 µs with one product per block.

    Args:
        whitening: ``(coils, coils)`` complex64 whitening matrix W = L⁻¹ (:func:`recon.cine.noise.whitening_matrix`).
        block: ``(coils, readouts, samples)`` complex64 k-space, C-contiguous (coil-major: what
            ``np.stack(readouts, axis=1)`` gives).
        out: optional C-contiguous array of the same shape for the result (a caller that reuses its
            buffers saves the page faults of fresh memory: ≈ 24 against 32–60 µs per readout, measured).

    Returns:
        ``(coils, readouts, samples)`` complex64 (``out`` when given).
    """
    n_coils = block.shape[0]
    if whitening.shape != (n_coils, n_coils):
        raise ValueError(f"whitening matrix {whitening.shape} does not match {n_coils} coils")
    if out is None:
        out = np.empty_like(block)
    with single_thread_blas():  # (readouts, coils, samples) views: numpy runs one product per readout
        np.matmul(whitening, block.transpose(1, 0, 2), out=out.transpose(1, 0, 2))
    return out


class OversamplingRemover:
    """Removes readout oversampling from blocks of readouts ``(coils, samples)``: the centre ``1/factor`` of the
    field of view along the readout, as :func:`recon.cine.noise.remove_readout_oversampling` (centred,
    orthonormal FFTs) defines it.

    For an even readout ``N`` and an even output ``n = N / factor`` the centred transforms need no shifts:
    with ``A = ifft_N(k)`` (plain, unnormalised DFT order), the result is ``fft_n([A[:n/2], A[N-n/2:]])``
    times ``1/sqrt(N·n)``.  These run as FFTW plans on one thread, kept per block size (the
    ``max_plans`` most recent).  Other lengths (odd ``N`` or ``n``) use the definition itself.
    """

    def __init__(self, n_samples: int, factor: int, max_plans: int = 8) -> None:
        if factor < 1 or n_samples % factor:
            raise ValueError(f"readout length {n_samples} not divisible by oversampling factor {factor}")
        self.n_in, self.n_out, self.factor = n_samples, n_samples // factor, factor
        self.fast = n_samples % 2 == 0 and self.n_out % 2 == 0
        self._scale = np.float32(1.0 / math.sqrt(self.n_in * self.n_out))
        self._plans: OrderedDict[int, tuple[pyfftw.FFTW, pyfftw.FFTW]] = OrderedDict()
        self._max_plans = max_plans
        self._lock = threading.Lock()  # a plan owns its buffers: one block at a time per remover

    def __call__(self, readouts: Sequence[Complex64]) -> Complex64:
        """``readouts``: ``(coils, n_in)`` complex64 k-space each, one shape → ``(readouts, coils, n_out)``
        complex64, a new array (stacked straight into the plan's input: one copy in, one scaled copy out)."""
        shape = readouts[0].shape
        if len(shape) != 2 or shape[1] != self.n_in:
            raise ValueError(f"expected (coils, {self.n_in}) readouts, got {shape}")
        n_readouts, n_coils = len(readouts), shape[0]
        if not self.fast:
            stacked = torch.from_numpy(np.stack(readouts))
            out = remove_readout_oversampling(stacked, self.factor, dim=-1)
            return np.ascontiguousarray(out.numpy(), dtype=np.complex64)
        with self._lock:
            inverse, forward = self._plan(n_readouts * n_coils)
            np.stack(readouts, out=inverse.input_array.reshape(n_readouts, n_coils, self.n_in))
            inverse.execute()
            full, half = inverse.output_array, forward.input_array
            h = self.n_out // 2
            half[:, :h] = full[:, :h]
            half[:, h:] = full[:, self.n_in - h :]
            forward.execute()
            out = np.multiply(forward.output_array, self._scale)
            return out.reshape(n_readouts, n_coils, self.n_out)

    def _plan(self, n_rows: int) -> tuple[pyfftw.FFTW, pyfftw.FFTW]:
        plans = self._plans.get(n_rows)
        if plans is not None:
            self._plans.move_to_end(n_rows)
            return plans
        buffers = [
            pyfftw.empty_aligned((n_rows, n), dtype=np.complex64)
            for n in (self.n_in, self.n_in, self.n_out, self.n_out)
        ]
        flags = ("FFTW_ESTIMATE",)
        plans = (
            pyfftw.FFTW(buffers[0], buffers[1], axes=(1,), direction="FFTW_BACKWARD", flags=flags, threads=1),
            pyfftw.FFTW(buffers[2], buffers[3], axes=(1,), direction="FFTW_FORWARD", flags=flags, threads=1),
        )
        self._plans[n_rows] = plans
        if len(self._plans) > self._max_plans:
            self._plans.popitem(last=False)
        return plans
