"""Piecewise-polynomial tables of the TOF kernel's error-function terms, for the CPU kernels.

The weight of :mod:`recon.tof.tof_kernel` for a sample at signed LOR position s and an event bin b with
|b| < K (finite bin edges) is, with x = s - bΔ, c = 1/(√2σ) and W = n_sigmas·σ + Δ/2 the window,

    w = G(|x|) / (1 - T(fᵤ) - T(fₗ)),   G(x) = ½[erf((Δ/2 - x)c) - erf((-Δ/2 - x)c)],
                                         T(f) = ½ erfc((n_sigmas·σ + (1 - f)Δ)c),

where fᵤ = frac((s + W)/Δ) and fₗ = ceil((s - W)/Δ) - (s - W)/Δ place the outer edges of the kept bin range
[b_lo, b_hi] (the normalisation N(s) = 1 - T(fᵤ) - T(fₗ); a term is 0 where that range is clamped to ±K,
its edge being ±∞).  G is even and smooth on [0, W] and T smooth on [0, 1], so both are tabulated once per
:class:`~recon.tof.tof_kernel.TOFParameters` on short cells as degree-7 polynomials (Chebyshev
interpolation at 16 nodes, least squares, converted to monomials in the cell's local variable u ∈ [-1, 1]).
One table evaluation is a cell lookup and 7 multiply-adds, against a libm ``erf`` call: the kernels evaluate
3 polynomials instead of 4 ``erf`` per sample, with no branch on the arguments.

Accuracy (checked by ``tests/recon/tof/test_tof_tables.py`` against ``scipy.special.erfc`` on a dense
grid): absolute error ≤ 1e-14 for G (values 1e-3…0.5 in the window) and ≤ 1e-16 for T (values ≈ 1e-4…1e-3),
so the kernels' weights agree with the exact formula to ≈ 1e-13 relative, far below float32 rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.polynomial import chebyshev
from scipy.special import erfc

DEGREE = 7
"""Polynomial degree per cell."""
CELL_WIDTH_SCALED = 0.05
"""Cell width in units of the scaled argument (distance × c = distance/(√2σ)): 0.05 ≈ 1.75 mm at σ = 24.8 mm."""


@dataclass(frozen=True)
class PolyTable:
    """A function tabulated on [start, start + n_cells/inv_width] as one polynomial per cell.

    Attributes:
        start: left end of the first cell (argument units).
        inv_width: 1 / cell width.
        coefficients: (n_cells, DEGREE + 1) float64 monomial coefficients in u = 2·(local position) - 1,
            highest power first (Horner order).
    """

    start: float
    inv_width: float
    coefficients: np.ndarray


def _fit(func, start: float, stop: float, cell_width: float) -> PolyTable:  # type: ignore[no-untyped-def]
    n_cells = max(1, math.ceil((stop - start) / cell_width))
    width = (stop - start) / n_cells
    nodes = np.cos(np.pi * (np.arange(16) + 0.5) / 16)  # Chebyshev nodes on [-1, 1]
    coefficients = np.empty((n_cells, DEGREE + 1))
    for i in range(n_cells):
        x = start + (i + 0.5 * (nodes + 1.0)) * width
        cheb = chebyshev.chebfit(nodes, func(x), DEGREE)
        coefficients[i] = chebyshev.cheb2poly(cheb)[::-1]
    return PolyTable(float(start), float(1.0 / width), np.ascontiguousarray(coefficients))


def evaluate(table: PolyTable, x: np.ndarray) -> np.ndarray:
    """The tabulated function at ``x`` (numpy, for tests; the kernels inline the same arithmetic)."""
    v = (np.asarray(x, dtype=np.float64) - table.start) * table.inv_width
    cell = np.clip(np.floor(v).astype(np.int64), 0, table.coefficients.shape[0] - 1)
    u = 2.0 * (v - cell) - 1.0
    out = np.zeros_like(u)
    for j in range(DEGREE + 1):
        out = out * u + table.coefficients[cell, j]
    return out


@lru_cache(maxsize=8)
def tof_tables(sigma_mm: float, bin_width_mm: float, n_sigmas: float) -> tuple[PolyTable, PolyTable]:
    """(G over |x| in mm, T over the fraction f in [0, 1]) for one TOF kernel; see the module docstring."""
    c = 1.0 / (math.sqrt(2.0) * sigma_mm)
    half = 0.5 * bin_width_mm
    window = n_sigmas * sigma_mm + half

    def g(x: np.ndarray) -> np.ndarray:
        # erf_difference((Δ/2 - x)c, (-Δ/2 - x)c) for x ≥ 0 (the lower argument is negative): with erfc of
        # the tails so that far samples keep their digits, as in :func:`recon.tof.tof_kernel.erf_difference`
        upper, lower = (half - x) * c, (-half - x) * c
        both_neg = 0.5 * (erfc(-upper) - erfc(-lower))
        mid = 0.5 * (2.0 - erfc(upper) - erfc(-lower))
        return np.where(upper <= 0, both_neg, mid)

    g_table = _fit(g, 0.0, window * 1.001 + 1e-9, CELL_WIDTH_SCALED / c)
    tail_start = n_sigmas * sigma_mm * c
    span = bin_width_mm * c
    t_table = _fit(
        lambda f: 0.5 * erfc(tail_start + (1.0 - f) * span), -1e-9, 1.0 + 1e-9, CELL_WIDTH_SCALED / span
    )
    return g_table, t_table
