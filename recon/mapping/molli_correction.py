"""Sequence-aware correction of the residual MOLLI bias (after Shao et al., MRM 2016, Bloch-equation based).

The Look-Locker corrected T1 of :func:`recon.mapping.molli.fit_molli` is still biased (module docstring
there).  This correction simulates the *announced* sequence with the Bloch equations for a range of true
T1 — one on-resonance isochromat, ideal inversions at the block TIs before the images' k-space centres,
an α/2 start-up, ``n_pulses`` alternating ±α bSSFP pulses TR apart with the centre line at
``centre_pulse``, free relaxation in between, an *assumed* T2 (the readout saturation depends on it) — fits
each simulated series with the same three-parameter model and inverts the resulting monotonic map
T1 → T1_LL per pixel by interpolation.

What it needs from the data: the image times (from the readout time stamps), the block structure and first
TIs (header), flip angle and TR (header), readouts per image and the centre line's position in them.
What remains: the T2 of a pixel is not known (``assumed_t2_ms``; blood's T2 ≈ 250 ms ≠ 45 ms), nor its
off-resonance (bSSFP saturation varies with it), nor the inversion efficiency (taken as 1), nor the RR
variation inside the readouts.  Shapes: tables ``(G,)``; ``t1_ll_ms`` any shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from recon.mapping.molli import fit_molli


@dataclass(frozen=True)
class MolliSequence:
    """The announced MOLLI acquisition of one slice.

    ``centre_times_ms`` ``(n,)``: k-space centre time of each image (any common origin), ms;
    ``inversion_times_ms`` ``(b,)``: time of each inversion on the same clock, ms; ``n_pulses``,
    ``centre_pulse``: readout pulses per image and the index of the centre line; ``tr_ms``, ``flip_deg``.
    """

    centre_times_ms: tuple[float, ...]
    inversion_times_ms: tuple[float, ...]
    n_pulses: int
    centre_pulse: int
    tr_ms: float
    flip_deg: float


def simulate_series(seq: MolliSequence, t1_ms: torch.Tensor, t2_ms: float) -> torch.Tensor:
    """Centre-line signal of every image for every T1 of ``t1_ms`` ``(G,)`` → ``(n, G)`` (signed, M0 = 1)."""
    dtype, dev = torch.float64, t1_ms.device
    t1 = t1_ms.to(dtype)
    m = torch.zeros(3, t1.numel(), dtype=dtype, device=dev)
    m[2] = 1.0
    half = 0.5 * seq.tr_ms
    e1h, e2h = torch.exp(-half / t1), torch.exp(torch.tensor(-half / t2_ms, dtype=dtype, device=dev))
    alpha = torch.deg2rad(torch.tensor(seq.flip_deg, dtype=dtype))
    c, s = torch.cos(alpha), torch.sin(alpha)
    ch, sh = torch.cos(alpha / 2), torch.sin(alpha / 2)
    starts = [t - seq.centre_pulse * seq.tr_ms - half for t in seq.centre_times_ms]
    events = sorted(
        [(t, "inv", -1) for t in seq.inversion_times_ms] + [(t, "ro", i) for i, t in enumerate(starts)]
    )
    out = torch.zeros(len(starts), t1.numel(), dtype=dtype, device=dev)
    clock = events[0][0]
    for time, kind, index in events:
        dt = time - clock
        m[0:2] *= torch.exp(torch.tensor(-dt / t2_ms, dtype=dtype))
        m[2] = 1.0 + (m[2] - 1.0) * torch.exp(-dt / t1)
        if kind == "inv":
            m[2] = -m[2]
            m[0:2] = 0.0
            clock = time
            continue
        my, mz = m[1].clone(), m[2].clone()
        m[1], m[2] = ch * my - sh * mz, sh * my + ch * mz  # −α/2 start-up
        for k in range(seq.n_pulses):
            sign = 1.0 if k % 2 == 0 else -1.0
            m[0:2] *= e2h
            m[2] = 1.0 + (m[2] - 1.0) * e1h
            my, mz = m[1].clone(), m[2].clone()
            m[1], m[2] = c * my + sign * s * mz, -sign * s * my + c * mz
            m[0:2] *= e2h
            m[2] = 1.0 + (m[2] - 1.0) * e1h
            if k == seq.centre_pulse:
                out[index] = sign * m[1]
        m[0:2] = 0.0
        clock = time + half + seq.n_pulses * seq.tr_ms
    return out


def correction_table(
    seq: MolliSequence, t2_ms: float, t1_range_ms: tuple[float, float] = (100.0, 4000.0), n: int = 120
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(t1_ll_ms, t1_ms)`` ``(G,)``: the Look-Locker corrected T1 the fit returns for each true T1."""
    lo, hi = math.log(t1_range_ms[0]), math.log(t1_range_ms[1])
    t1 = torch.exp(torch.linspace(lo, hi, n, dtype=torch.float64))
    series = simulate_series(seq, t1, t2_ms)
    ti_rel = torch.tensor(
        [t - max(v for v in seq.inversion_times_ms if v <= t) for t in seq.centre_times_ms],
        dtype=torch.float64,
    )
    fit = fit_molli(series.abs(), ti_rel)
    t1_ll = fit.t1_ms
    keep = torch.cat(
        [torch.tensor([True]), torch.cummax(t1_ll, 0).values[1:] > torch.cummax(t1_ll, 0).values[:-1]]
    )
    return t1_ll[keep], t1[keep]  # the strictly increasing part


def apply_correction(t1_ll_ms: torch.Tensor, table: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Map measured Look-Locker T1 to T1 through the table (linear interpolation, linear extrapolation of
    the ratio T1/T1_LL beyond its ends)."""
    x, y = (v.to(t1_ll_ms.device, torch.float64) for v in table)
    v = t1_ll_ms.to(torch.float64)
    i = torch.searchsorted(x, v.clamp(x[0], x[-1])).clamp(1, x.numel() - 1)
    x0, x1, y0, y1 = x[i - 1], x[i], y[i - 1], y[i]
    w = (v.clamp(x[0], x[-1]) - x0) / (x1 - x0)
    ratio = (y0 + w * (y1 - y0)) / v.clamp(x[0], x[-1])
    return (v * ratio).to(t1_ll_ms.dtype)
