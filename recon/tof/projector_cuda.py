"""CUDA Joseph projectors (numba-cuda), one GPU thread per event.

The per-event geometry and TOF weights are the numba CPU kernel's own ``@njit`` helpers, compiled for the
GPU by numba (so all kernels share one implementation of the formulas); one device function walks an
event's planes for both kernels, the back kernel adding with ``cuda.atomic.add``.  The TOF weight is the
erf formula per sample (the CPU kernel's table form needs a scratch array per event).
Imported lazily by :mod:`recon.tof.projectors` when a CUDA tensor arrives (no CUDA probing at import).
"""

from __future__ import annotations

import contextlib
import math
import warnings

import torch

with warnings.catch_warnings():
    # numba-cuda's import-time datetime table trips a numpy ≥ 2.5 DeprecationWarning (third-party, harmless)
    warnings.simplefilter("ignore", DeprecationWarning)
    from numba import cuda

    with contextlib.suppress(ImportError):  # imported lazily at the first compile otherwise
        import numba.cuda.np.npdatetime_helpers  # noqa: F401


from recon.tof.projector_common import GridLike, grid_arrays
from recon.tof.projector_numba import _geometry, _plane_range, _tof_t_range, _tof_weight
from recon.tof.tof_kernel import TOFParameters

_THREADS_PER_BLOCK = 256
_LOW_OCCUPANCY = r".*under-utilization due to low occupancy"


@cuda.jit(device=True)
def _event_cuda(
    image_zyx,
    image_zxy,
    p1,
    p2,
    b,
    origin,
    voxel,
    shape,
    sigma,
    delta,
    n_tof,
    n_sigmas,
    use_tof,
    value,
    adjoint,
):  # type: ignore[no-untyped-def]  # pragma: no cover
    """One event on the GPU: the line integral (forward) or, with ``adjoint``, ``value``·weights added with
    atomics.  The planes, weights and taps of :func:`recon.tof.projector_numba._event_line`, with the TOF
    weight from the erf formula per sample (no scratch array)."""
    q, layout, length, t_lo, t_hi = _geometry(p1, p2, origin, voxel, shape)
    image = image_zxy if layout == 1 else image_zyx
    qa, da, na, sa, qb, db, nb, sb, qc, dc, nc, sc = q
    k = n_tof // 2
    window = 0.0
    if use_tof:
        tt_lo, tt_hi, window = _tof_t_range(b, length, sigma, delta, k, n_sigmas)
        t_lo = max(t_lo, tt_lo)
        t_hi = min(t_hi, tt_hi)
    k_min, k_max = _plane_range(qa, da, t_lo, t_hi, na)
    step = length / abs(da)
    acc = 0.0
    for kk in range(k_min, k_max + 1):
        t = (kk - qa) / da
        if t < 0.0 or t > 1.0:
            continue
        w = step
        if use_tof:
            w *= _tof_weight((t - 0.5) * length, b, sigma, delta, k, window)
            if w == 0.0:
                continue
        ub = qb + t * db
        uc = qc + t * dc
        fi = math.floor(ub)
        fj = math.floor(uc)
        fb = ub - fi
        fc = uc - fj
        i0 = int(fi)
        j0 = int(fj)
        base = kk * sa + i0 * sb + j0 * sc
        in_i0, in_i1 = 0 <= i0 < nb, 0 <= i0 + 1 < nb
        in_j0, in_j1 = 0 <= j0 < nc, 0 <= j0 + 1 < nc
        w00, w10 = w * (1.0 - fb) * (1.0 - fc), w * fb * (1.0 - fc)
        w01, w11 = w * (1.0 - fb) * fc, w * fb * fc
        if adjoint:
            if in_i0 and in_j0:
                cuda.atomic.add(image, base, value * w00)  # type: ignore[call-arg]
            if in_i1 and in_j0:
                cuda.atomic.add(image, base + sb, value * w10)  # type: ignore[call-arg]
            if in_i0 and in_j1:
                cuda.atomic.add(image, base + sc, value * w01)  # type: ignore[call-arg]
            if in_i1 and in_j1:
                cuda.atomic.add(image, base + sb + sc, value * w11)  # type: ignore[call-arg]
        else:
            if in_i0 and in_j0:
                acc += image[base] * w00
            if in_i1 and in_j0:
                acc += image[base + sb] * w10
            if in_i0 and in_j1:
                acc += image[base + sc] * w01
            if in_i1 and in_j1:
                acc += image[base + sb + sc] * w11
    return acc


@cuda.jit
def _forward_kernel(
    image_zyx,
    image_zxy,
    starts,
    ends,
    bins,
    origin,
    voxel,
    shape,
    sigma,
    delta,
    n_tof,
    n_sigmas,
    use_tof,
    out,
):  # type: ignore[no-untyped-def]  # pragma: no cover
    e = cuda.grid(1)  # type: ignore[call-arg,var-annotated]
    if e < starts.shape[0]:
        out[e] = _event_cuda(
            image_zyx, image_zxy, starts[e], ends[e], bins[e], origin, voxel, shape, sigma, delta, n_tof,
            n_sigmas, use_tof, 0.0, False,
        )  # fmt: skip


