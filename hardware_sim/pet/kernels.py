"""Fused numba kernel of photon transport and detection (the simulator's hot loop).

One loop over photons does what :func:`hardware_sim.pet.transport.transport_photons` does with numpy
(Woodcock tracking to the first interaction, one Klein–Nishina Compton scatter with the μ scaled to
the new energy, a second tracking, and detection: cylinder entry, exponential depth in the crystal,
crystal cell with gaps, crystal efficiency, energy resolution and window).  The numpy version is the
readable reference; ``tests/hardware_sim/test_pet_kernels.py`` checks that both agree statistically.
Both kernels are multi-threaded over a fixed number of blocks, each with its own random stream
(:mod:`hardware_sim.pet.rng_kernel`) seeded from the ``numpy.random.Generator`` passed in, so results
depend on the seed only, not on the thread count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from hardware_sim.pet.detector import SCINTILLATOR_MU_PER_MM
from hardware_sim.pet.raytrace import MuMap, _slab
from hardware_sim.pet.rng_kernel import exponential, spawn_streams, standard_normal, uniform
from recon.tof.geometry import FWHM_PER_SIGMA, ScannerGeometry

_ELECTRON_KEV = 511.0


@dataclass(frozen=True)
class DetectorArrays:
    """Scanner constants for the kernel: ``geometry`` float64 ``(10,)`` and ``efficiencies`` float32."""

    geometry: np.ndarray
    n_crystals_per_ring: int
    n_rings: int
    efficiencies: np.ndarray

    @classmethod
    def of(cls, scanner: ScannerGeometry, efficiencies: np.ndarray) -> DetectorArrays:
        """Pack ``scanner`` and its true crystal efficiencies."""
        geometry = np.array(
            [
                scanner.ring_radius_mm,
                scanner.crystal_size_mm[2],
                scanner.crystal_size_mm[0]
                / 2.0
                * scanner.n_crystals_per_ring
                / (2.0 * np.pi * scanner.ring_radius_mm),
                scanner.ring_spacing_mm,
                scanner.crystal_size_mm[1] / 2.0,
                scanner.energy_resolution_percent / 100.0 / FWHM_PER_SIGMA,
                scanner.energy_window_kev[0],
                scanner.energy_window_kev[1],
                SCINTILLATOR_MU_PER_MM,
                (scanner.n_rings - 1) / 2.0,
            ]
        )
        return cls(
            geometry,
            scanner.n_crystals_per_ring,
            scanner.n_rings,
            np.ascontiguousarray(efficiencies, np.float32),
        )


@numba.njit(cache=True, inline="always")
def _track(px: float, py: float, pz: float, dx: float, dy: float, dz: float, scale: float, states: np.ndarray, k: int, mu: np.ndarray, lo: np.ndarray, size: np.ndarray, mu_max: float) -> float:  # fmt: skip
    """Woodcock tracking: path length to the first interaction, or inf."""
    if mu_max <= 0.0:
        return np.inf
    nz, ny, nx = mu.shape
    t0, t1 = 0.0, 1e30
    t0, t1 = _slab(px, dx, lo[0], lo[0] + nx * size[0], t0, t1)
    t0, t1 = _slab(py, dy, lo[1], lo[1] + ny * size[1], t0, t1)
    t0, t1 = _slab(pz, dz, lo[2], lo[2] + nz * size[2], t0, t1)
    inverse_majorant = 1.0 / (scale * mu_max)
    t = t0
    while t0 < t1:
        t += exponential(states, k) * inverse_majorant
        if t >= t1:
            return np.inf
        ix = min(max(int((px + t * dx - lo[0]) / size[0]), 0), nx - 1)
        iy = min(max(int((py + t * dy - lo[1]) / size[1]), 0), ny - 1)
        iz = min(max(int((pz + t * dz - lo[2]) / size[2]), 0), nz - 1)
        if uniform(states, k) * mu_max < mu[iz, iy, ix]:
            return t
    return np.inf


@numba.njit(cache=True, inline="always")
def _detect(px: float, py: float, pz: float, dx: float, dy: float, dz: float, energy: float, states: np.ndarray, k: int, g: np.ndarray, n_per_ring: int, n_rings: int, efficiencies: np.ndarray) -> tuple[int, float]:  # fmt: skip
    """Crystal id (or -1) and path length from the start point to the interaction in the crystal."""
    a = dx * dx + dy * dy
    if a < 1e-12:
        return -1, 0.0
    b = px * dx + py * dy
    c = px * px + py * py - g[0] * g[0]
    path = (-b + math.sqrt(max(b * b - a * c, 0.0))) / a + exponential(states, k) / g[8]
    x, y, z = px + path * dx, py + path * dy, pz + path * dz
    if x * x + y * y > (g[0] + g[1]) ** 2:
        return -1, path
    position = math.atan2(y, x) * (n_per_ring / (2.0 * math.pi))
    index = math.floor(position + 0.5)
    ring_position = z / g[3] + g[9]
    ring = math.floor(ring_position + 0.5)
    if abs(position - index) > g[2] or abs(ring_position - ring) * g[3] > g[4] or ring < 0 or ring >= n_rings:
        return -1, path
    crystal = int(ring) * n_per_ring + int(index) % n_per_ring
    if uniform(states, k) >= efficiencies[crystal]:
        return -1, path
    measured = energy * (1.0 + g[5] * math.sqrt(_ELECTRON_KEV / energy) * standard_normal(states, k))
    if measured < g[6] or measured > g[7]:
        return -1, path
    return crystal, path


@numba.njit(cache=True, inline="always")
def _kn_relative(energy: float) -> float:
    def sigma(k: float) -> float:
        log_term = math.log1p(2.0 * k)
        first = (1.0 + k) / k**2 * (2.0 * (1.0 + k) / (1.0 + 2.0 * k) - log_term / k)
        return first + log_term / (2.0 * k) - (1.0 + 3.0 * k) / (1.0 + 2.0 * k) ** 2

    return sigma(energy / _ELECTRON_KEV) / sigma(1.0)


@numba.njit(cache=True, inline="always")
def _perpendicular_basis(dx: float, dy: float, dz: float) -> tuple[float, float, float, float, float, float]:
    """Unit vectors a, b with (a, b, d) orthonormal, as :func:`hardware_sim.pet.physics.perpendicular_basis`."""
    if abs(dz) < 0.9:
        ax, ay, az = dy, -dx, 0.0
    else:
        ax, ay, az = 0.0, dz, -dy
    norm = math.sqrt(ax * ax + ay * ay + az * az)
    ax, ay, az = ax / norm, ay / norm, az / norm
    return ax, ay, az, dy * az - dz * ay, dz * ax - dx * az, dx * ay - dy * ax


@numba.njit(cache=True, inline="always")
def _compton(
    dx: float, dy: float, dz: float, states: np.ndarray, k: int
) -> tuple[float, float, float, float]:
    """Scatter a 511 keV photon: new direction (x, y, z) and energy (Klein–Nishina by rejection)."""
    while True:
        cos_t = 2.0 * uniform(states, k) - 1.0
        ratio = 1.0 / (2.0 - cos_t)
        if 2.0 * uniform(states, k) <= ratio * ratio * (ratio + 1.0 / ratio - (1.0 - cos_t * cos_t)):
            break
    ax, ay, az, bx, by, bz = _perpendicular_basis(dx, dy, dz)
    azimuth = 2.0 * math.pi * uniform(states, k)
    sin_t = math.sqrt(max(1.0 - cos_t * cos_t, 0.0))
    u, v = sin_t * math.cos(azimuth), sin_t * math.sin(azimuth)
    nx, ny, nz = cos_t * dx + u * ax + v * bx, cos_t * dy + u * ay + v * by, cos_t * dz + u * az + v * bz
    norm = math.sqrt(nx * nx + ny * ny + nz * nz)
    return nx / norm, ny / norm, nz / norm, _ELECTRON_KEV / (2.0 - cos_t)


@numba.njit(cache=True, parallel=True)
def _transport(origins: np.ndarray, directions: np.ndarray, states: np.ndarray, mu: np.ndarray, lo: np.ndarray, size: np.ndarray, mu_max: float, scatter: bool, g: np.ndarray, n_per_ring: int, n_rings: int, efficiencies: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    n = origins.shape[0]
    crystal = np.full(n, -1, np.int32)
    path = np.zeros(n)
    scattered = np.zeros(n, np.bool_)
    n_blocks = states.shape[0]
    for k in numba.prange(n_blocks):  # block k: photons [k·n/B, (k+1)·n/B) with random stream k
        for i in range(k * n // n_blocks, (k + 1) * n // n_blocks):
            px, py, pz = origins[i, 0], origins[i, 1], origins[i, 2]
            dx, dy, dz = directions[i, 0], directions[i, 1], directions[i, 2]
            stop = _track(px, py, pz, dx, dy, dz, 1.0, states, k, mu, lo, size, mu_max)
            if stop == np.inf:
                crystal[i], path[i] = _detect(
                    px, py, pz, dx, dy, dz, _ELECTRON_KEV, states, k, g, n_per_ring, n_rings, efficiencies
                )
                continue
            if not scatter:
                continue
            qx, qy, qz = px + stop * dx, py + stop * dy, pz + stop * dz
            ex, ey, ez, energy = _compton(dx, dy, dz, states, k)
            if _track(qx, qy, qz, ex, ey, ez, _kn_relative(energy), states, k, mu, lo, size, mu_max) < np.inf:
                continue
            hit, extra = _detect(
                qx, qy, qz, ex, ey, ez, energy, states, k, g, n_per_ring, n_rings, efficiencies
            )
            crystal[i], path[i], scattered[i] = hit, stop + extra, hit >= 0
    return crystal, path, scattered


@numba.njit(cache=True, parallel=True)
def _emit(positions: np.ndarray, cones: np.ndarray, states: np.ndarray, positron_half_mean_mm: float, sigma_rad: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    n = positions.shape[0]
    origins = np.empty((2 * n, 3))
    directions = np.empty((2 * n, 3))
    n_blocks = states.shape[0]
    for k in numba.prange(n_blocks):  # block k: decays [k·n/B, (k+1)·n/B) with random stream k
        for i in range(k * n // n_blocks, (k + 1) * n // n_blocks):
            length = positron_half_mean_mm * (
                exponential(states, k) + exponential(states, k)
            )  # Gamma(2, mean/2)
            u, phi = 2.0 * uniform(states, k) - 1.0, 2.0 * math.pi * uniform(states, k)
            s = math.sqrt(max(1.0 - u * u, 0.0))
            ox = positions[i, 0] + length * s * math.cos(phi)
            oy = positions[i, 1] + length * s * math.sin(phi)
            oz = positions[i, 2] + length * u
            origins[i, 0], origins[i, 1], origins[i, 2] = ox, oy, oz
            origins[n + i, 0], origins[n + i, 1], origins[n + i, 2] = ox, oy, oz
            u, phi = (2.0 * uniform(states, k) - 1.0) * cones[i], 2.0 * math.pi * uniform(states, k)
            s = math.sqrt(max(1.0 - u * u, 0.0))
            dx, dy, dz = s * math.cos(phi), s * math.sin(phi), u
            directions[i, 0], directions[i, 1], directions[i, 2] = dx, dy, dz
            ax, ay, az, bx, by, bz = _perpendicular_basis(dx, dy, dz)
            ga, gb = sigma_rad * standard_normal(states, k), sigma_rad * standard_normal(states, k)
            ex, ey, ez = -dx + ga * ax + gb * bx, -dy + ga * ay + gb * by, -dz + ga * az + gb * bz
            norm = math.sqrt(ex * ex + ey * ey + ez * ez)
            directions[n + i, 0], directions[n + i, 1], directions[n + i, 2] = ex / norm, ey / norm, ez / norm
    return origins, directions


def emit_photon_pairs(
    positions_mm: np.ndarray,
    max_abs_cos_polar: np.ndarray,
    mean_positron_range_mm: float,
    non_collinearity_fwhm_rad: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Annihilation photon pairs of decays at ``positions_mm`` ``(n, 3)``: photon origins and unit
    directions, ``(2n, 3)`` each (first photons, then their partners; origin ``i`` = ``n + i`` is the
    annihilation point).  Same distributions as :mod:`hardware_sim.pet.physics` (positron range
    Gamma(2, mean/2) isotropic, first photon uniform in its cone, partner opposite with Gaussian
    non-collinearity)."""
    return _emit(
        np.ascontiguousarray(positions_mm, dtype=np.float64),
        np.ascontiguousarray(max_abs_cos_polar, dtype=np.float64),
        spawn_streams(rng),
        mean_positron_range_mm / 2.0,
        non_collinearity_fwhm_rad / FWHM_PER_SIGMA,
    )


def transport_photons_fast(
    origins_mm: np.ndarray,
    directions: np.ndarray,
    mu_map: MuMap | None,
    detector: DetectorArrays,
    scatter: bool,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Transport and detect 511 keV photons; returns ``(crystal_id int32, path_mm, scattered)``."""
    if mu_map is None:
        mu, lo, size, mu_max = np.zeros((1, 1, 1), np.float32), np.zeros(3), np.ones(3), 0.0
    else:
        mu, lo, size, mu_max = (
            mu_map.mu_per_mm,
            mu_map.lower_xyz_mm,
            mu_map.voxel_xyz_mm,
            mu_map.mu_max_per_mm,
        )
    return _transport(
        np.ascontiguousarray(origins_mm, dtype=np.float64),
        np.ascontiguousarray(directions, dtype=np.float64),
        spawn_streams(rng), mu, lo, size, mu_max, scatter,
        detector.geometry, detector.n_crystals_per_ring, detector.n_rings, detector.efficiencies,
    )  # fmt: skip
