"""Partial Fourier along ky: projection onto convex sets (POCS) with a low-resolution phase estimate.

Scanners skip the first lines of k-space (fraction 0.625–1 acquired).  With a smooth image phase φ the
missing half is the conjugate-symmetric counterpart of the acquired one; POCS alternates between the
phase constraint (x ← |x|·e^{iφ}, φ from the symmetric centre band) and data consistency (acquired lines
restored), starting from the zero-filled image.
"""

from __future__ import annotations

import torch

from recon.common.fft import fftc, ifftc


def acquired_extent(sampled: torch.Tensor) -> tuple[int, int]:
    """First and last sampled line of a ``(n_ky,)`` mask."""
    lines = torch.nonzero(sampled).flatten()
    if lines.numel() == 0:
        raise ValueError("no sampled line")
    return int(lines.min()), int(lines.max())


def is_partial_fourier(sampled: torch.Tensor, margin_lines: int = 2) -> bool:
    """Whether more lines are missing at one edge of ky than at the other (by more than ``margin_lines``)."""
    first, last = acquired_extent(sampled)
    return abs(first - (sampled.numel() - 1 - last)) > margin_lines


def pocs_partial_fourier(images: torch.Tensor, sampled: torch.Tensor, n_iterations: int = 5) -> torch.Tensor:
    """Complex images ``(..., ny, nx)`` whose k-space holds data only on the lines ``sampled (ny,)``.

    The acquired lines are kept exactly; the missing ky edge is filled from the phase-constrained image.
    """
    ny = images.shape[-2]
    first, last = acquired_extent(sampled)
    centre = ny // 2
    half = min(centre - first, last - centre)
    if half < 2:
        raise ValueError(f"no symmetric centre band to estimate the phase (first line {first}, last {last})")
    kspace = fftc(images)
    band = torch.zeros(ny, dtype=images.real.dtype, device=images.device)
    band[centre - half : centre + half + 1] = torch.hann_window(
        2 * half + 3, periodic=False, dtype=band.dtype, device=band.device
    )[1:-1]
    phase = torch.exp(1j * torch.angle(ifftc(kspace * band[:, None]))).to(images.dtype)
    keep = torch.zeros(ny, dtype=torch.bool, device=images.device)
    keep[first : last + 1] = True
    keep_mask = keep[:, None].to(images.real.dtype)
    x = images
    for _ in range(n_iterations):
        estimate = fftc(x.abs() * phase)
        x = ifftc(kspace * keep_mask + estimate * (1 - keep_mask))
    return x
