"""Reference Joseph projectors in plain torch (any device): slow, simple, and the yardstick for the others.

Every event is sampled at every voxel plane of its dominant axis (those outside the segment or the
TOF window get weight 0), so this path shares none of the fast kernels' plane-range shortcuts.  Events are
processed in chunks so that memory stays bounded.  See :mod:`recon.tof.projector_common` for the method.
"""

from __future__ import annotations

import torch

from recon.tof.projector_common import GridLike, grid_arrays, index_coordinates
from recon.tof.tof_kernel import TOFParameters, tof_bin_weights

_MAX_SAMPLES_PER_CHUNK = 1 << 21


def _interpolation_taps(
    q1: torch.Tensor,
    q2: torch.Tensor,
    axis: int,
    shape: tuple[int, int, int],
    voxel: tuple[float, float, float],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flat voxel indices (E, P, 4), tap weights·step (E, P, 4) and s_mm (E, P) of events with dominant ``axis``."""
    n_planes = shape[axis]
    strides = (shape[1] * shape[2], shape[2], 1)
    delta = q2 - q1
    length_mm = torch.linalg.vector_norm(
        delta * torch.tensor(voxel, dtype=delta.dtype, device=delta.device), dim=1
    )
    planes = torch.arange(n_planes, dtype=torch.float64, device=q1.device)
    t = (planes[None, :] - q1[:, axis, None]) / delta[:, axis, None]
    on_segment = (t >= 0) & (t <= 1)
    step_mm = length_mm / delta[:, axis].abs()
    b, c = (ax for ax in range(3) if ax != axis)
    u_b = q1[:, b, None] + t * delta[:, b, None]
    u_c = q1[:, c, None] + t * delta[:, c, None]
    i0 = torch.floor(u_b)
    j0 = torch.floor(u_c)
    fb = u_b - i0
    fc = u_c - j0
    k_idx = planes.to(torch.int64)[None, :].expand_as(t)
    indices, weights = [], []
    for di, dj in ((0, 0), (1, 0), (0, 1), (1, 1)):
        ii = i0.to(torch.int64) + di
        jj = j0.to(torch.int64) + dj
        wb = fb if di else 1.0 - fb
        wc = fc if dj else 1.0 - fc
        inside = on_segment & (ii >= 0) & (ii < shape[b]) & (jj >= 0) & (jj < shape[c])
        flat = (
            k_idx * strides[axis]
            + ii.clamp(0, shape[b] - 1) * strides[b]
            + jj.clamp(0, shape[c] - 1) * strides[c]
        )
        indices.append(torch.where(inside, flat, torch.zeros_like(flat)))
        weights.append(torch.where(inside, wb * wc * step_mm[:, None], torch.zeros_like(wb)))
    s_mm = (t - 0.5) * length_mm[:, None]
    return torch.stack(indices, dim=-1), torch.stack(weights, dim=-1), s_mm


def _chunks(n_events: int, n_planes: int) -> list[slice]:
    size = max(1, _MAX_SAMPLES_PER_CHUNK // max(1, 4 * n_planes))
    return [slice(i, min(i + size, n_events)) for i in range(0, n_events, size)]


def _groups(q1: torch.Tensor, q2: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
    """Event indices grouped by dominant axis."""
    dominant = torch.argmax((q2 - q1).abs(), dim=1)
    return [(axis, torch.nonzero(dominant == axis).flatten()) for axis in range(3)]


def _weights(
    q1: torch.Tensor,
    q2: torch.Tensor,
    axis: int,
    shape: tuple[int, int, int],
    voxel: tuple[float, float, float],
    tof: TOFParameters | None,
    tof_bin: torch.Tensor | None,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    idx, w, s_mm = _interpolation_taps(q1, q2, axis, shape, voxel)
    if tof is not None:
        assert tof_bin is not None
        w = w * tof_bin_weights(s_mm, tof_bin[:, None], tof)[..., None]
    return idx, w.to(dtype)


def forward_torch(
    image: torch.Tensor,
    lor_start_mm: torch.Tensor,
    lor_end_mm: torch.Tensor,
    grid: GridLike,
    tof: TOFParameters | None = None,
    tof_bin: torch.Tensor | None = None,
) -> torch.Tensor:
    """Projection of ``image`` (z, y, x) along each LOR (non-TOF, or into the event's TOF bin): shape (n_events,)."""
    shape, voxel, _ = grid_arrays(grid)
    q1 = index_coordinates(lor_start_mm, grid)
    q2 = index_coordinates(lor_end_mm, grid)
    flat = image.reshape(-1)
    out = torch.zeros(q1.shape[0], dtype=image.dtype, device=image.device)
    for axis, events in _groups(q1, q2):
        for sl in _chunks(events.numel(), shape[axis]):
            ev = events[sl]
            bins = None if tof_bin is None else tof_bin[ev]
            idx, w = _weights(q1[ev], q2[ev], axis, shape, voxel, tof, bins, image.dtype)
            out[ev] = (flat[idx] * w).sum(dim=(1, 2))
    return out


def back_torch(
    values: torch.Tensor,
    lor_start_mm: torch.Tensor,
    lor_end_mm: torch.Tensor,
    grid: GridLike,
    tof: TOFParameters | None = None,
    tof_bin: torch.Tensor | None = None,
) -> torch.Tensor:
    """Adjoint of :func:`forward_torch`: Σ_events value·(LOR weights), an image (z, y, x)."""
    shape, voxel, _ = grid_arrays(grid)
    q1 = index_coordinates(lor_start_mm, grid)
    q2 = index_coordinates(lor_end_mm, grid)
    flat = torch.zeros(shape[0] * shape[1] * shape[2], dtype=values.dtype, device=values.device)
    for axis, events in _groups(q1, q2):
        for sl in _chunks(events.numel(), shape[axis]):
            ev = events[sl]
            bins = None if tof_bin is None else tof_bin[ev]
            idx, w = _weights(q1[ev], q2[ev], axis, shape, voxel, tof, bins, values.dtype)
            flat.index_add_(0, idx.reshape(-1), (w * values[ev, None, None]).reshape(-1))
    return flat.reshape(shape)
