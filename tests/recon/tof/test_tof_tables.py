"""The tabulated TOF kernel terms of the CPU kernels against the exact erf formula.

Tolerances fixed before running: the tables to 1e-14 absolute (G, values up to 0.5) and 1e-16 absolute
(T, values ≈ 1e-4…1e-3); the numba kernels' per-sample weights to 1e-13 relative against the torch reference
:func:`recon.tof.tof_kernel.tof_bin_weights` in float64, for every bin (edge bins and clamped ranges included).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import erfc

from recon.tof.projector_numba import _sample_weights
from recon.tof.projectors import _weight_tables
from recon.tof.tof_kernel import TOFParameters, tof_bin_weights
from recon.tof.tof_tables import evaluate, tof_tables

KERNELS = [
    TOFParameters(24.83, 13.34, 45),
    TOFParameters(24.83, 13.34, 25),
    TOFParameters(10.0, 4.0, 31, 4.0),
]


@pytest.mark.parametrize("params", KERNELS, ids=["signa", "small", "narrow"])
def test_tables_match_erfc(params: TOFParameters) -> None:
    g, t = tof_tables(params.sigma_mm, params.bin_width_mm, params.n_sigmas)
    c = 1.0 / (math.sqrt(2.0) * params.sigma_mm)
    half = 0.5 * params.bin_width_mm
    x = np.linspace(0.0, params.window_mm, 100_001)
    upper, lower = (half - x) * c, (-half - x) * c
    exact_g = np.where(
        upper <= 0, 0.5 * (erfc(-upper) - erfc(-lower)), 0.5 * (2 - erfc(upper) - erfc(-lower))
    )
    assert np.abs(evaluate(g, x) - exact_g).max() <= 1e-14
    f = np.linspace(0.0, 1.0, 20_001)
    exact_t = 0.5 * erfc((params.n_sigmas * params.sigma_mm + (1.0 - f) * params.bin_width_mm) * c)
    assert np.abs(evaluate(t, f) - exact_t).max() <= 1e-16


@pytest.mark.parametrize("params", KERNELS, ids=["signa", "small", "narrow"])
def test_kernel_weight_matches_reference_for_every_bin(params: TOFParameters) -> None:
    k = params.max_bin
    n_samples = 2000
    length = 2.0 * (k + 8) * params.bin_width_mm
    s = ((np.arange(n_samples + 1) / n_samples) - 0.5) * length  # the sample positions of the call below
    g_coef, t_coef, axes = _weight_tables(params)
    out = np.empty(n_samples + 1)
    for b in range(-k, k + 1):
        ref = tof_bin_weights(torch.from_numpy(s), torch.full((s.size,), b), params).numpy()
        # planes j = 0..n of a segment with q₁ = 0, Δq = n: t = j/n, step length 1 mm
        _sample_weights(
            0.0, float(n_samples), length, 1.0, 0, n_samples + 1, True, b, params.sigma_mm,
            params.bin_width_mm, k, params.window_mm, g_coef, t_coef, axes, out,
        )  # fmt: skip
        assert np.array_equal(out == 0, ref == 0), f"bin {b}: different support"
        assert np.abs(out - ref).max() <= 1e-13 * ref.max(), f"bin {b}"
