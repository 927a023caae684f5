"""What every projector kernel shares: the image-grid protocol, input checks and the LOR parametrisation.

Joseph's method, as implemented by every kernel here (torch reference, numba CPU, CUDA):

* LOR endpoints p₁ (crystal 1) and p₂ (crystal 2) are given in scanner coordinates (x, y, z) mm; they are
  turned into continuous voxel-index coordinates q = (p - origin)/voxel_size on the image axes (z, y, x),
  so voxel centres sit at integer q.
* The dominant axis a is the one with the largest |q₂ - q₁|.  For every voxel plane k of that axis crossed
  by the segment (t = (k - q₁ₐ)/(q₂ₐ - q₁ₐ) ∈ [0, 1]) the image is bilinearly interpolated in the other two
  axes (zero outside the image) and weighted by the step length ‖p₂ - p₁‖/|q₂ₐ - q₁ₐ| (mm).  So a projection
  is a line integral in (image unit)·mm.
* The sample's signed LOR position, from the midpoint toward crystal 2, is s = (t - ½)·‖p₂ - p₁‖ (mm); TOF
  projectors multiply each sample by :func:`recon.tof.tof_kernel.tof_bin_weights` for the event's bin.

Geometry is computed in float64 in every kernel (the accumulation is in the image's dtype), so the
kernels take identical branch decisions and agree to the rounding of the image dtype.
"""

from __future__ import annotations

from typing import Literal, Protocol

import torch

KernelChoice = Literal["auto", "torch", "numba", "cuda"]
KERNEL_CHOICES: tuple[str, ...] = ("auto", "torch", "numba", "cuda")


class GridLike(Protocol):
    """The parts of :class:`recon.tof.geometry.ImageGrid` the projectors use (image axes (z, y, x))."""

    @property
    def shape_zyx(self) -> tuple[int, int, int]: ...

    @property
    def voxel_size_mm(self) -> tuple[float, float, float]: ...

    @property
    def origin_mm(self) -> tuple[float, float, float]: ...


def grid_arrays(
    grid: GridLike,
) -> tuple[tuple[int, int, int], tuple[float, float, float], tuple[float, float, float]]:
    """(shape, voxel size mm, origin mm), all as plain tuples in (z, y, x) order, checked."""
    shape = tuple(int(n) for n in grid.shape_zyx)
    voxel = tuple(float(v) for v in grid.voxel_size_mm)
    origin = tuple(float(o) for o in grid.origin_mm)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"grid shape must be 3 positive ints (z, y, x), got {shape}")
    if len(voxel) != 3 or min(voxel) <= 0:
        raise ValueError(f"voxel sizes must be 3 positive floats (mm), got {voxel}")
    if len(origin) != 3:
        raise ValueError(f"origin must have 3 entries (z, y, x) mm, got {origin}")
    return shape, voxel, origin  # type: ignore[return-value]


def check_lors(lor_start_mm: torch.Tensor, lor_end_mm: torch.Tensor, tof_bin: torch.Tensor | None) -> int:
    """Check the event arrays and return the number of events."""
    if lor_start_mm.ndim != 2 or lor_start_mm.shape[1] != 3 or lor_start_mm.shape != lor_end_mm.shape:
        raise ValueError(
            f"LOR endpoints must both have shape (n_events, 3), got {tuple(lor_start_mm.shape)} "
            f"and {tuple(lor_end_mm.shape)}"
        )
    n_events = int(lor_start_mm.shape[0])
    if tof_bin is not None and tuple(tof_bin.shape) != (n_events,):
        raise ValueError(f"tof_bin must have shape ({n_events},), got {tuple(tof_bin.shape)}")
    if lor_start_mm.device != lor_end_mm.device:
        raise ValueError("LOR start and end points must be on the same device")
    return n_events


def index_coordinates(points_xyz_mm: torch.Tensor, grid: GridLike) -> torch.Tensor:
    """Scanner (x, y, z) mm → continuous voxel indices (z, y, x), float64, shape (n, 3)."""
    _, voxel, origin = grid_arrays(grid)
    zyx = points_xyz_mm.to(torch.float64).flip(-1)
    o = torch.tensor(origin, dtype=torch.float64, device=zyx.device)
    v = torch.tensor(voxel, dtype=torch.float64, device=zyx.device)
    return (zyx - o) / v
