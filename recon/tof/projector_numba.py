"""Multi-threaded CPU Joseph projectors (numba, ``parallel=True``), TOF and non-TOF by separate kernels.

Same method and formulas as :mod:`recon.tof.projector_torch` (see :mod:`recon.tof.projector_common`), but
each event only visits the voxel planes where it can contribute: the planes of the segment whose other two
coordinates fall within one voxel of the image and, for TOF, whose position along the LOR lies within the
truncated kernel's reach of the event's bin (≈ 56 of ≈ 200 planes for a Signa-like event at 2.78 mm).  Those
ranges are widened by one plane and every sample is still checked exactly, so the result is that of the
full sweep.

Each event is two loops: :func:`_sample_weights` fills a per-thread scratch array with the weight of every
sample (step length × TOF weight; independent iterations without data-dependent branches, so many samples
are in flight at once), then the Joseph loop interpolates with those weights.  The TOF weight of a bin with
finite edges comes from the piecewise-polynomial tables of :mod:`recon.tof.tof_tables` (exact to ≈ 1e-13
relative), the edge bins ±K from the erf formula; together ≈ 10 ns per sample against ≈ 65 ns for the four
libm ``erf`` per sample before (Signa-like TOF forward 5.5 → 2.1 µs per event and thread).

No ``fastmath``: it would let the compiler contract and reorder the weight arithmetic differently in the
forward and the back kernel, and the back projector must stay the exact adjoint (to float rounding).
The back projection gives each thread its own image and sums them at the end (no atomics on the CPU).
Events are projected in :func:`locality_order` (grouped by the image block they touch; the callers in
:mod:`recon.tof.projectors` permute them with :func:`in_order` and the forward values back), so that
consecutive events find their voxels in cache: ≈ 1.25× faster TOF and ≈ 2.5× faster non-TOF on 2 threads
on the Signa-size image than in acquisition order.
The kernels take the scanner/grid/TOF constants as one tuple (:func:`recon.tof.projectors.numba_geometry`).
Memory: the kernels read (and the back kernel writes) the image in two layouts, (z, y, x) for events whose
dominant axis is x or z and (z, x, y) for those whose dominant axis is y, so that consecutive samples of a
sweep are neighbours in memory; this more than halves the time on a 2.78 mm Signa-size image.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_INF_EDGE = 1.0e15


@numba.njit(cache=True, nogil=True)
def _erf_difference(upper: float, lower: float) -> float:  # pragma: no cover - compiled
    if lower >= 0.0:
        return 0.5 * (math.erfc(lower) - math.erfc(upper))
    if upper <= 0.0:
        return 0.5 * (math.erfc(-upper) - math.erfc(-lower))
    return 0.5 * (math.erf(upper) - math.erf(lower))


@numba.njit(cache=True, nogil=True)
def _tof_weight(
    s: float, b: int, sigma: float, delta: float, k: int, window: float
) -> float:  # pragma: no cover
    b_lo = min(max(math.ceil((s - window) / delta), -k), k)
    b_hi = min(max(math.floor((s + window) / delta), -k), k)
    if b < b_lo or b > b_hi:
        return 0.0
    scale = 1.0 / (math.sqrt(2.0) * sigma)
    lower = -_INF_EDGE if b <= -k else (b - 0.5) * delta
    upper = _INF_EDGE if b >= k else (b + 0.5) * delta
    raw = _erf_difference((upper - s) * scale, (lower - s) * scale)
    n_lower = -_INF_EDGE if b_lo <= -k else (b_lo - 0.5) * delta
    n_upper = _INF_EDGE if b_hi >= k else (b_hi + 0.5) * delta
    return raw / _erf_difference((n_upper - s) * scale, (n_lower - s) * scale)


@numba.njit(cache=True, nogil=True, inline="always")
def _poly(v, coefficients):  # type: ignore[no-untyped-def]  # pragma: no cover
    """A :class:`recon.tof.tof_tables.PolyTable` (degree 7) at the cell coordinate v = (x - start)·inv_width."""
    cell = min(max(int(v), 0), coefficients.shape[0] - 1)  # v ≥ 0 in use: int() is floor
    u = 2.0 * (v - cell) - 1.0
    c = coefficients
    r = cell
    return (
        (((((c[r, 0] * u + c[r, 1]) * u + c[r, 2]) * u + c[r, 3]) * u + c[r, 4]) * u + c[r, 5]) * u + c[r, 6]
    ) * u + c[r, 7]


@numba.njit(cache=True, nogil=True)
def _sample_weights(
    qa, da, length, step, k_min, n, use_tof, tof_bin, sigma, delta, k, window, g_coef, t_coef, axes, out
):  # type: ignore[no-untyped-def]  # pragma: no cover
    """out[j] = weight (mm) of the sample on plane k_min + j: the step length times, for TOF, the bin's weight;
    0 outside the segment or the TOF window.

    For a bin with finite edges (|b| < K) the weight is G(|s - bΔ|) / (1 - T(fᵤ) - T(fₗ)) from the tables of
    :mod:`recon.tof.tof_tables`, with the kept bin range [b_lo, b_hi] from the same arithmetic as
    :func:`_tof_weight` and fᵤ, fₗ the fractional parts of (s ± W)/Δ that place its outer edges; the edge bins
    ±K use the erf formula.  Each iteration is independent of the others (no branch on earlier samples), so
    the loop runs many samples in flight and its cost is throughput, not latency."""
    inv_da = 1.0 / da
    if not use_tof:
        for j in range(n):
            t = (k_min + j - qa) * inv_da
            out[j] = step if 0.0 <= t <= 1.0 else 0.0
        return
    if tof_bin <= -k or tof_bin >= k:
        for j in range(n):
            t = (k_min + j - qa) * inv_da
            inside = 0.0 <= t <= 1.0
            out[j] = (
                step * _tof_weight((t - 0.5) * length, tof_bin, sigma, delta, k, window) if inside else 0.0
            )
        return
    b_delta = tof_bin * delta
    inv_delta = 1.0 / delta
    b_float, k_float = float(tof_bin), float(k)
    g_start, g_inv, t_start, t_inv = axes[0], axes[1], axes[2], axes[3]
    for j in range(n):  # every term evaluated, then selected: no branch, ≈ 2× faster than skipping the tails
        t = (k_min + j - qa) * inv_da
        s = (t - 0.5) * length
        u = (s + window) * inv_delta
        v = (s - window) * inv_delta
        floor_u = np.floor(u)  # b_hi before clamping to ±K
        ceil_v = np.ceil(v)  # b_lo before clamping
        raw = _poly((abs(s - b_delta) - g_start) * g_inv, g_coef)
        tail_upper = _poly((u - floor_u - t_start) * t_inv, t_coef)
        tail_lower = _poly((ceil_v - v - t_start) * t_inv, t_coef)
        tail_upper = 0.0 if floor_u >= k_float else tail_upper  # b_hi = K: the range reaches +∞
        tail_lower = 0.0 if ceil_v <= -k_float else tail_lower
        kept = (ceil_v <= b_float) & (b_float <= floor_u) & (t >= 0.0) & (t <= 1.0)
        out[j] = step * raw / (1.0 - tail_upper - tail_lower) if kept else 0.0


@numba.njit(cache=True, nogil=True)
def _axis_t_range(
    q1: float, dq: float, n: int, t_lo: float, t_hi: float
) -> tuple[float, float]:  # pragma: no cover
    """Narrow [t_lo, t_hi] to where the coordinate q1 + t·dq lies within (-1, n)."""
    if dq == 0.0:
        if not (-1.0 < q1 < n):
            return 1.0, 0.0
        return t_lo, t_hi
    t0 = (-1.0 - q1) / dq
    t1 = (n - q1) / dq
    return max(t_lo, min(t0, t1)), min(t_hi, max(t0, t1))


@numba.njit(cache=True, nogil=True)
def _geometry(p1, p2, origin, voxel, shape):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Index coordinates along the (dominant a, b, c) axes with their sizes and strides in the image layout
    chosen for the event, the layout, the LOR length (mm) and the t range that can touch the image."""
    qz = (p1[2] - origin[0]) / voxel[0]
    qy = (p1[1] - origin[1]) / voxel[1]
    qx = (p1[0] - origin[2]) / voxel[2]
    dz = (p2[2] - origin[0]) / voxel[0] - qz
    dy = (p2[1] - origin[1]) / voxel[1] - qy
    dx = (p2[0] - origin[2]) / voxel[2] - qx
    length = math.sqrt((dz * voxel[0]) ** 2 + (dy * voxel[1]) ** 2 + (dx * voxel[2]) ** 2)
    nz, ny, nx = shape[0], shape[1], shape[2]
    layout = 0  # 0: the (z, y, x) image, 1: its (z, x, y) copy, so that the dominant axis is contiguous
    if abs(dz) >= abs(dy) and abs(dz) >= abs(dx):
        q = (qz, dz, nz, ny * nx, qy, dy, ny, nx, qx, dx, nx, 1)
    elif abs(dy) >= abs(dx):
        q = (qy, dy, ny, 1, qz, dz, nz, nx * ny, qx, dx, nx, ny)
        layout = 1
    else:
        q = (qx, dx, nx, 1, qz, dz, nz, ny * nx, qy, dy, ny, nx)
    t_lo, t_hi = _axis_t_range(q[4], q[5], q[6], 0.0, 1.0)
    t_lo, t_hi = _axis_t_range(q[8], q[9], q[10], t_lo, t_hi)
    return q, layout, length, t_lo, t_hi


