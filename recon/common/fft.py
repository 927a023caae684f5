"""Centred, orthonormal FFTs on torch tensors, and the FFT as a linear operator.

"Centred" means the k-space centre (DC) sits at index ``n // 2`` on every transformed axis, as in
ISMRMRD raw data; "orthonormal" means ``ifft(fft(x)) == x`` and ``‖fft(x)‖ == ‖x‖``.

Backends
--------
* ``torch`` (``torch.fft``): every device; the only choice on CUDA.
* ``pyfftw`` (FFTW with cached plans, multi-threaded): CPU tensors only.  Measured on the 2-core
  development machine (``benchmarks/test_bench_fft.py``) it is the faster CPU backend for the
  2-D complex64 sizes of cardiac MR, so ``auto`` uses it for CPU tensors when it is installed.

Choose with :func:`set_cpu_backend` or the environment variable ``RECONSTREAM_FFT_BACKEND``
(``auto | torch | pyfftw``); both are read lazily, never at import.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from recon.common.linop import LinearOperator

CpuBackend = Literal["auto", "torch", "pyfftw"]
_cpu_backend: CpuBackend | None = None
# FFTW plans own their aligned input/output buffers, so a plan must never run in two threads at once:
# each thread keeps its own plan cache (plans of pipeline stages and server sessions never collide).
_thread_plans = threading.local()


def set_cpu_backend(backend: CpuBackend) -> None:
    """Select the FFT backend used for CPU tensors (``auto`` = pyfftw when installed)."""
    if backend not in ("auto", "torch", "pyfftw"):
        raise ValueError(f"unknown FFT backend {backend!r}; allowed: auto, torch, pyfftw")
    global _cpu_backend
    _cpu_backend = backend


def _cpu_backend_in_use() -> str:
    choice = _cpu_backend or os.environ.get("RECONSTREAM_FFT_BACKEND", "auto")
    if choice not in ("auto", "torch", "pyfftw"):
        raise ValueError(f"RECONSTREAM_FFT_BACKEND={choice!r}; allowed: auto, torch, pyfftw")
    if choice == "torch":
        return "torch"
    try:
        import pyfftw  # noqa: F401
    except ImportError:
        if choice == "pyfftw":
            raise
        return "torch"
    return "pyfftw"


def _n_threads() -> int:
    return max(1, torch.get_num_threads())


def _pyfftw_transform(x: np.ndarray, axes: tuple[int, ...], inverse: bool) -> np.ndarray:
    import pyfftw

    key = (x.shape, str(x.dtype), axes, inverse, _n_threads())
    plans: dict[tuple[object, ...], object] = _thread_plans.__dict__.setdefault("plans", {})
    plan = plans.get(key)
    if plan is None:
        a = pyfftw.empty_aligned(x.shape, dtype=x.dtype)
        b = pyfftw.empty_aligned(x.shape, dtype=x.dtype)
        direction = "FFTW_BACKWARD" if inverse else "FFTW_FORWARD"
        plan = pyfftw.FFTW(
            a,
            b,
            axes=axes,
            direction=direction,
            threads=key[-1],
            flags=("FFTW_ESTIMATE",),
            normalise_idft=False,
            ortho=True,
        )
        plans[key] = plan
    out = np.empty(x.shape, dtype=x.dtype)
    plan(x, out)  # type: ignore[operator]  # FFTW.__call__ copies x into its aligned input buffer
    return out


def _transform(x: torch.Tensor, dims: Sequence[int], inverse: bool) -> torch.Tensor:
    dims = tuple(d % x.ndim for d in dims)
    if not x.is_complex():
        x = x.to(torch.complex64 if x.dtype != torch.float64 else torch.complex128)
    x = torch.fft.ifftshift(x, dim=dims)
    if x.device.type == "cpu" and _cpu_backend_in_use() == "pyfftw" and not x.requires_grad:
        y = torch.from_numpy(_pyfftw_transform(np.ascontiguousarray(x.numpy()), dims, inverse))
    else:
        fn = torch.fft.ifftn if inverse else torch.fft.fftn
        y = fn(x, dim=dims, norm="ortho")
    return torch.fft.fftshift(y, dim=dims)


def fftc(x: torch.Tensor, dims: Sequence[int] = (-2, -1)) -> torch.Tensor:
    """Centred orthonormal forward FFT of ``x`` over ``dims`` (image → k-space); shape is kept."""
    return _transform(x, dims, inverse=False)


def ifftc(x: torch.Tensor, dims: Sequence[int] = (-2, -1)) -> torch.Tensor:
    """Centred orthonormal inverse FFT of ``x`` over ``dims`` (k-space → image); shape is kept."""
    return _transform(x, dims, inverse=True)


class FFTOperator(LinearOperator):
    """The centred orthonormal FFT over ``dims`` as a linear operator (unitary: its adjoint is its inverse)."""

    def __init__(self, dims: Sequence[int] = (-2, -1)) -> None:
        super().__init__()
        self.dims = tuple(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fftc(x, self.dims)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return ifftc(y, self.dims)
