"""Noise prewhitening from the noise prescan and readout-oversampling removal.

Whitening: with the coil noise covariance Ψ = L Lᴴ (Cholesky), the matrix W = L⁻¹ turns coil data with
noise covariance Ψ into data with identity noise covariance (per complex sample, E|n|² = 1).
"""

from __future__ import annotations

import math

import torch

from recon.common.fft import fftc, ifftc


def noise_covariance(noise: torch.Tensor) -> torch.Tensor:
    """Sample covariance Ψ = (1/S) Σ_s n_s n_sᴴ of zero-mean coil noise.

    Args:
        noise: ``(*other, coils, samples)`` complex noise samples (prescan readouts stacked in ``*other``).

    Returns:
        ``(coils, coils)`` complex Hermitian covariance, same dtype and device as ``noise``.
    """
    if not noise.is_complex() or noise.ndim < 2:
        raise ValueError(
            f"noise must be complex (*other, coils, samples), got {tuple(noise.shape)} {noise.dtype}"
        )
    n_coils = noise.shape[-2]
    flat = noise.movedim(-2, 0).reshape(n_coils, -1)
    if flat.shape[1] < n_coils:
        raise ValueError(f"need at least {n_coils} noise samples per coil, got {flat.shape[1]}")
    return (flat @ flat.conj().T) / flat.shape[1]


def whitening_matrix(covariance: torch.Tensor, dwell_ratio: float = 1.0) -> torch.Tensor:
    """W = L⁻¹ with L Lᴴ = Ψ·dwell_ratio (lower triangular, ``(coils, coils)``).

    Args:
        covariance: ``(coils, coils)`` Hermitian positive definite noise covariance from the prescan.
        dwell_ratio: noise-prescan dwell time / imaging dwell time; white-noise variance per sample
            scales with the receiver bandwidth, i.e. inversely with the dwell time.
    """
    if covariance.ndim != 2 or covariance.shape[0] != covariance.shape[1]:
        raise ValueError(f"covariance must be square (coils, coils), got {tuple(covariance.shape)}")
    if dwell_ratio <= 0:
        raise ValueError(f"dwell_ratio must be > 0, got {dwell_ratio}")
    hermitian = 0.5 * (covariance + covariance.conj().T) * dwell_ratio
    chol = torch.linalg.cholesky(hermitian)
    eye = torch.eye(chol.shape[0], dtype=chol.dtype, device=chol.device)
    return torch.linalg.solve_triangular(chol, eye, upper=False)


def prewhiten(data: torch.Tensor, whitening: torch.Tensor, coil_dim: int = -2) -> torch.Tensor:
    """Apply ``whitening`` (``(coils, coils)``) along ``coil_dim`` of ``data``: d'_c = Σ_c' W[c, c'] d_c'."""
    moved = data.movedim(coil_dim, -1)
    if moved.shape[-1] != whitening.shape[1]:
        raise ValueError(f"data has {moved.shape[-1]} coils, whitening matrix {whitening.shape[1]}")
    return (moved @ whitening.T.to(moved.dtype)).movedim(-1, coil_dim)


def remove_readout_oversampling(kspace: torch.Tensor, factor: int = 2, dim: int = -1) -> torch.Tensor:
    """Crop the central ``1/factor`` of the field of view along the readout ``dim`` (k0).

    Inverse FFT along the readout, keep the central ``n // factor`` image samples, FFT back.  With the
    orthonormal FFTs white noise keeps its variance per sample (whitened data stay whitened).
    """
    if factor < 1:
        raise ValueError(f"oversampling factor must be ≥ 1, got {factor}")
    n = kspace.shape[dim]
    if factor == 1:
        return kspace
    if n % factor:
        raise ValueError(f"readout length {n} not divisible by oversampling factor {factor}")
    n_out = n // factor
    image = ifftc(kspace, dims=(dim,))
    start = n // 2 - n_out // 2
    cropped = image.narrow(dim, start, n_out)
    return fftc(cropped, dims=(dim,))


def kspace_noise_variance(kspace: torch.Tensor, sampled: torch.Tensor, n_edge_columns: int = 8) -> float:
    """Noise variance E|n|² per complex k-space sample, estimated from the acquired data itself.

    The outermost ``n_edge_columns`` k0 columns on both sides of every acquired line hold almost no signal
    once the readout oversampling is removed; for complex Gaussian noise |n|² is exponential, so the median
    of |k|² there divided by ln 2 estimates σ² robustly (the few signal outliers do not move a median).
    Needed because binning interpolates readouts, which changes the variance the prewhitening set to 1.

    Args:
        kspace: ``(phases, coils, ky, kx)`` binned k-space (zero where not sampled).
        sampled: ``(phases, ky)`` bool mask of the acquired lines.
        n_edge_columns: k0 columns used on each side.
    """
    n_kx = kspace.shape[-1]
    if not 0 < 2 * n_edge_columns <= n_kx:
        raise ValueError(f"n_edge_columns={n_edge_columns} does not fit {n_kx} k0 samples")
    edges = torch.cat([kspace[..., :n_edge_columns], kspace[..., n_kx - n_edge_columns :]], dim=-1)
    held = sampled.to(kspace.device)[:, None, :, None].expand(-1, kspace.shape[1], -1, edges.shape[-1])
    values = edges[held].abs().pow(2)
    if values.numel() == 0:
        raise ValueError("no acquired line to estimate the noise from")
    return float(values.median()) / math.log(2.0)
