"""Prewhitening and readout-oversampling removal against closed-form expectations."""

from __future__ import annotations

import math

import torch

from recon.cine.noise import noise_covariance, prewhiten, remove_readout_oversampling, whitening_matrix
from recon.common.fft import fftc


def _correlated_noise(n_coils: int, n_samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mixing = torch.complex(
        torch.randn(n_coils, n_coils, generator=g), torch.randn(n_coils, n_coils, generator=g)
    )
    mixing = mixing.to(torch.complex128) + 3 * torch.eye(n_coils, dtype=torch.complex128)
    white = torch.complex(
        torch.randn(n_coils, n_samples, generator=g), torch.randn(n_coils, n_samples, generator=g)
    )
    white = white.to(torch.complex128) / math.sqrt(2)
    return mixing @ white, mixing @ mixing.conj().T


def test_covariance_matches_mixing_and_whitening_gives_identity() -> None:
    noise, true_cov = _correlated_noise(8, 200_000, seed=1)
    cov = noise_covariance(noise)
    assert torch.allclose(cov, true_cov, rtol=0, atol=0.03 * float(true_cov.abs().max()))
    w = whitening_matrix(cov)
    white = prewhiten(noise, w, coil_dim=0)
    assert torch.allclose(noise_covariance(white), torch.eye(8, dtype=cov.dtype), atol=1e-10)
    assert torch.allclose(w.triu(1), torch.zeros_like(w))  # lower triangular L⁻¹


def test_dwell_ratio_scales_the_noise_variance() -> None:
    noise, _ = _correlated_noise(4, 50_000, seed=2)
    cov = noise_covariance(noise)
    w_half = whitening_matrix(
        cov, dwell_ratio=0.5
    )  # imaging dwell twice the prescan dwell → half the variance
    white = prewhiten(noise * math.sqrt(0.5), w_half, coil_dim=0)
    assert torch.allclose(noise_covariance(white), torch.eye(4, dtype=cov.dtype), atol=1e-10)


def test_oversampling_removal_keeps_the_central_field_of_view() -> None:
    n = 64
    image = torch.zeros(3, 2 * n, dtype=torch.complex128)
    x = torch.arange(2 * n)
    image[:, n // 2 : n // 2 + n] = torch.exp(1j * 0.1 * x[n // 2 : n // 2 + n]).to(torch.complex128)
    image[:, :4] = 5.0  # outside the recon field of view: must be cut away
    out = remove_readout_oversampling(fftc(image, dims=(-1,)), factor=2)
    assert out.shape == (3, n)
    expected = fftc(image[:, n // 2 : n // 2 + n], dims=(-1,))
    assert torch.allclose(out, expected, atol=1e-10)


def test_oversampling_removal_keeps_white_noise_variance() -> None:
    g = torch.Generator().manual_seed(3)
    k = torch.complex(torch.randn(2000, 256, generator=g), torch.randn(2000, 256, generator=g)) / math.sqrt(2)
    out = remove_readout_oversampling(k, factor=2)
    assert abs(float(out.abs().pow(2).mean()) - 1.0) < 0.02
