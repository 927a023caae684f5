"""The Gaussian TOF kernel integrated over one TOF bin, truncated and renormalised.

Convention (shared with the simulator): an event's ``tof_bin`` b is the rounded signed distance of the
measured emission point from the LOR midpoint, measured toward crystal 2, in units of the bin width Δ,
clipped to ±K with K = ``n_tof_bins // 2``.  So bin b collects d ∈ [(b-½)Δ, (b+½)Δ); the edge bins ±K
collect everything beyond (their outer edge is ±∞).

For a point at signed position s on the LOR, the probability of bin b is

    w_b(s) = ½ [erf((u_b - s)/(√2 σ)) - erf((l_b - s)/(√2 σ))] / N(s)

where [l_b, u_b] are the bin edges.  Bins whose centre is further than ``n_sigmas``·σ + Δ/2 from s are
dropped (w = 0), except that the range is clamped to [-K, K] (a point beyond the last bin keeps the
edge bin, which reaches to ∞); the bins kept form one contiguous range [b_lo, b_hi], and N(s) = ½[erf((u_{b_hi} - s)/(√2σ))
- erf((l_{b_lo} - s)/(√2σ))] renormalises them so that Σ_b w_b(s) = 1 exactly: the TOF bins of an event sum
to its non-TOF weight.  Every kernel (torch, numba, CUDA) implements exactly this formula.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from recon.tof.geometry import ScannerGeometry

INFINITE_EDGE_MM = 1.0e15
"""Stand-in for ±∞ as the outer edge of the outermost TOF bins (erf of it is exactly ±1)."""


@dataclass(frozen=True)
class TOFParameters:
    """What a TOF projector needs to know about the TOF measurement.

    Attributes:
        sigma_mm: standard deviation of the emission-point position along the LOR (mm), > 0.
        bin_width_mm: width Δ of one TOF bin along the LOR (mm), > 0.
        n_tof_bins: number of TOF bins, odd (bin 0 is centred on the LOR midpoint).
        n_sigmas: truncation of the Gaussian, in σ (the window is ±(n_sigmas·σ + Δ/2) around s), > 0.
    """

    sigma_mm: float
    bin_width_mm: float
    n_tof_bins: int
    n_sigmas: float = 3.0

    def __post_init__(self) -> None:
        if not (self.sigma_mm > 0 and math.isfinite(self.sigma_mm)):
            raise ValueError(f"sigma_mm must be finite and > 0, got {self.sigma_mm}")
        if not (self.bin_width_mm > 0 and math.isfinite(self.bin_width_mm)):
            raise ValueError(f"bin_width_mm must be finite and > 0, got {self.bin_width_mm}")
        if self.n_tof_bins < 1 or self.n_tof_bins % 2 != 1:
            raise ValueError(f"n_tof_bins must be odd and ≥ 1, got {self.n_tof_bins}")
        if not self.n_sigmas > 0:
            raise ValueError(f"n_sigmas must be > 0, got {self.n_sigmas}")

    @property
    def max_bin(self) -> int:
        """K = n_tof_bins // 2: bins run from -K to K."""
        return self.n_tof_bins // 2

    @property
    def window_mm(self) -> float:
        """Half-width of the truncation window around s: n_sigmas·σ + Δ/2 (mm)."""
        return self.n_sigmas * self.sigma_mm + 0.5 * self.bin_width_mm

    @classmethod
    def from_scanner(cls, scanner: ScannerGeometry, n_sigmas: float = 3.0) -> TOFParameters | None:
        """σ, Δ and the bin count of a scanner (``None`` for a non-TOF scanner)."""
        if not scanner.is_tof:
            return None
        return cls(
            sigma_mm=scanner.tof_sigma_mm(),
            bin_width_mm=scanner.tof_bin_width_mm(),
            n_tof_bins=scanner.n_tof_bins,
            n_sigmas=n_sigmas,
        )


def erf_difference(upper: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
    """½(erf(upper) - erf(lower)), written with erfc on the tails so that far bins keep their digits."""
    both_pos = lower >= 0
    both_neg = upper <= 0
    mid = 0.5 * (torch.special.erf(upper) - torch.special.erf(lower))
    pos = 0.5 * (torch.special.erfc(lower) - torch.special.erfc(upper))
    neg = 0.5 * (torch.special.erfc(-upper) - torch.special.erfc(-lower))
    return torch.where(both_pos, pos, torch.where(both_neg, neg, mid))


def _edges(
    bins: torch.Tensor, params: TOFParameters, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper edges (mm) of the given bins; the outermost bins extend to ±∞."""
    k = params.max_bin
    delta = params.bin_width_mm
    b = bins.to(dtype)
    lower = torch.where(bins <= -k, torch.full_like(b, -INFINITE_EDGE_MM), (b - 0.5) * delta)
    upper = torch.where(bins >= k, torch.full_like(b, INFINITE_EDGE_MM), (b + 0.5) * delta)
    return lower, upper


def tof_bin_weights(s_mm: torch.Tensor, tof_bin: torch.Tensor, params: TOFParameters) -> torch.Tensor:
    """w_b(s): probability that a point at signed LOR position ``s_mm`` lands in ``tof_bin`` (broadcast).

    Args:
        s_mm: signed position(s) along the LOR from its midpoint toward crystal 2 (mm), float tensor.
        tof_bin: integer bin index(es), broadcastable against ``s_mm``.
        params: the TOF kernel.
    Returns:
        weights with the broadcast shape and the dtype of ``s_mm``; for every s they sum to 1 over the bins.
    """
    dtype = s_mm.dtype
    k = params.max_bin
    delta = params.bin_width_mm
    window = params.window_mm
    b_lo = torch.clamp(torch.ceil((s_mm - window) / delta), min=-k, max=k).to(torch.int64)
    b_hi = torch.clamp(torch.floor((s_mm + window) / delta), min=-k, max=k).to(torch.int64)
    b = tof_bin.to(torch.int64)
    inside = (b >= b_lo) & (b <= b_hi)
    scale = 1.0 / (math.sqrt(2.0) * params.sigma_mm)
    lower, upper = _edges(b, params, dtype)
    raw = erf_difference((upper - s_mm) * scale, (lower - s_mm) * scale)
    norm_lower, _ = _edges(b_lo, params, dtype)
    _, norm_upper = _edges(b_hi, params, dtype)
    norm = erf_difference((norm_upper - s_mm) * scale, (norm_lower - s_mm) * scale)
    safe_norm = torch.where(inside, norm, torch.ones_like(norm))
    return torch.where(inside, raw / safe_norm, torch.zeros_like(raw))
