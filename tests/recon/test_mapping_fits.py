"""The MOLLI fit on closed-form inversion-recovery curves (no simulator): S(TI) = |A − B·exp(−TI/T1*)| plus
Gaussian noise at an SNR (A / σ) of 30, the 5(3)3 inversion times of a 60 bpm MOLLI, apparent recovery times from
myocardium to blood.  The polarity restoration must do as well as a fit told the true polarity of every sample
(the oracle): outliers (> 20 % off) at most 0.5 % more than the oracle's, median T1* and T1 within 1 %.  Limits
fixed before the run (the first version asked for ≤ 1 % outliers; the oracle itself has 1.2 % at T1* = 500 ms:
that is the noise, not the restoration)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon.mapping.exponential import fit_exponential
from recon.mapping.molli import fit_molli

#: Inversion times of MOLLI 5(3)3 at 60 bpm, ms (first block TI 130 ms, second 230 ms).
TI_MS = np.array([130, 1130, 2130, 3130, 4130, 230, 1230, 2230], float)


def _outliers(t1_star_ms: np.ndarray, truth_ms: float) -> float:
    return float(np.mean(np.abs(t1_star_ms / truth_ms - 1.0) > 0.2))


@pytest.mark.parametrize("t1_star_ms", [300.0, 500.0, 800.0, 1200.0])
def test_molli_polarity_restoration_as_good_as_the_oracle(t1_star_ms: float) -> None:
    rng = np.random.default_rng(0)
    a, b, n_pixels = 1.0, 1.9, 20_000
    clean = a - b * np.exp(-TI_MS / t1_star_ms)
    signed = clean[:, None] + rng.normal(0.0, a / 30.0, (TI_MS.size, n_pixels))
    fit = fit_molli(torch.from_numpy(np.abs(signed)), torch.from_numpy(TI_MS))
    order = np.argsort(TI_MS)
    oracle = fit_exponential(
        torch.from_numpy(np.abs(signed[order]) * np.sign(clean[order])[:, None]),
        torch.from_numpy(TI_MS[order]),
        offset=True,
        tau_range_ms=(20.0, 4000.0),
    )
    assert (
        _outliers(fit.t1_star_ms.numpy(), t1_star_ms) <= _outliers(oracle.tau_ms.numpy(), t1_star_ms) + 0.005
    )
    assert abs(float(np.median(fit.t1_star_ms.numpy())) / t1_star_ms - 1.0) < 0.01
    assert abs(float(np.median(fit.t1_ms.numpy())) / (t1_star_ms * (b / a - 1.0)) - 1.0) < 0.01