@numba.njit(cache=True, nogil=True)
def _plane_range(
    q1a: float, dqa: float, t_lo: float, t_hi: float, n_planes: int
) -> tuple[int, int]:  # pragma: no cover
    if t_lo > t_hi:
        return 1, 0
    ka = q1a + t_lo * dqa
    kb = q1a + t_hi * dqa
    k_min = max(0, math.floor(min(ka, kb)) - 1)
    k_max = min(n_planes - 1, math.ceil(max(ka, kb)) + 1)
    return k_min, k_max


@numba.njit(cache=True, nogil=True)
def _tof_t_range(b: int, length: float, sigma: float, delta: float, k: int, n_sigmas: float):  # type: ignore[no-untyped-def]  # pragma: no cover
    window = n_sigmas * sigma + 0.5 * delta
    margin = 1e-6 * (abs(b) * delta + window)  # bin b is kept exactly for s in [bΔ - W, bΔ + W]
    s_lo = -_INF_EDGE if b <= -k else b * delta - window - margin
    s_hi = _INF_EDGE if b >= k else b * delta + window + margin
    return s_lo / length + 0.5, s_hi / length + 0.5, window


@numba.njit(cache=True, nogil=True)
def _event_line(image_zyx, image_zxy, p1, p2, tof_bin, geometry, weights, value, adjoint):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Forward (returns the line integral) or, with ``adjoint``, adds ``value``·weights into the image.

    ``geometry`` is the tuple of :func:`recon.tof.projectors.numba_geometry`; ``weights`` is scratch space
    of at least :func:`scratch_size` float64."""
    origin, voxel, shape, sigma, delta, n_tof, n_sigmas, use_tof, g_coef, t_coef, axes = geometry
    q, layout, length, t_lo, t_hi = _geometry(p1, p2, origin, voxel, shape)
    image = image_zxy if layout == 1 else image_zyx
    qa, da, na, sa, qb, db, nb, sb, qc, dc, nc, sc = q
    k = n_tof // 2
    window = 0.0
    if use_tof:
        tt_lo, tt_hi, window = _tof_t_range(tof_bin, length, sigma, delta, k, n_sigmas)
        t_lo = max(t_lo, tt_lo)
        t_hi = min(t_hi, tt_hi)
    k_min, k_max = _plane_range(qa, da, t_lo, t_hi, na)
    n = k_max - k_min + 1
    if n <= 0:
        return 0.0
    step = length / abs(da)
    _sample_weights(
        qa, da, length, step, k_min, n, use_tof, tof_bin, sigma, delta, k, window, g_coef, t_coef, axes, weights
    )  # fmt: skip
    acc = 0.0
    inv_da = 1.0 / da
    for j in range(n):
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
        w00 = w * (1.0 - fb) * (1.0 - fc)
        w10 = w * fb * (1.0 - fc)
        w01 = w * (1.0 - fb) * fc
        w11 = w * fb * fc
        base = kk * sa + i0 * sb + j0 * sc
        in_i0 = 0 <= i0 < nb
        in_i1 = 0 <= i0 + 1 < nb
        in_j0 = 0 <= j0 < nc
        in_j1 = 0 <= j0 + 1 < nc
        if adjoint:
            if in_i0 and in_j0:
                image[base] += value * w00
            if in_i1 and in_j0:
                image[base + sb] += value * w10
            if in_i0 and in_j1:
                image[base + sc] += value * w01
            if in_i1 and in_j1:
                image[base + sb + sc] += value * w11
        else:
            if in_i0 and in_j0:
                acc += image[base] * w00
            if in_i1 and in_j0:
                acc += image[base + sb] * w10
            if in_i0 and in_j1:
                acc += image[base + sc] * w01
            if in_i1 and in_j1:
                acc += image[base + sb + sc] * w11
    return acc


@numba.njit(cache=True, nogil=True)
def scratch_size(shape):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Samples an event can have: planes of the largest image dimension plus the ±1 margins."""
    return max(shape[0], max(shape[1], shape[2])) + 4


