"""Velocity-aliasing correction (phase unwrapping) for phase-contrast series.

A velocity beyond ±VENC wraps around by a multiple of ``2 · VENC``.  Two complementary corrections:

* **temporal** (Xiang 1995 style): along the cardiac cycle, each pixel's velocity changes by less than
  VENC between neighbouring frames, so wrapped frame-to-frame differences are summed; the pixel's curve
  is then shifted by a multiple of ``2 · VENC`` so that its temporal median (diastole, near-zero flow for
  most of the cycle) lies in ``[−VENC, VENC)``.
* **spatial**: within each frame the velocity field is smooth, so a breadth-first flood fill from the
  lowest-|v| pixel of each connected region of the signal mask unwraps every pixel against the mean of
  its already-unwrapped neighbours (from the still vessel wall inwards to the aliased core).

Pixels outside ``mask`` (noise) are returned unchanged.
"""

from __future__ import annotations

from typing import Literal

import numba
import numpy as np
import torch
from scipy import ndimage

UnwrapMethod = Literal["none", "temporal", "spatial", "temporal_spatial"]


def wrap_velocity(velocity_cm_per_s: torch.Tensor, venc_cm_per_s: float) -> torch.Tensor:
    """Alias a velocity into ``[−VENC, VENC)`` as the scanner would (for tests and simulations)."""
    period = 2.0 * venc_cm_per_s
    return torch.remainder(velocity_cm_per_s + venc_cm_per_s, period) - venc_cm_per_s


def unwrap_temporal(
    velocity_cm_per_s: torch.Tensor, venc_cm_per_s: float, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Temporal unwrapping of ``(phases, y, x)`` velocity maps; ``mask`` ``(y, x)`` limits the pixels changed."""
    if velocity_cm_per_s.ndim != 3:
        raise ValueError(f"velocity must be (phases, y, x), got {tuple(velocity_cm_per_s.shape)}")
    period = 2.0 * venc_cm_per_s
    diff = torch.diff(velocity_cm_per_s, dim=0)
    diff = diff - period * torch.round(diff / period)
    unwrapped = torch.cat([velocity_cm_per_s[:1], velocity_cm_per_s[:1] + torch.cumsum(diff, dim=0)], dim=0)
    median = unwrapped.median(dim=0).values
    unwrapped = unwrapped - period * torch.floor((median + venc_cm_per_s) / period)
    if mask is None:
        return unwrapped
    return torch.where(mask, unwrapped, velocity_cm_per_s)


@numba.njit(cache=False)
def _flood_unwrap(
    values: np.ndarray, labels: np.ndarray, seeds: np.ndarray, period: float
) -> np.ndarray:  # pragma: no cover - jit
    ny, nx = values.shape
    out = values.copy()
    done = np.zeros((ny, nx), dtype=np.bool_)
    queue = np.empty(ny * nx, dtype=np.int64)
    for s in range(seeds.shape[0]):
        head, tail = 0, 0
        start = seeds[s]
        done[start // nx, start % nx] = True
        queue[tail] = start
        tail += 1
        while head < tail:
            p = queue[head]
            head += 1
            py, px = p // nx, p % nx
            for dy in range(-1, 2):
                for dx in range(-1, 2):
                    qy, qx = py + dy, px + dx
                    if qy < 0 or qy >= ny or qx < 0 or qx >= nx or done[qy, qx] or labels[qy, qx] == 0:
                        continue
                    total, count = 0.0, 0
                    for ey in range(-1, 2):
                        for ex in range(-1, 2):
                            ry, rx = qy + ey, qx + ex
                            if 0 <= ry < ny and 0 <= rx < nx and done[ry, rx] and labels[ry, rx] != 0:
                                total += out[ry, rx]
                                count += 1
                    reference = total / count
                    out[qy, qx] = values[qy, qx] + period * np.round((reference - values[qy, qx]) / period)
                    done[qy, qx] = True
                    queue[tail] = qy * nx + qx
                    tail += 1
    return out


def _unwrap_frame_spatial(frame: np.ndarray, labels: np.ndarray, n_regions: int, period: float) -> np.ndarray:
    seeds = np.empty(n_regions, dtype=np.int64)
    magnitude_order = np.abs(frame)
    for region in range(1, n_regions + 1):
        inside = np.flatnonzero(labels.reshape(-1) == region)
        seeds[region - 1] = inside[np.argmin(magnitude_order.reshape(-1)[inside])]
    return _flood_unwrap(frame, labels, seeds, period)


def unwrap_spatial(velocity_cm_per_s: torch.Tensor, venc_cm_per_s: float, mask: torch.Tensor) -> torch.Tensor:
    """Spatial unwrapping of ``(..., y, x)`` velocity maps inside ``mask`` ``(y, x)``, frame by frame.

    Each 8-connected region of ``mask`` is filled from its lowest-|v| pixel of the frame; the region is
    assumed to contain non-aliased pixels (the vessel wall and surrounding static tissue).
    """
    if mask.shape != velocity_cm_per_s.shape[-2:]:
        raise ValueError(f"mask {tuple(mask.shape)} does not match velocity {tuple(velocity_cm_per_s.shape)}")
    labels, n_regions = ndimage.label(mask.cpu().numpy(), structure=np.ones((3, 3), dtype=bool))
    labels = labels.astype(np.int32)
    frames = velocity_cm_per_s.detach().cpu().to(torch.float64).numpy().reshape(-1, *mask.shape)
    out = (
        np.stack([_unwrap_frame_spatial(f, labels, n_regions, 2.0 * venc_cm_per_s) for f in frames])
        if n_regions
        else frames
    )
    result = torch.from_numpy(out.reshape(velocity_cm_per_s.shape)).to(
        velocity_cm_per_s.device, velocity_cm_per_s.dtype
    )
    return torch.where(mask, result, velocity_cm_per_s)


def unwrap_velocity(
    velocity_cm_per_s: torch.Tensor,
    venc_cm_per_s: float,
    mask: torch.Tensor,
    method: UnwrapMethod = "temporal",
) -> torch.Tensor:
    """Apply the chosen aliasing correction to ``(phases, y, x)`` maps (spatial first, then temporal)."""
    if method not in ("none", "temporal", "spatial", "temporal_spatial"):
        raise ValueError(
            f"unknown unwrap method {method!r}; allowed: none, temporal, spatial, temporal_spatial"
        )
    out = velocity_cm_per_s
    if method in ("spatial", "temporal_spatial"):
        out = unwrap_spatial(out, venc_cm_per_s, mask)
    if method in ("temporal", "temporal_spatial"):
        out = unwrap_temporal(out, venc_cm_per_s, mask)
    return out
