"""Coil combination and intensity scaling for display."""

from __future__ import annotations

import math

import torch


def rss_combine(coil_images: torch.Tensor, coil_dim: int = -3) -> torch.Tensor:
    """Root-sum-of-squares √Σ|m_c|² over ``coil_dim`` (real, magnitude only)."""
    return torch.linalg.vector_norm(coil_images, dim=coil_dim)


def b1_combine(
    coil_images: torch.Tensor, coil_maps: torch.Tensor, coil_dim: int = -3, eps: float = 1e-12
) -> torch.Tensor:
    """B1-weighted (Roemer) combination Σ C*_c m_c / Σ|C_c|² (complex), with maps broadcast over ``*other``.

    With maps normalised to Σ|C|² = 1 (ESPIRiT, :func:`recon.cine.coilmaps.lowres_coil_maps`) this is
    Σ C*_c m_c, i.e. the image weighted by the true coil root-sum-of-squares.
    """
    weights = combination_weights(coil_maps, coil_dim=-3, eps=eps)
    moved = coil_images.movedim(coil_dim, -3)
    return (weights * moved).sum(dim=-3)


def combination_weights(coil_maps: torch.Tensor, coil_dim: int = -3, eps: float = 1e-12) -> torch.Tensor:
    """Per-pixel combination weights C*_c / Σ|C|² (zero where the maps vanish); ``(coils, y, x)``."""
    maps = coil_maps.movedim(coil_dim, -3)
    power = (maps.abs() ** 2).sum(dim=-3, keepdim=True)
    return torch.where(power > eps, maps.conj() / power.clamp_min(eps), torch.zeros_like(maps))


def display_scale(magnitude: torch.Tensor, percentile: float = 99.5, max_value: float = 4095.0) -> float:
    """Scale factor that maps the ``percentile`` of ``magnitude`` to ``max_value`` (12-bit display range)."""
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    flat = magnitude.detach().abs().flatten()
    rank = min(flat.numel(), max(1, math.ceil(percentile / 100.0 * flat.numel())))
    level = float(flat.kthvalue(rank).values)  # O(n) selection instead of a full sort
    return max_value / level if level > 0 else 1.0


def to_display(magnitude: torch.Tensor, scale: float, max_value: float = 4095.0) -> torch.Tensor:
    """``|x|·scale`` rounded and clipped to ``[0, max_value]`` as int32 (fits uint16)."""
    return (magnitude.abs() * scale).round().clamp(0, max_value).to(torch.int32)