LOCALITY_BLOCK_VOXELS = 8
"""Edge (voxels) of the cubic image blocks by which :func:`locality_order` groups events."""


@numba.njit(cache=True, parallel=True)
def locality_order(starts, ends, tof_bins, geometry):  # type: ignore[no-untyped-def]  # pragma: no cover
    """A permutation of the events (int64, (n_events,)) that visits them block by block: grouped by dominant
    axis (which image layout they sweep), then by the 8-voxel image block that holds their centre (the TOF
    bin's centre for TOF, the LOR midpoint without), blocks in (z, y, x) order, events of a block in input
    order (a stable counting sort, O(n)).

    Consecutive events then read and write the same image neighbourhood, so the kernels find it in cache:
    on the Signa-like 2.78 mm grid the TOF forward + back takes ≈ 0.8× and the non-TOF ≈ 0.4× the time of
    random event order on 2 threads (``benchmarks/RESULTS.md``).  The order only changes the summation
    order of the back projection (float rounding), never the per-event weights."""
    origin, voxel, shape, delta, use_tof = geometry[0], geometry[1], geometry[2], geometry[4], geometry[7]
    block = LOCALITY_BLOCK_VOXELS
    n_blocks = np.empty(3, dtype=np.int64)
    for d in range(3):
        n_blocks[d] = (shape[d] + block - 1) // block
    n_events = starts.shape[0]
    keys = np.empty(n_events, dtype=np.int64)
    for e in numba.prange(n_events):
        p1, p2 = starts[e], ends[e]
        d_xyz = (p2[0] - p1[0], p2[1] - p1[1], p2[2] - p1[2])
        fraction = 0.5  # of the way from p1 to p2
        if use_tof:
            length = math.sqrt(d_xyz[0] ** 2 + d_xyz[1] ** 2 + d_xyz[2] ** 2)
            if length > 0.0:
                fraction = min(max(0.5 + tof_bins[e] * delta / length, 0.0), 1.0)
        key = 0
        for d in range(3):  # image axis d = (z, y, x) is scanner axis 2 - d
            centre = p1[2 - d] + fraction * d_xyz[2 - d]
            index = math.floor((centre - origin[d]) / (voxel[d] * block))
            key = key * n_blocks[d] + min(max(index, 0), n_blocks[d] - 1)
        adx, ady, adz = abs(d_xyz[0]), abs(d_xyz[1]), abs(d_xyz[2])
        axis = 0 if (adz >= ady and adz >= adx) else (1 if ady >= adx else 2)  # as in _geometry
        keys[e] = axis * n_blocks[0] * n_blocks[1] * n_blocks[2] + key
    first = np.zeros(3 * n_blocks[0] * n_blocks[1] * n_blocks[2] + 1, dtype=np.int64)
    for e in range(n_events):
        first[keys[e] + 1] += 1
    for i in range(1, first.shape[0]):
        first[i] += first[i - 1]
    order = np.empty(n_events, dtype=np.int64)
    for e in range(n_events):
        order[first[keys[e]]] = e
        first[keys[e]] += 1
    return order


