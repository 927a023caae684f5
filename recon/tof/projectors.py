"""The one dispatch point of the list-mode projectors: :func:`project_forward` and :func:`project_back`.

``kernel="auto"`` picks the kernel from the device of the input: CUDA tensors → the CUDA kernel
(:mod:`recon.tof.projector_cuda`), CPU tensors → the numba kernel (:mod:`recon.tof.projector_numba`);
``"torch"`` forces the reference (:mod:`recon.tof.projector_torch`), which runs on any device.  Every
kernel implements the same operator (see :mod:`recon.tof.projector_common`); the back projector is the
exact adjoint of the forward projector, TOF or not.

Units: LOR endpoints in scanner (x, y, z) mm; the image in any unit per voxel (e.g. Bq/ml); a projection
is the line integral (image unit · mm), for TOF the part of it that falls in the event's TOF bin.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from recon.common.linop import LinearOperator
from recon.tof.projector_common import KERNEL_CHOICES, GridLike, KernelChoice, check_lors, grid_arrays
from recon.tof.projector_torch import back_torch, forward_torch
from recon.tof.tof_kernel import TOFParameters
from recon.tof.tof_tables import DEGREE, tof_tables

log = logging.getLogger(__name__)


def resolve_kernel(kernel: KernelChoice | str, device: torch.device) -> str:
    """The concrete kernel name for ``kernel`` and the data's ``device`` (``auto`` → numba on CPU, cuda on GPU)."""
    if kernel not in KERNEL_CHOICES:
        raise ValueError(f"unknown projector kernel {kernel!r}; allowed: {', '.join(KERNEL_CHOICES)}")
    if kernel == "auto":
        return "cuda" if device.type == "cuda" else "numba"
    if kernel == "numba" and device.type != "cpu":
        raise ValueError(f"the numba kernel runs on CPU tensors, got device {device}; use 'auto' or 'cuda'")
    if kernel == "cuda" and device.type != "cuda":
        raise ValueError(f"the cuda kernel needs CUDA tensors, got device {device}; use 'auto' or 'numba'")
    return kernel


def _checked(
    lor_start_mm: torch.Tensor,
    lor_end_mm: torch.Tensor,
    tof: TOFParameters | None,
    tof_bin: torch.Tensor | None,
) -> torch.Tensor | None:
    check_lors(lor_start_mm, lor_end_mm, tof_bin)
    if tof is not None and tof_bin is None:
        raise ValueError("a TOF projection needs tof_bin (one bin per event)")
    if tof is None:
        return None
    assert tof_bin is not None
    return tof_bin


