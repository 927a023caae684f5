"""Locally weighted polynomial background (LOESS-style) for phase-contrast offset correction.

A single global polynomial cannot follow an eddy-current field that has structure on the scale of the
thorax (Gaussian bumps, waves) everywhere at once; what matters for flow is the offset *at the vessels*.
This fit first removes a global low-order polynomial, then fits, around every pixel, a quadratic to the
remaining static-tissue offset with Gaussian weights of width ``kernel_sigma_pixels`` and evaluates it
at that pixel (local quadratic regression).  The weighted moments are separable Gaussian convolutions,
so the whole map costs a few dozen 1-D convolutions and one batched 6 × 6 solve.  A ridge term pulls
the local correction towards zero where a neighbourhood holds little static tissue.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from recon.phasecontrast.background import BackgroundFit, fit_background

_LOCAL_TERMS = ((0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2))  # (power of dy, power of dx)


def _kernels_1d(sigma: float, max_power: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    half = math.ceil(3.0 * sigma)
    d = torch.arange(-half, half + 1, dtype=dtype, device=device) / sigma
    g = torch.exp(-0.5 * d**2)
    return torch.stack([g * d**a for a in range(max_power + 1)])  # (powers, taps)


def _separable(image: torch.Tensor, ky: torch.Tensor, kx: torch.Tensor) -> torch.Tensor:
    """Σ_q image(q) · ky(q_y − p_y) · kx(q_x − p_x) (torch conv2d is a correlation), zero outside the image."""
    half_y, half_x = ky.shape[0] // 2, kx.shape[0] // 2
    x = image[None, None]
    x = F.conv2d(x, ky.reshape(1, 1, -1, 1), padding=(half_y, 0))
    x = F.conv2d(x, kx.reshape(1, 1, 1, -1), padding=(0, half_x))
    return x[0, 0]


def local_quadratic_smooth(
    values: torch.Tensor, weights: torch.Tensor, kernel_sigma_pixels: float, ridge: float = 1e-2
) -> torch.Tensor:
    """Local quadratic regression of ``values`` ``(y, x)`` with ``weights`` (0 = unused), evaluated everywhere.

    At each pixel p the quadratic in ``d = (q − p) / σ`` minimising ``Σ_q w_q g(d) (values_q − poly(d))²``
    (Gaussian ``g``) is found; its value at ``d = 0`` is returned.  ``ridge`` (relative to the largest
    total local weight) regularises pixels whose neighbourhood has too little weight: there the result
    tends to 0.
    """
    dtype = torch.float64
    v, w = values.to(dtype), weights.to(dtype)
    k = _kernels_1d(kernel_sigma_pixels, 4, dtype, values.device)
    moment: dict[tuple[int, int], torch.Tensor] = {}
    for a in range(5):
        for b in range(5 - a):
            moment[(a, b)] = _separable(w, k[a], k[b])
    n = len(_LOCAL_TERMS)
    matrix = torch.stack(
        [torch.stack([moment[(ti[0] + tj[0], ti[1] + tj[1])] for tj in _LOCAL_TERMS], -1) for ti in _LOCAL_TERMS], -2
    )  # (y, x, n, n)
    rhs = torch.stack([_separable(w * v, k[a], k[b]) for a, b in _LOCAL_TERMS], -1)  # (y, x, n)
    scale = float(moment[(0, 0)].max()) or 1.0
    matrix = matrix + ridge * scale * torch.eye(n, dtype=dtype, device=values.device)
    return torch.linalg.solve(matrix, rhs.unsqueeze(-1))[..., 0, 0]


def fit_background_local(
    velocity_cm_per_s: torch.Tensor,
    static_mask: torch.Tensor,
    kernel_sigma_pixels: float = 12.0,
    global_order: int = 2,
    weights: torch.Tensor | None = None,
    ridge: float = 1e-2,
) -> BackgroundFit:
    """Global polynomial of ``global_order`` plus a local quadratic correction (see the module docstring).

    Args:
        velocity_cm_per_s: ``(phases, y, x)`` or ``(y, x)`` real velocity maps (cm/s).
        static_mask: ``(y, x)`` boolean static-tissue pixels.
        kernel_sigma_pixels: Gaussian width of the local neighbourhood (pixels, ≥ 1).
        global_order: order of the global polynomial removed first.
        weights: optional ``(y, x)`` non-negative weights of the static pixels.
        ridge: regularisation relative to the largest local weight sum.
    """
    if not kernel_sigma_pixels >= 1.0:
        raise ValueError(f"kernel_sigma_pixels must be ≥ 1, got {kernel_sigma_pixels}")
    global_fit = fit_background(velocity_cm_per_s, static_mask, order=global_order, weights=weights)
    mean_v = velocity_cm_per_s.mean(dim=0) if velocity_cm_per_s.ndim == 3 else velocity_cm_per_s
    residual = (mean_v - global_fit.offset_cm_per_s).to(torch.float64)
    w = static_mask.to(torch.float64) if weights is None else static_mask * weights.to(torch.float64).clamp_min(0.0)
    local = local_quadratic_smooth(torch.where(static_mask, residual, 0.0), w, kernel_sigma_pixels, ridge)
    offset = global_fit.offset_cm_per_s.to(torch.float64) + local
    remaining = (mean_v.to(torch.float64) - offset)[static_mask]
    return BackgroundFit(
        offset_cm_per_s=offset.to(mean_v.dtype),
        coefficients=global_fit.coefficients,
        order=global_order,
        n_static_pixels=global_fit.n_static_pixels,
        residual_rms_cm_per_s=float(remaining.pow(2).mean().sqrt()),
    )