@cuda.jit
def _back_kernel(
    values,
    starts,
    ends,
    bins,
    origin,
    voxel,
    shape,
    sigma,
    delta,
    n_tof,
    n_sigmas,
    use_tof,
    image_zyx,
    image_zxy,
):  # type: ignore[no-untyped-def]  # pragma: no cover
    e = cuda.grid(1)  # type: ignore[call-arg,var-annotated]
    if e < starts.shape[0] and values[e] != 0.0:
        _event_cuda(
            image_zyx, image_zxy, starts[e], ends[e], bins[e], origin, voxel, shape, sigma, delta, n_tof,
            n_sigmas, use_tof, values[e], True,
        )  # fmt: skip


def _args(
    lor_start_mm: torch.Tensor,
    lor_end_mm: torch.Tensor,
    grid: GridLike,
    tof: TOFParameters | None,
    tof_bin: torch.Tensor | None,
    device: torch.device,
) -> tuple:
    shape, voxel, origin = grid_arrays(grid)
    starts = lor_start_mm.to(device=device, dtype=torch.float64).contiguous()
    ends = lor_end_mm.to(device=device, dtype=torch.float64).contiguous()
    n = starts.shape[0]
    bins = (
        torch.zeros(n, dtype=torch.int32, device=device)
        if tof_bin is None
        else tof_bin.to(device=device, dtype=torch.int32).contiguous()
    )
    sigma, delta, n_tof, n_sig = (
        (1.0, 1.0, 1, 3.0) if tof is None else (tof.sigma_mm, tof.bin_width_mm, tof.n_tof_bins, tof.n_sigmas)
    )
    consts = [
        torch.tensor(v, dtype=dt, device=device)
        for v, dt in ((origin, torch.float64), (voxel, torch.float64), (shape, torch.int64))
    ]
    arrays = [cuda.as_cuda_array(a) for a in (starts, ends, bins, *consts)]
    return (*arrays, float(sigma), float(delta), int(n_tof), float(n_sig), tof is not None), (
        starts,
        ends,
        bins,
        consts,
    )


def _blocks(n: int) -> int:
    return max(1, math.ceil(n / _THREADS_PER_BLOCK))


def forward_cuda(
    image: torch.Tensor,
    lor_start_mm: torch.Tensor,
    lor_end_mm: torch.Tensor,
    grid: GridLike,
    tof: TOFParameters | None = None,
    tof_bin: torch.Tensor | None = None,
) -> torch.Tensor:
    """As :func:`recon.tof.projectors.project_forward` on a CUDA image."""
    args, keep = _args(lor_start_mm, lor_end_mm, grid, tof, tof_bin, image.device)
    img_zyx = image.detach().contiguous()
    img_zxy = img_zyx.transpose(1, 2).contiguous()
    out = torch.zeros(lor_start_mm.shape[0], dtype=image.dtype, device=image.device)
    if out.numel():
        torch.cuda.synchronize(image.device)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_LOW_OCCUPANCY)  # small (test) launches
            _forward_kernel[_blocks(out.numel()), _THREADS_PER_BLOCK](
                cuda.as_cuda_array(img_zyx.reshape(-1)),
                cuda.as_cuda_array(img_zxy.reshape(-1)),
                *args,
                cuda.as_cuda_array(out),
            )
        cuda.synchronize()
    del keep
    return out


def back_cuda(
    values: torch.Tensor,
    lor_start_mm: torch.Tensor,
    lor_end_mm: torch.Tensor,
    grid: GridLike,
    tof: TOFParameters | None = None,
    tof_bin: torch.Tensor | None = None,
) -> torch.Tensor:
    """As :func:`recon.tof.projectors.project_back` with CUDA ``values``."""
    shape, _, _ = grid_arrays(grid)
    args, keep = _args(lor_start_mm, lor_end_mm, grid, tof, tof_bin, values.device)
    vals = values.detach().contiguous()
    zyx = torch.zeros(shape, dtype=values.dtype, device=values.device)
    zxy = torch.zeros((shape[0], shape[2], shape[1]), dtype=values.dtype, device=values.device)
    if vals.numel():
        torch.cuda.synchronize(values.device)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_LOW_OCCUPANCY)
            _back_kernel[_blocks(vals.numel()), _THREADS_PER_BLOCK](
                cuda.as_cuda_array(vals),
                *args,
                cuda.as_cuda_array(zyx.reshape(-1)),
                cuda.as_cuda_array(zxy.reshape(-1)),
            )
        cuda.synchronize()
    del keep
    return zyx + zxy.transpose(1, 2)
