"""Photon tracking through a voxelised μ-map (numba kernels); μ is piecewise constant per voxel
and 0 outside the grid.

Two independent methods:

- :meth:`MuMap.trace` / :meth:`MuMap.line_integrals`: exact Amanatides–Woo voxel walk; a photon interacts
  where the optical depth ``∫μ dl`` along its path first reaches its ``threshold``.
- :meth:`MuMap.track`: Woodcock (delta) tracking, used by the simulator: tentative flights are drawn
  with the majorant ``μ_max`` and accepted as real interactions with probability ``μ(x)/μ_max``.  It
  samples the interaction point from exactly the same distribution (survival ``exp(-∫μ)``) with a
  handful of steps per photon instead of one per voxel.  The tests check it against the voxel walk.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from recon.tof.geometry import ImageGrid


@numba.njit(cache=True, inline="always")
def _slab(p: float, d: float, lo: float, hi: float, t0: float, t1: float) -> tuple[float, float]:
    if abs(d) < 1e-15:
        if p < lo or p >= hi:
            return 1.0, 0.0
        return t0, t1
    ta = (lo - p) / d
    tb = (hi - p) / d
    if ta > tb:
        ta, tb = tb, ta
    return max(t0, ta), min(t1, tb)


@numba.njit(cache=True, inline="always")
def _axis_start(p: float, d: float, lo: float, v: float, n: int, t: float) -> tuple[int, int, float, float]:
    index = math.floor((p + t * d - lo) / v)
    index = min(max(index, 0), n - 1)
    if d > 0:
        return index, 1, (lo + (index + 1) * v - p) / d, v / d
    if d < 0:
        return index, -1, (lo + index * v - p) / d, -v / d
    return index, 0, np.inf, np.inf


@numba.njit(cache=True)
def _trace_one(
    origin: np.ndarray,
    direction: np.ndarray,
    threshold: float,
    mu: np.ndarray,
    lo: np.ndarray,
    size: np.ndarray,
) -> tuple[float, float]:
    nz, ny, nx = mu.shape
    px, py, pz = origin[0], origin[1], origin[2]
    dx, dy, dz = direction[0], direction[1], direction[2]
    t0, t1 = 0.0, 1e30
    t0, t1 = _slab(px, dx, lo[0], lo[0] + nx * size[0], t0, t1)
    t0, t1 = _slab(py, dy, lo[1], lo[1] + ny * size[1], t0, t1)
    t0, t1 = _slab(pz, dz, lo[2], lo[2] + nz * size[2], t0, t1)
    if t0 >= t1:
        return 0.0, np.inf
    ix, sx, tx, ddx = _axis_start(px, dx, lo[0], size[0], nx, t0)
    iy, sy, ty, ddy = _axis_start(py, dy, lo[1], size[1], ny, t0)
    iz, sz, tz, ddz = _axis_start(pz, dz, lo[2], size[2], nz, t0)
    t = t0
    integral = 0.0
    while True:
        t_next = min(tx, ty, tz, t1)
        m = mu[iz, iy, ix]
        if m > 0.0:
            step = m * (t_next - t)
            if integral + step >= threshold:
                return threshold, t + (threshold - integral) / m
            integral += step
        if t_next >= t1:
            break
        t = t_next
        if tx <= ty and tx <= tz:
            ix += sx
            tx += ddx
            if ix < 0 or ix >= nx:
                break
        elif ty <= tz:
            iy += sy
            ty += ddy
            if iy < 0 or iy >= ny:
                break
        else:
            iz += sz
            tz += ddz
            if iz < 0 or iz >= nz:
                break
    return integral, np.inf


@numba.njit(cache=True, parallel=True)
def _trace_many(
    origins: np.ndarray,
    directions: np.ndarray,
    thresholds: np.ndarray,
    mu: np.ndarray,
    lo: np.ndarray,
    size: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    n = origins.shape[0]
    integrals = np.empty(n, np.float64)
    stops = np.empty(n, np.float64)
    for i in numba.prange(n):
        integrals[i], stops[i] = _trace_one(origins[i], directions[i], thresholds[i], mu, lo, size)
    return integrals, stops


@numba.njit(cache=True)
def _woodcock_many(
    origins: np.ndarray,
    directions: np.ndarray,
    scales: np.ndarray,
    rng: np.random.Generator,
    mu: np.ndarray,
    lo: np.ndarray,
    size: np.ndarray,
    mu_max: float,
) -> np.ndarray:
    nz, ny, nx = mu.shape
    n = origins.shape[0]
    stops = np.full(n, np.inf)
    for i in range(n):
        px, py, pz = origins[i, 0], origins[i, 1], origins[i, 2]
        dx, dy, dz = directions[i, 0], directions[i, 1], directions[i, 2]
        t0, t1 = 0.0, 1e30
        t0, t1 = _slab(px, dx, lo[0], lo[0] + nx * size[0], t0, t1)
        t0, t1 = _slab(py, dy, lo[1], lo[1] + ny * size[1], t0, t1)
        t0, t1 = _slab(pz, dz, lo[2], lo[2] + nz * size[2], t0, t1)
        inverse_majorant = 1.0 / (scales[i] * mu_max)
        t = t0
        while t0 < t1:
            t += rng.exponential() * inverse_majorant
            if t >= t1:
                break
            ix = min(max(int((px + t * dx - lo[0]) / size[0]), 0), nx - 1)
            iy = min(max(int((py + t * dy - lo[1]) / size[1]), 0), ny - 1)
            iz = min(max(int((pz + t * dz - lo[2]) / size[2]), 0), nz - 1)
            if rng.random() * mu_max < mu[iz, iy, ix]:
                stops[i] = t
                break
    return stops


class MuMap:
    """A μ-map prepared for photon tracking: μ in 1/mm (float32, C order) and the grid's corner.

    Args:
        grid: the voxel grid of ``mu_per_cm``.
        mu_per_cm: linear attenuation coefficients at 511 keV, shape ``grid.shape_zyx``, 1/cm.
    """

    def __init__(self, grid: ImageGrid, mu_per_cm: np.ndarray) -> None:
        if mu_per_cm.shape != grid.shape_zyx:
            raise ValueError(f"μ-map shape {mu_per_cm.shape} does not match the grid {grid.shape_zyx}")
        self.grid = grid
        self.mu_per_mm = np.ascontiguousarray(mu_per_cm, dtype=np.float32) / np.float32(10.0)
        lower_zyx, _ = grid.bounds_mm()
        self.lower_xyz_mm = np.ascontiguousarray(lower_zyx[::-1], dtype=np.float64)
        self.voxel_xyz_mm = np.ascontiguousarray(np.asarray(grid.voxel_size_mm, dtype=np.float64)[::-1])
        self.mu_max_per_mm = float(self.mu_per_mm.max())

    def track(
        self, origins_mm: np.ndarray, directions: np.ndarray, mu_scale: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Woodcock-track photons until their first interaction.

        Args:
            origins_mm: start points, ``(n, 3)`` float64 (x, y, z) mm.
            directions: unit directions, ``(n, 3)`` float64.
            mu_scale: factor on μ for each photon (cross-section at its energy relative to 511 keV), ``(n,)``.
            rng: random generator (flight lengths and acceptance tests).

        Returns:
            Path length to the interaction point, ``(n,)`` float64 mm; ``inf`` for photons that escape.
        """
        n = origins_mm.shape[0]
        stops = np.full(n, np.inf)
        if self.mu_max_per_mm <= 0.0 or n == 0:
            return stops
        return _woodcock_many(
            np.ascontiguousarray(origins_mm, dtype=np.float64),
            np.ascontiguousarray(directions, dtype=np.float64),
            np.ascontiguousarray(mu_scale, dtype=np.float64),
            rng,
            self.mu_per_mm,
            self.lower_xyz_mm,
            self.voxel_xyz_mm,
            self.mu_max_per_mm,
        )

    def trace(
        self, origins_mm: np.ndarray, directions: np.ndarray, thresholds: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Track photons until they interact.

        Args:
            origins_mm: start points, ``(n, 3)`` float64 (x, y, z) mm.
            directions: unit directions, ``(n, 3)`` float64.
            thresholds: optical depth at which each photon interacts, ``(n,)`` float64 (``inf``: never).

        Returns:
            ``(integral, stop_mm)``: the line integral ``∫μ dl`` travelled (equal to the threshold for
            photons that interact), and the path length to the interaction point (``inf`` for photons
            that leave the μ-map).
        """
        return _trace_many(
            np.ascontiguousarray(origins_mm, dtype=np.float64),
            np.ascontiguousarray(directions, dtype=np.float64),
            np.ascontiguousarray(thresholds, dtype=np.float64),
            self.mu_per_mm,
            self.lower_xyz_mm,
            self.voxel_xyz_mm,
        )

    def line_integrals(self, origins_mm: np.ndarray, directions: np.ndarray) -> np.ndarray:
        """``∫μ dl`` (dimensionless) from each origin to infinity along its direction, ``(n,)`` float64."""
        integrals, _ = self.trace(origins_mm, directions, np.full(origins_mm.shape[0], np.inf))
        return integrals