def numba_events_in_order(
    lor_start_mm: torch.Tensor,
    lor_end_mm: torch.Tensor,
    tof_bin: torch.Tensor | None,
    geometry: tuple,
    values: torch.Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The events for the numba kernels in :func:`recon.tof.projector_numba.locality_order`.

    Returns (order, starts, ends, bins, values): the permutation (n,) int64 and, permuted by it, the (n, 3)
    float64 scanner (x, y, z) mm endpoints, the (n,) int32 TOF bins (zeros without TOF) and the per-event
    ``values`` (zeros (n,) float32 when not given).  Event i of the permuted arrays is input event order[i].
    """
    from recon.tof.projector_numba import in_order, locality_order

    starts = np.ascontiguousarray(lor_start_mm.detach().cpu().numpy(), dtype=np.float64)
    ends = np.ascontiguousarray(lor_end_mm.detach().cpu().numpy(), dtype=np.float64)
    bins = (
        np.zeros(starts.shape[0], dtype=np.int32)
        if tof_bin is None
        else np.ascontiguousarray(tof_bin.detach().cpu().numpy(), dtype=np.int32)
    )
    vals = (
        np.zeros(starts.shape[0], dtype=np.float32)
        if values is None
        else np.ascontiguousarray(values.detach().cpu().numpy())
    )
    order = locality_order(starts, ends, bins, geometry)
    return (order, *in_order(order, starts, ends, bins, vals))


def numba_geometry(grid: GridLike, tof: TOFParameters | None) -> tuple:
    """The geometry tuple every numba kernel takes: (origin (z, y, x) mm, voxel size (z, y, x) mm, shape
    (z, y, x), TOF σ mm, TOF bin width mm, number of TOF bins, kernel truncation in σ, use TOF, then the
    three :func:`_weight_tables` arrays); without TOF the TOF entries are placeholders and use TOF is False."""
    shape, voxel, origin = grid_arrays(grid)
    sigma, delta, n_tof, n_sig = (
        (1.0, 1.0, 1, 3.0) if tof is None else (tof.sigma_mm, tof.bin_width_mm, tof.n_tof_bins, tof.n_sigmas)
    )
    return (
        np.asarray(origin, dtype=np.float64),
        np.asarray(voxel, dtype=np.float64),
        np.asarray(shape, dtype=np.int64),
        float(sigma),
        float(delta),
        int(n_tof),
        float(n_sig),
        tof is not None,
        *_weight_tables(tof),
    )


def _weight_tables(tof: TOFParameters | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(G coefficients, T coefficients, [G start, G 1/width, T start, T 1/width]) of
    :func:`recon.tof.tof_tables.tof_tables` for the numba kernels (placeholders without TOF)."""
    if tof is None:
        empty = np.zeros((1, DEGREE + 1))
        return empty, empty, np.array([0.0, 1.0, 0.0, 1.0])
    g, t = tof_tables(tof.sigma_mm, tof.bin_width_mm, tof.n_sigmas)
    return g.coefficients, t.coefficients, np.array([g.start, g.inv_width, t.start, t.inv_width])


def project_forward(
    image: torch.Tensor,
    lor_start_mm: torch.Tensor,
    lor_end_mm: torch.Tensor,
    grid: GridLike,
    tof: TOFParameters | None = None,
    tof_bin: torch.Tensor | None = None,
    kernel: KernelChoice | str = "auto",
) -> torch.Tensor:
    """Project ``image`` (z, y, x) along each event's LOR; TOF (into the event's bin) when ``tof`` is given.

    Args:
        image: real tensor of the grid's shape (z, y, x).
        lor_start_mm, lor_end_mm: (n_events, 3) crystal-1 and crystal-2 points, scanner (x, y, z) mm.
        grid: the image grid.
        tof: TOF kernel; ``None`` = non-TOF projection.
        tof_bin: (n_events,) integer TOF bins (needed with ``tof``).
        kernel: ``auto | torch | numba | cuda``.
    Returns:
        (n_events,) projections, dtype and device of ``image``.
    """
    shape, _, _ = grid_arrays(grid)
    if tuple(image.shape) != shape:
        raise ValueError(f"image has shape {tuple(image.shape)}, grid expects {shape}")
    bins = _checked(lor_start_mm, lor_end_mm, tof, tof_bin)
    name = resolve_kernel(kernel, image.device)
    if name == "torch":
        return forward_torch(
            image,
            lor_start_mm.to(image.device),
            lor_end_mm.to(image.device),
            grid,
            tof,
            None if bins is None else bins.to(image.device),
        )
    if name == "cuda":
        from recon.tof.projector_cuda import forward_cuda

        return forward_cuda(image, lor_start_mm, lor_end_mm, grid, tof, bins)
    from recon.tof.projector_numba import forward_kernel

    geometry = numba_geometry(grid, tof)
    order, starts, ends, tof_bins, _ = numba_events_in_order(lor_start_mm, lor_end_mm, bins, geometry)
    img = image.detach().numpy()
    img_zyx = np.ascontiguousarray(img).reshape(-1)
    img_zxy = np.ascontiguousarray(img.transpose(0, 2, 1)).reshape(-1)
    sorted_out = np.zeros(starts.shape[0], dtype=img.dtype)
    forward_kernel(img_zyx, img_zxy, starts, ends, tof_bins, geometry, sorted_out)
    out = np.empty_like(sorted_out)
    out[order] = sorted_out
    return torch.from_numpy(out)


def project_back(
    values: torch.Tensor,
    lor_start_mm: torch.Tensor,
    lor_end_mm: torch.Tensor,
    grid: GridLike,
    tof: TOFParameters | None = None,
    tof_bin: torch.Tensor | None = None,
    kernel: KernelChoice | str = "auto",
) -> torch.Tensor:
    """Adjoint of :func:`project_forward`: Σ_e values[e]·(weights of event e), an image (z, y, x).

    Same arguments as :func:`project_forward`, with ``values`` (n_events,) in place of the image; the
    result has the dtype and device of ``values``.
    """
    shape, _, _ = grid_arrays(grid)
    bins = _checked(lor_start_mm, lor_end_mm, tof, tof_bin)
    if tuple(values.shape) != (lor_start_mm.shape[0],):
        raise ValueError(f"values must have shape ({lor_start_mm.shape[0]},), got {tuple(values.shape)}")
    name = resolve_kernel(kernel, values.device)
    if name == "torch":
        return back_torch(
            values,
            lor_start_mm.to(values.device),
            lor_end_mm.to(values.device),
            grid,
            tof,
            None if bins is None else bins.to(values.device),
        )
    if name == "cuda":
        from recon.tof.projector_cuda import back_cuda

        return back_cuda(values, lor_start_mm, lor_end_mm, grid, tof, bins)
    import numba

    from recon.tof.projector_numba import back_kernel, sum_parts

    geometry = numba_geometry(grid, tof)
    _, starts, ends, tof_bins, vals = numba_events_in_order(lor_start_mm, lor_end_mm, bins, geometry, values)
    n_parts = max(1, min(numba.get_num_threads(), vals.shape[0]))
    n_voxels = shape[0] * shape[1] * shape[2]
    partial_zyx = np.zeros((n_parts, n_voxels), dtype=vals.dtype)
    partial_zxy = np.zeros((n_parts, n_voxels), dtype=vals.dtype)
    back_kernel(vals, starts, ends, tof_bins, geometry, partial_zyx, partial_zxy)
    return torch.from_numpy(sum_parts(partial_zyx, partial_zxy, geometry[2]))


class ListModeProjector(LinearOperator):
    """A (x) = :func:`project_forward` for a fixed list of events; Aᴴ = :func:`project_back`.

    Attributes:
        lor_start_mm, lor_end_mm: (n_events, 3) float32 endpoints, scanner (x, y, z) mm.
        tof_bin: (n_events,) int16 bins or ``None`` (non-TOF).
    """

    lor_start_mm: torch.Tensor
    lor_end_mm: torch.Tensor
    tof_bin: torch.Tensor | None

    def __init__(
        self,
        lor_start_mm: torch.Tensor,
        lor_end_mm: torch.Tensor,
        grid: GridLike,
        tof: TOFParameters | None = None,
        tof_bin: torch.Tensor | None = None,
        kernel: KernelChoice | str = "auto",
    ) -> None:
        super().__init__()
        _checked(lor_start_mm, lor_end_mm, tof, tof_bin)
        self.grid = grid
        self.tof = tof
        self.kernel = kernel
        self.register_buffer("lor_start_mm", lor_start_mm)
        self.register_buffer("lor_end_mm", lor_end_mm)
        self.register_buffer("tof_bin", tof_bin if tof is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return project_forward(
            x, self.lor_start_mm, self.lor_end_mm, self.grid, self.tof, self.tof_bin, self.kernel
        )

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return project_back(
            y, self.lor_start_mm, self.lor_end_mm, self.grid, self.tof, self.tof_bin, self.kernel
        )
