"""Synthetic test data for the cine cores: a smooth-edged ellipse phantom on a 2× finer grid and smooth
complex coil maps (Gaussian coil profiles around the object with a phase ramp), never the recon's forward
operator: k-space is the centre of the fine-grid FFT."""

from __future__ import annotations

import math

import torch

from recon.common.fft import fftc


def coil_maps(n_coils: int, shape: tuple[int, int], dtype: torch.dtype = torch.complex64) -> torch.Tensor:
    """``(coils, ny, nx)`` smooth sensitivities of coils on a ring around the field of view."""
    ny, nx = shape
    y = torch.linspace(-1, 1, ny, dtype=torch.float64)[:, None]
    x = torch.linspace(-1, 1, nx, dtype=torch.float64)[None, :]
    maps = []
    for c in range(n_coils):
        angle = 2 * math.pi * c / n_coils
        cy, cx = 1.3 * math.sin(angle), 1.3 * math.cos(angle)
        magnitude = torch.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 0.6)
        phase = 0.8 * (x * math.cos(angle) - y * math.sin(angle)) + angle
        maps.append(magnitude * torch.exp(1j * phase))
    return torch.stack(maps).to(dtype)


def phantom(shape: tuple[int, int], beat_fraction: float = 0.0) -> torch.Tensor:
    """Real image ``(ny, nx)``: body ellipse, two 'ventricles' whose radius beats with ``beat_fraction``."""
    ny, nx = shape
    y = torch.linspace(-1, 1, ny, dtype=torch.float64)[:, None]
    x = torch.linspace(-1, 1, nx, dtype=torch.float64)[None, :]

    def ellipse(cy: float, cx: float, ry: float, rx: float) -> torch.Tensor:
        r = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2
        return torch.sigmoid((1 - r) * 20)

    radius = 0.18 + 0.06 * math.cos(2 * math.pi * beat_fraction)
    image = 0.5 * ellipse(0, 0, 0.8, 0.9) + 0.3 * ellipse(-0.1, 0.25, 0.35, 0.3)
    image = image + 0.6 * ellipse(0.05, -0.2, radius, radius) + 0.4 * ellipse(-0.25, 0.3, 0.1, 0.12)
    return image


def coil_kspace(image_fine: torch.Tensor, maps_fine: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Coil k-space ``(coils, *shape)``: FFT on the fine grid, central ``shape`` kept (scaled to the coarse grid)."""
    ny, nx = image_fine.shape
    k = fftc((maps_fine * image_fine).to(torch.complex128))
    y0, x0 = ny // 2 - shape[0] // 2, nx // 2 - shape[1] // 2
    scale = math.sqrt(shape[0] * shape[1] / (ny * nx))
    return (k[:, y0 : y0 + shape[0], x0 : x0 + shape[1]] * scale).to(torch.complex64)


def fine_to_coarse(image_fine: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Band-limited coarse version of a fine-grid image (the 'truth' on the recon grid)."""
    from recon.common.fft import ifftc

    k = coil_kspace(image_fine, torch.ones_like(image_fine, dtype=torch.complex128)[None], shape)
    return ifftc(k)[0]


def cine_kspace(
    n_coils: int, shape: tuple[int, int], n_phases: int, noise_std: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fully sampled noisy cine ``(phases, coils, ky, kx)``, truth images ``(phases, ny, nx)``, maps on the recon grid."""
    fine = (2 * shape[0], 2 * shape[1])
    maps_fine = coil_maps(n_coils, fine, torch.complex128)
    frames, truths = [], []
    for p in range(n_phases):
        img = phantom(fine, p / n_phases)
        frames.append(coil_kspace(img, maps_fine, shape))
        truths.append(fine_to_coarse(img, shape))
    k = torch.stack(frames)
    noise = torch.complex(
        torch.randn(k.shape, generator=generator), torch.randn(k.shape, generator=generator)
    )
    return k + noise_std / math.sqrt(2) * noise.to(k.dtype), torch.stack(truths), coil_maps(n_coils, shape)


def nrmse(estimate: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> float:
    """‖a·|x̂| − |x|‖₂/‖x‖₂ inside ``mask`` with a the least-squares scale (the issue's metric)."""
    e, t = estimate.abs().to(torch.float64)[..., mask], truth.abs().to(torch.float64)[..., mask]
    a = float((e * t).sum() / (e * e).sum())
    return float(torch.linalg.vector_norm(a * e - t) / torch.linalg.vector_norm(t))