@numba.njit(cache=True, parallel=True)
def in_order(order, starts, ends, tof_bins, values):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Copies of the event arrays (and per-event ``values``) permuted by ``order``: the kernels then read them
    contiguously (reading them through ``order`` costs ≈ 0.2 µs per event in cache misses)."""
    n_events = order.shape[0]
    s = np.empty_like(starts)
    t = np.empty_like(ends)
    b = np.empty_like(tof_bins)
    v = np.empty_like(values)
    for i in numba.prange(n_events):
        e = order[i]
        for d in range(3):
            s[i, d] = starts[e, d]
            t[i, d] = ends[e, d]
        b[i] = tof_bins[e]
        v[i] = values[e]
    return s, t, b, v


@numba.njit(cache=True, parallel=True)
def forward_kernel(image_zyx, image_zxy, starts, ends, tof_bins, geometry, out):  # type: ignore[no-untyped-def]  # pragma: no cover
    """out[e] = projection along event e (TOF when the geometry's ``use_tof``) of the flat image, given in the
    two layouts (z, y, x) and (z, x, y): events whose dominant axis is y read the second so that their sweep is
    contiguous.  Fastest with the events in :func:`locality_order`."""
    n_events = starts.shape[0]
    n_parts = max(1, min(n_events, 256))  # chunks of events, each with its scratch buffer
    for part in numba.prange(n_parts):
        weights = np.empty(scratch_size(geometry[2]), dtype=np.float64)
        for e in range(part * n_events // n_parts, (part + 1) * n_events // n_parts):
            out[e] = _event_line(
                image_zyx, image_zxy, starts[e], ends[e], tof_bins[e], geometry, weights, 0.0, False
            )


@numba.njit(cache=True, parallel=True)
def back_kernel(values, starts, ends, tof_bins, geometry, partial_zyx, partial_zxy):  # type: ignore[no-untyped-def]  # pragma: no cover
    """partial_*[part] += Σ_{events of that part} value·weights, in the layouts (z, y, x) and (z, x, y); the caller
    sums the parts and adds the transposed second layout to the first.  Part p takes the p-th contiguous
    run of events: with the events in :func:`locality_order` each thread writes one region of its images."""
    n_parts = partial_zyx.shape[0]
    n_events = starts.shape[0]
    for part in numba.prange(n_parts):
        weights = np.empty(scratch_size(geometry[2]), dtype=np.float64)
        for e in range(part * n_events // n_parts, (part + 1) * n_events // n_parts):
            if values[e] != 0.0:
                _event_line(
                    partial_zyx[part], partial_zxy[part], starts[e], ends[e], tof_bins[e], geometry, weights,
                    values[e], True,
                )  # fmt: skip


@numba.njit(cache=True, parallel=True)
def sum_parts(partial_zyx, partial_zxy, shape):  # type: ignore[no-untyped-def]  # pragma: no cover
    """The (z, y, x) image Σ_part partial_zyx[part] + Σ_part partial_zxy[part] transposed back from (z, x, y):
    the back kernels' per-thread images reduced in one parallel pass over z (a z-plane of both layouts stays
    in cache, so the transposed read costs no more than the straight one)."""
    nz, ny, nx = shape[0], shape[1], shape[2]
    out = np.zeros((nz, ny, nx), dtype=partial_zyx.dtype)
    plane = ny * nx
    for z in numba.prange(nz):
        for part in range(partial_zyx.shape[0]):
            for y in range(ny):
                for x in range(nx):
                    out[z, y, x] += partial_zyx[part, z * plane + y * nx + x]
            for x in range(nx):
                for y in range(ny):
                    out[z, y, x] += partial_zxy[part, z * plane + x * ny + y]
    return out
