"""Masks for phase-contrast processing: signal (not noise-only) pixels and static tissue.

All masks are boolean tensors over the last two axes ``(y, x)`` (with any leading axes kept), on the
device of their input.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage


def dilate(mask: torch.Tensor, n_pixels: int) -> torch.Tensor:
    """Binary dilation of a ``(..., y, x)`` mask by ``n_pixels`` with a 3 × 3 (8-connected) element."""
    if n_pixels < 0:
        raise ValueError(f"n_pixels must be ≥ 0, got {n_pixels}")
    if n_pixels == 0:
        return mask.clone()
    shape = mask.shape
    x = mask.reshape(-1, 1, *shape[-2:]).to(torch.float32)
    for _ in range(n_pixels):
        x = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
    return x.reshape(shape) > 0.5


def erode(mask: torch.Tensor, n_pixels: int) -> torch.Tensor:
    """Binary erosion (the complement of dilating the complement); pixels outside the image count as set."""
    return ~dilate(~mask, n_pixels)


def noise_mask(
    magnitude: torch.Tensor,
    threshold_fraction: float = 0.1,
    noise_sigma: float | None = None,
    noise_sigma_factor: float = 5.0,
) -> torch.Tensor:
    """Pixels that carry signal (``True``) rather than noise only, from a magnitude image ``(..., y, x)``.

    A pixel is signal when its magnitude exceeds ``threshold_fraction`` times the 99th percentile of the
    magnitude over the last two axes (a robust maximum) and, when the noise standard deviation
    ``noise_sigma`` (per real channel, in image units) is known, also ``noise_sigma_factor · noise_sigma``.
    The phase of noise-only pixels is uniformly random, so their velocities must never be used.
    """
    if not 0.0 <= threshold_fraction < 1.0:
        raise ValueError(f"threshold_fraction must be in [0, 1), got {threshold_fraction}")
    if magnitude.is_complex():
        raise TypeError("noise_mask expects a real magnitude image")
    flat = magnitude.reshape(*magnitude.shape[:-2], -1).to(torch.float32)
    robust_max = torch.quantile(flat, 0.99, dim=-1, keepdim=True)
    threshold = (threshold_fraction * robust_max).unsqueeze(-1)
    if noise_sigma is not None:
        threshold = threshold.clamp_min(noise_sigma_factor * noise_sigma)
    return magnitude > threshold.to(magnitude.dtype)


def static_tissue_mask(
    velocity_cm_per_s: torch.Tensor,
    signal_mask: torch.Tensor,
    exclude_mask: torch.Tensor | None = None,
    exclude_margin_pixels: int = 3,
    static_percentile: float = 50.0,
) -> torch.Tensor:
    """Static tissue for the background fit: low temporal variation, sufficient magnitude, no vessels.

    A pixel is static when it is in ``signal_mask``, lies more than ``exclude_margin_pixels`` away from
    ``exclude_mask`` (the vessels) and its temporal standard deviation of velocity is at or below the
    ``static_percentile``-th percentile of those candidates (Walker et al. 1993: static tissue has the
    lowest temporal variance; blood, the heart wall and noise have more).

    Args:
        velocity_cm_per_s: ``(phases, y, x)`` real velocity maps of one slice.
        signal_mask: ``(y, x)`` boolean, see :func:`noise_mask`.
        exclude_mask: ``(y, x)`` boolean vessels (or ``None``).
        exclude_margin_pixels: safety margin around ``exclude_mask`` (pixels).
        static_percentile: percentile (0 < p ≤ 100) of temporal standard deviation kept as static.
    """
    if velocity_cm_per_s.ndim != 3:
        raise ValueError(f"velocity must be (phases, y, x), got shape {tuple(velocity_cm_per_s.shape)}")
    if not 0.0 < static_percentile <= 100.0:
        raise ValueError(f"static_percentile must be in (0, 100], got {static_percentile}")
    candidates = signal_mask.clone()
    if exclude_mask is not None:
        candidates &= ~dilate(exclude_mask, exclude_margin_pixels)
    if int(candidates.sum()) == 0:
        raise ValueError(
            "no candidate static-tissue pixels: signal mask empty or covered by the vessel margin"
        )
    temporal_std = (
        velocity_cm_per_s.std(dim=0) if velocity_cm_per_s.shape[0] > 1 else velocity_cm_per_s[0].abs()
    )
    limit = torch.quantile(temporal_std[candidates].to(torch.float32), static_percentile / 100.0)
    return candidates & (temporal_std <= limit.to(temporal_std.dtype))


def body_mask(signal_mask: torch.Tensor, closing_pixels: int = 2) -> torch.Tensor:
    """The body (``True``) from a ``(y, x)`` signal mask: small gaps closed, holes filled (lungs, vessels
    with little signal), specks smaller than ``(2·closing_pixels + 1)²`` pixels removed.

    Velocities outside the body are noise (random phase of empty space) and are set to 0 by the background
    correction, which also never extrapolates its fit there.
    """
    if signal_mask.ndim != 2:
        raise ValueError(f"signal_mask must be (y, x), got shape {tuple(signal_mask.shape)}")
    closed = erode(dilate(signal_mask, closing_pixels), closing_pixels)
    filled = ndimage.binary_fill_holes(closed.cpu().numpy())
    opened = ndimage.binary_opening(filled, structure=np.ones((3, 3), bool), iterations=closing_pixels)
    return torch.from_numpy(np.asarray(opened, dtype=bool)).to(signal_mask.device)
