"""MOLLI T1 mapping: three-parameter fit with polarity restoration and the Look-Locker correction.

Signal model of a magnitude MOLLI series (Messroghli et al., MRM 2004): after an inversion, the
longitudinal magnetisation seen through a train of readouts recovers with an *apparent* time constant
T1* < T1, ``S(TI) = A − B·exp(−TI/T1*)``, polarity restored (the magnitude of the samples before the
signal null is negated; the null lies next to the smallest sample, which noise can move by one, so the four
inversion points from one before to two after it are fitted and the best is kept: with only the two next to it,
4 % of remote-myocardium pixels of the default exam read > 20 % off, 0.8 % with four).  ``TI`` of every image is its own inversion time, read from the
acquisition time stamps (its block's first TI plus the time since that block's first image).

**Look-Locker correction** ``T1 = T1*·(B/A − 1)``: exact for a *continuous* FLASH readout (Deichmann &
Haase, JMR 1992), where the readout drives Mz to the steady state ``A`` at rate ``1/T1* = 1/T1 − ln(cos α)/TR``
and ``B = A + M0``.  MOLLI reads only ~250 ms per heartbeat and relaxes freely in between, so the apparent
recovery is closer to T1 and ``B/A − 1`` over-corrects: MOLLI under-estimates T1, more for long T1 (blood),
short T2 (the bSSFP readout saturates with a T2-dependent rate) and high heart rates; inversion efficiency
below 1 adds to it (Kellman & Hansen, JCMR 2014: ≈ −4 % myocardium, more for blood at 60 bpm).
The test of this project compares the corrected T1 against the simulator's true T1 (ideal inversion,
ideal slice profile, 60 bpm): see ``tests/plugins/mr/test_tissue_chains.py`` for what remains after the
correction, ``tests/recon/test_mapping_fits.py`` for the fit on closed-form curves.

**Error map** (per-pixel SD of T1): from the covariance ``σ²(JᵀJ)⁻¹`` of (A, B, T1*) with
σ² = rss/(n − 3), propagated through ``T1 = T1*(B/A − 1)`` (Kellman et al., JCMR 2014, "T1 SD map").

Shapes: ``magnitude`` ``(n, P)``, ``ti_ms`` ``(n,)`` or ``(n, P)``; results ``(P,)`` in ms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recon.mapping.exponential import fit_exponential, jacobian_covariance


@dataclass(frozen=True)
class MolliFit:
    """Per pixel ``(P,)``: ``t1_ms`` (Look-Locker corrected), ``t1_star_ms``, ``a``, ``b``,
    ``t1_sd_ms`` (fit error map), ``n_inverted`` (samples negated by the polarity restoration)."""

    t1_ms: torch.Tensor
    t1_star_ms: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor
    t1_sd_ms: torch.Tensor
    n_inverted: torch.Tensor


def _restored(magnitude: torch.Tensor, n_inverted: torch.Tensor) -> torch.Tensor:
    """Negate the first ``n_inverted`` samples of each pixel (samples sorted by TI)."""
    index = torch.arange(magnitude.shape[0], device=magnitude.device)[:, None]
    return torch.where(index < n_inverted[None], -magnitude, magnitude)


def fit_molli(
    magnitude: torch.Tensor, ti_ms: torch.Tensor, t1_star_range_ms: tuple[float, float] = (20.0, 4000.0)
) -> MolliFit:
    """Three-parameter fit of every pixel (module docstring); samples may come in any TI order."""
    n, p = magnitude.shape
    t = ti_ms.to(magnitude.device, torch.float64)
    if t.ndim == 1:  # one set of TIs: sorted once, and kept 1-D (the fit's coarse grid is then shared)
        order1 = torch.argsort(t)
        y = magnitude.to(torch.float64)[order1]
        t_fit = t[order1]
        t = t_fit[:, None].expand(n, p)
    else:
        order = torch.argsort(t, dim=0)
        y = magnitude.to(torch.float64).gather(0, order)
        t = t_fit = t.gather(0, order)
    null = torch.argmin(y, dim=0)
    best = None
    for shift in (-1, 0, 1, 2):  # the null lies near the smallest sample, which noise can move by one
        k = (null + shift).clamp(0, n)
        fit = fit_exponential(_restored(y, k), t_fit, offset=True, tau_range_ms=t1_star_range_ms)
        if best is None:
            best = (fit, k)
        else:
            better = fit.rss < best[0].rss
            merged = type(fit)(
                *(torch.where(better, getattr(fit, f), getattr(best[0], f)) for f in fit.__dataclass_fields__)
            )
            best = (merged, torch.where(better, k, best[1]))
    assert best is not None
    fit, k = best
    a, b, t1s = fit.offset, -fit.amplitude, fit.tau_ms
    t1 = t1s * (b / a - 1.0)
    e = torch.exp(-t / t1s[None])
    jac = torch.stack([torch.ones_like(e), -e, -b[None] * e * t / t1s[None] ** 2], dim=-1).transpose(0, 1)
    cov = jacobian_covariance(jac, fit.rss, fit.n_used)
    grad = torch.stack([-t1s * b / a**2, t1s / a, b / a - 1.0], dim=-1)[..., None]
    sd = torch.sqrt((grad.transpose(1, 2) @ cov @ grad)[:, 0, 0].clamp_min(0.0))
    dtype = magnitude.dtype
    return MolliFit(t1.to(dtype), t1s.to(dtype), a.to(dtype), b.to(dtype), sd.to(dtype), k)
