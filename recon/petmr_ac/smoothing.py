"""Fast wide Gaussian smoothing: block-average, smooth the small array, interpolate back.

For a Gaussian of σ voxels, averaging blocks of f ≤ σ/2 voxels first changes the result by well under the
field-map tolerances it is used for (the block average is itself a narrow low-pass); it turns a 240-tap
filter on millions of voxels into a short filter on a small array.  Narrow kernels run directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage


def _block_factors(sigma_voxels: Sequence[float], shape: Sequence[int]) -> list[int]:
    return [max(1, min(int(s // 2), n // 2 or 1)) for s, n in zip(sigma_voxels, shape, strict=True)]


def _block_mean(x: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """Mean over blocks (padding the end by edge values to a multiple of the block size)."""
    pad = [(0, (-n) % f) for n, f in zip(x.shape, factors, strict=True)]
    if any(p[1] for p in pad):
        x = np.pad(x, pad, mode="edge")
    shape: list[int] = []
    for n, f in zip(x.shape, factors, strict=True):
        shape += [n // f, f]
    return x.reshape(shape).mean(axis=tuple(range(1, 2 * x.ndim, 2)))


def upsample_linear(x: np.ndarray, factors: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """Linear interpolation of block values (block centres) back to the full grid (3-D, float32)."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None]
    padded = [int(s) * int(f) for s, f in zip(x.shape, factors, strict=True)]
    up = torch.nn.functional.interpolate(t, size=padded, mode="trilinear", align_corners=False)[0, 0]
    return up[: shape[0], : shape[1], : shape[2]].numpy()


def gaussian_smooth(x: np.ndarray, sigma_voxels: Sequence[float]) -> np.ndarray:
    """Gaussian smoothing of a real 3-D array (mode ``nearest``), fast for wide kernels."""
    if x.ndim != 3:
        raise ValueError(f"gaussian_smooth expects a 3-D array, got shape {x.shape}")
    factors = _block_factors(sigma_voxels, x.shape)
    if all(f == 1 for f in factors):
        return ndimage.gaussian_filter(x, sigma_voxels, mode="nearest")
    small = _block_mean(np.asarray(x, dtype=np.float32), factors)
    reduced_sigma = [
        np.sqrt(max(s**2 - (f**2 - 1) / 12.0, 0.0)) / f for s, f in zip(sigma_voxels, factors, strict=True)
    ]
    small = ndimage.gaussian_filter(small, reduced_sigma, mode="nearest")
    return upsample_linear(small, factors, x.shape)


def robust_percentile(x: np.ndarray, q: float, max_samples: int = 262_144) -> float:
    """``np.percentile(x, q)`` estimated from at most ``max_samples`` evenly strided elements (a full
    partition of millions of voxels costs more than the rest of a threshold step)."""
    flat = np.asarray(x).reshape(-1)
    if flat.size == 0:
        return 0.0
    step = max(1, flat.size // max_samples)
    return float(np.percentile(flat[::step], q))
