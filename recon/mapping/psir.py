"""Phase-sensitive inversion recovery (Kellman et al., MRM 2002) and the T2/T2* fits' helpers.

The IR image ``I = |I|·e^{i(φ_bg + π·[Mz<0])}`` and the low-flip reference ``R = |R|·e^{iφ_bg}`` (acquired in
the alternate heartbeat with the same coil combination) share the background phase φ_bg (coils, B0,
receiver).  PSIR = ``Re(I·e^{-iφ_R}) / |R|_smooth``: the sign of Mz is restored and, since |R| ∝ the coil
sensitivity × proton density, the surface-coil shading divides out.  φ_R and |R| are taken from the
Gaussian-smoothed complex reference (the reference has low SNR at its 5° flip).  Images ``(y, x)`` complex.
"""

from __future__ import annotations

import torch


def gaussian_smooth(image: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Separable Gaussian blur of a 2-D real or complex image ``(y, x)`` (zero padded)."""
    if sigma_px <= 0:
        return image
    radius = max(1, int(3.0 * sigma_px))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=image.device)
    k = torch.exp(-0.5 * (x / sigma_px) ** 2)
    k = (k / k.sum())[None, None]
    parts = (image.real, image.imag) if image.is_complex() else (image,)
    out = []
    for p in parts:
        v = p.to(torch.float32)[None, None]
        v = torch.nn.functional.conv2d(v, k[..., None], padding=(radius, 0))
        v = torch.nn.functional.conv2d(v, k[:, :, None, :], padding=(0, radius))
        out.append(v[0, 0])
    return torch.complex(out[0], out[1]) if image.is_complex() else out[0]


def psir(ir: torch.Tensor, reference: torch.Tensor, sigma_px: float, floor_fraction: float) -> torch.Tensor:
    """Surface-coil normalised phase-sensitive image ``(y, x)`` float32 (module docstring); the normaliser
    is floored at ``floor_fraction`` of its 99th percentile (air stays near 0 instead of exploding)."""
    smooth = gaussian_smooth(reference, sigma_px)
    norm = smooth.abs()
    floor = floor_fraction * torch.quantile(norm.flatten().float(), 0.99)
    phase = smooth / norm.clamp_min(1e-30)
    return ((ir * phase.conj()).real / norm.clamp_min(float(floor))).to(torch.float32)


def rayleigh_noise_sigma(magnitude: torch.Tensor, fraction: float = 0.2) -> torch.Tensor:
    """Noise σ of a magnitude image from its darkest ``fraction`` of pixels (air): median/√(2 ln 2)."""
    flat = magnitude.flatten().float()
    dark = flat[flat <= torch.quantile(flat, fraction)]
    return torch.median(dark) / 1.1774
