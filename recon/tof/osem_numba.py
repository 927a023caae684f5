"""Fused list-mode EM step on the CPU: for each event, forward-project, take the EM ratio, back-project.

For event e with forward projection pₑ = (A x)ₑ and additive term bₑ (randoms + scatter divided by the
event's multiplicative factor), the kernel adds Aₑᵀ · 1/(pₑ + bₑ) to the output.  The event's interpolation
taps and weights are computed once (same helpers and formulas as :mod:`recon.tof.projector_numba`) and
kept in a per-thread scratch buffer for the back projection, which halves the work of a separate
forward and back pass.  Threads accumulate into private images in the two memory layouts of
:mod:`recon.tof.projector_numba`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from recon.tof.projector_numba import _geometry, _plane_range, _sample_weights, _tof_t_range, scratch_size


@numba.njit(cache=True, nogil=True)
def _event_taps(p1, p2, tof_bin, geometry, weights, tap_index, tap_weight):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Fill (index, weight) of the event's taps; returns (n_taps, layout).  ``geometry``: the tuple of
    :func:`recon.tof.projectors.numba_geometry`."""
    origin, voxel, shape, sigma, delta, n_tof, n_sigmas, use_tof, g_coef, t_coef, axes = geometry
    q, layout, length, t_lo, t_hi = _geometry(p1, p2, origin, voxel, shape)
    qa, da, na, sa, qb, db, nb, sb, qc, dc, nc, sc = q
    k = n_tof // 2
    window = 0.0
    if use_tof:
        tt_lo, tt_hi, window = _tof_t_range(tof_bin, length, sigma, delta, k, n_sigmas)
        t_lo = max(t_lo, tt_lo)
        t_hi = min(t_hi, tt_hi)
    k_min, k_max = _plane_range(qa, da, t_lo, t_hi, na)
    n_samples = k_max - k_min + 1
    if n_samples <= 0:
        return 0, layout
    step = length / abs(da)
    _sample_weights(
        qa, da, length, step, k_min, n_samples, use_tof, tof_bin, sigma, delta, k, window, g_coef, t_coef, axes,
        weights,
    )  # fmt: skip
    inv_da = 1.0 / da
    n = 0
    for j in range(n_samples):
        w = weights[j]
        if w == 0.0:
            continue
        kk = k_min + j
        t = (kk - qa) * inv_da
        ub = qb + t * db
        uc = qc + t * dc
        fi = math.floor(ub)
        fj = math.floor(uc)
        fb = ub - fi
        fc = uc - fj
        i0 = int(fi)
        j0 = int(fj)
        base = kk * sa + i0 * sb + j0 * sc
        if 0 <= i0 and i0 + 1 < nb and 0 <= j0 and j0 + 1 < nc:  # all four taps inside: the common case
            tap_index[n] = base
            tap_index[n + 1] = base + sb
            tap_index[n + 2] = base + sc
            tap_index[n + 3] = base + sb + sc
            tap_weight[n] = w * ((1.0 - fb) * (1.0 - fc))
            tap_weight[n + 1] = w * (fb * (1.0 - fc))
            tap_weight[n + 2] = w * ((1.0 - fb) * fc)
            tap_weight[n + 3] = w * (fb * fc)
            n += 4
            continue
        for di in range(2):
            ii = i0 + di
            if ii < 0 or ii >= nb:
                continue
            wb = fb if di == 1 else 1.0 - fb
            for dj in range(2):
                jj = j0 + dj
                if jj < 0 or jj >= nc:
                    continue
                tap_index[n] = base + di * sb + dj * sc
                tap_weight[n] = w * (wb * (fc if dj == 1 else 1.0 - fc))
                n += 1
    return n, layout


@numba.njit(cache=True, parallel=True)
def em_ratio_backprojection(
    image_zyx, image_zxy, starts, ends, tof_bins, additive, geometry, out_zyx, out_zxy, forward_out
):  # type: ignore[no-untyped-def]  # pragma: no cover
    """out_*[part] += Σₑ Aₑᵀ/(Aₑx + bₑ); ``forward_out[e]`` receives Aₑx.  Events with Aₑx + bₑ ≤ 0 add nothing.
    Part p takes the p-th contiguous run of events: fastest with the events in
    :func:`recon.tof.projector_numba.locality_order`."""
    n_parts = out_zyx.shape[0]
    n_events = starts.shape[0]
    max_taps = 4 * scratch_size(geometry[2])
    for part in numba.prange(n_parts):
        weights = np.empty(scratch_size(geometry[2]), dtype=np.float64)
        tap_index = np.empty(max_taps, dtype=np.int64)
        tap_weight = np.empty(max_taps, dtype=np.float64)
        for e in range(part * n_events // n_parts, (part + 1) * n_events // n_parts):
            n, layout = _event_taps(starts[e], ends[e], tof_bins[e], geometry, weights, tap_index, tap_weight)
            img = image_zxy if layout == 1 else image_zyx
            acc = 0.0
            for j in range(n):
                acc += img[tap_index[j]] * tap_weight[j]
            forward_out[e] = acc
            denominator = acc + additive[e]
            if denominator <= 0.0:
                continue
            ratio = 1.0 / denominator
            out = out_zxy[part] if layout == 1 else out_zyx[part]
            for j in range(n):
                out[tap_index[j]] += ratio * tap_weight[j]
