"""Mono-exponential fits by variable projection, batched over pixels.

Model ``y_i = c + m·exp(-t_i/τ)`` (``offset=True``) or ``y_i = m·exp(-t_i/τ)``, with per-sample weights
``w_i ≥ 0`` (0 drops a sample: truncation).  For a fixed τ the amplitudes are a weighted linear least
squares problem with a closed-form solution, so the residual is a function of τ alone; it is minimised on a
log-spaced grid of τ, then on successively finer grids around the best point (each level 10× finer), which
needs no starting value and never diverges (a Gauss–Newton fit of the same model can).  Shapes: ``y``
``(n, P)`` real, ``t_ms`` ``(n,)`` or ``(n, P)``, ``weights`` like ``y``; results ``(P,)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ExponentialFit:
    """Per-pixel fit ``(P,)``: ``tau_ms``, ``amplitude`` m, ``offset`` c (0 without offset), ``rss`` (weighted
    residual sum of squares), ``n_used`` (samples with weight > 0)."""

    tau_ms: torch.Tensor
    amplitude: torch.Tensor
    offset: torch.Tensor
    rss: torch.Tensor
    n_used: torch.Tensor


def _amplitudes(
    sums: tuple[torch.Tensor, ...], offset: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Closed-form amplitudes and rss from the weighted sums ``(Σw, Σwy, Σwy², Σwe, Σwe², Σwey)``."""
    sw, swy, swyy, swe, swee, swey = sums
    if not offset:
        m = swey / swee.clamp_min(1e-30)
        return m, torch.zeros_like(m), swyy - m * swey
    det = (sw * swee - swe * swe).clamp_min(1e-30)
    m = (sw * swey - swe * swy) / det
    c = (swy - m * swe) / sw.clamp_min(1e-30)
    rss = swyy - m * swey - c * swy
    return m, c, rss


def _solve(
    y: torch.Tensor, w: torch.Tensor, e: torch.Tensor, offset: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Amplitudes and rss for basis ``e`` ``(G, n, P)`` or, shared by every pixel, ``(G, n)`` (sums as
    matrix products); y, w ``(n, P)`` → each ``(G, P)``."""
    wy = w * y
    if e.ndim == 2:
        sums = (w.sum(0), wy.sum(0), (wy * y).sum(0), e @ w, (e * e) @ w, e @ wy)
    else:
        sums = (w.sum(0), wy.sum(0), (wy * y).sum(0), (w * e).sum(1), (w * e * e).sum(1), (wy * e).sum(1))
    return _amplitudes(sums, offset)


CHUNK_PIXELS = 4096
"""Pixels fitted at once (bounds the ``(grid, n, P)`` work arrays to a few tens of MB)."""


def fit_exponential(
    y: torch.Tensor,
    t_ms: torch.Tensor,
    weights: torch.Tensor | None = None,
    offset: bool = True,
    tau_range_ms: tuple[float, float] = (1.0, 6000.0),
    n_grid: int = 160,
    n_refine: int = 3,
) -> ExponentialFit:
    """Fit every pixel's samples (module docstring); τ is confined to ``tau_range_ms``."""
    p = y.shape[1]
    parts = []
    for s in range(0, max(p, 1), CHUNK_PIXELS):
        sl = slice(s, min(p, s + CHUNK_PIXELS))
        t = t_ms if t_ms.ndim == 1 else t_ms[:, sl]
        w = None if weights is None else weights[:, sl]
        parts.append(_fit_chunk(y[:, sl], t, w, offset, tau_range_ms, n_grid, n_refine))
    return ExponentialFit(
        *(torch.cat([getattr(f, k) for f in parts]) for k in ExponentialFit.__dataclass_fields__)
    )


def _fit_chunk(
    y: torch.Tensor,
    t_ms: torch.Tensor,
    weights: torch.Tensor | None,
    offset: bool,
    tau_range_ms: tuple[float, float],
    n_grid: int,
    n_refine: int,
) -> ExponentialFit:
    n, p = y.shape
    dtype, device = torch.float64, y.device
    yy = y.to(dtype)
    w = torch.ones_like(yy) if weights is None else weights.to(dtype)
    t = t_ms.to(dtype=dtype, device=device)
    shared = t.ndim == 1  # one set of sample times: the coarse grid's basis is the same for every pixel
    t = t[:, None].expand(n, p) if t.ndim == 1 else t
    lo, hi = torch.log(torch.tensor(tau_range_ms, dtype=dtype, device=device))
    step = (hi - lo) / (n_grid - 1)
    coarse = lo + step * torch.arange(n_grid, dtype=dtype, device=device)
    grid = coarse[:, None].expand(n_grid, p)
    for level in range(n_refine + 1):
        if level == 0 and shared:
            e = torch.exp(-t[None, :, 0] / torch.exp(coarse)[:, None])  # (G, n)
        else:
            e = torch.exp(-t[None] / torch.exp(grid)[:, None, :])  # (G, n, P)
        m, c, rss = _solve(yy, w, e, offset)
        best = torch.argmin(rss, dim=0)
        centre = grid.gather(0, best[None])[0]
        if level == n_refine:
            pick = best[None]
            return ExponentialFit(
                tau_ms=torch.exp(centre).to(y.dtype),
                amplitude=m.gather(0, pick)[0].to(y.dtype),
                offset=c.gather(0, pick)[0].to(y.dtype),
                rss=rss.gather(0, pick)[0].clamp_min(0.0).to(y.dtype),
                n_used=(w > 0).sum(0),
            )
        step = step / 10.0
        offsets = torch.arange(-12, 13, dtype=dtype, device=device)[:, None] * step
        grid = (centre[None] + offsets).clamp(lo, hi)
    raise AssertionError("unreachable")


def jacobian_covariance(jac: torch.Tensor, rss: torch.Tensor, n_used: torch.Tensor) -> torch.Tensor:
    """Parameter covariance ``σ²(JᵀJ)⁻¹`` per pixel: ``jac`` ``(P, n, k)`` (rows of dropped samples zero),
    σ² = rss / (n_used − k); ``(P, k, k)`` (NaN where singular or without degrees of freedom)."""
    k = jac.shape[-1]
    normal = jac.transpose(1, 2) @ jac
    dof = (n_used - k).to(jac.dtype)
    sigma2 = torch.where(dof > 0, rss.to(jac.dtype) / dof.clamp_min(1.0), torch.full_like(dof, float("nan")))
    inv = torch.linalg.pinv(torch.nan_to_num(normal, nan=0.0, posinf=0.0, neginf=0.0))
    return inv * sigma2[:, None, None]
