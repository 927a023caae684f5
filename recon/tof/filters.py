"""Gaussian image filters with the width given as a FWHM in mm (separable, zero-padded at the edges)."""

from __future__ import annotations

import math

import torch

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def gaussian_kernel_1d(sigma_voxels: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Normalised 1-D Gaussian sampled at integer offsets, truncated at ±4σ (odd length)."""
    radius = max(1, math.ceil(4.0 * sigma_voxels))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    kernel = torch.exp(-0.5 * (offsets / sigma_voxels) ** 2)
    return (kernel / kernel.sum()).to(dtype)


def gaussian_filter_fwhm(
    image: torch.Tensor, voxel_size_mm: tuple[float, float, float], fwhm_mm: float
) -> torch.Tensor:
    """Blur a (z, y, x) image by an isotropic Gaussian of ``fwhm_mm`` (0 = unchanged copy)."""
    if fwhm_mm < 0:
        raise ValueError(f"fwhm_mm must be >= 0, got {fwhm_mm}")
    out = image.clone()
    if fwhm_mm == 0:
        return out
    for axis, voxel in enumerate(voxel_size_mm):
        sigma = fwhm_mm / FWHM_PER_SIGMA / voxel
        if sigma < 1e-3:
            continue
        kernel = gaussian_kernel_1d(sigma, image.dtype, image.device)
        moved = out.movedim(axis, -1)
        flat = moved.reshape(-1, 1, moved.shape[-1])
        pad = kernel.numel() // 2
        filtered = torch.nn.functional.conv1d(flat, kernel.view(1, 1, -1), padding=pad)
        out = filtered.reshape(moved.shape).movedim(-1, axis)
    return out
