"""Emission physics: positron range, annihilation photon pairs with non-collinearity, Compton scatter.

All functions are vectorised over photons and take an explicit ``numpy.random.Generator``.
Directions are unit vectors ``(n, 3)`` float64 in (x, y, z).
"""

from __future__ import annotations

import numpy as np

#: Electron rest energy, keV.
ELECTRON_REST_KEV = 511.0
#: F-18 positron range in water: mean 3-D displacement, mm (DESIGN.md: ≈ 0.6 mm).
F18_MEAN_POSITRON_RANGE_MM = 0.6
#: FWHM of the deviation from 180° of the two annihilation photons, rad (≈ 0.5°).
NON_COLLINEARITY_FWHM_RAD = np.deg2rad(0.5)


def isotropic_directions(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` unit vectors uniform on the sphere, ``(n, 3)`` float64."""
    return directions_in_cone(np.ones(n), rng)


def directions_in_cone(max_abs_cos_polar: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors uniform on the part of the sphere with ``|u_z| <= max_abs_cos_polar`` (per photon)."""
    cos_polar = rng.uniform(-1.0, 1.0, max_abs_cos_polar.shape[0]) * max_abs_cos_polar
    azimuth = rng.uniform(0.0, 2.0 * np.pi, max_abs_cos_polar.shape[0])
    sin_polar = np.sqrt(1.0 - cos_polar**2)
    return np.stack([sin_polar * np.cos(azimuth), sin_polar * np.sin(azimuth), cos_polar], axis=1)


def positron_range_offsets_mm(n: int, mean_range_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Displacement positron emission → annihilation, ``(n, 3)`` mm: isotropic, length ~ Gamma(2, mean/2)."""
    if mean_range_mm <= 0:
        return np.zeros((n, 3))
    length = rng.gamma(2.0, mean_range_mm / 2.0, n)
    return isotropic_directions(n, rng) * length[:, None]


def perpendicular_basis(directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to each direction and to each other, each ``(n, 3)``."""
    dx, dy, dz = directions[:, 0], directions[:, 1], directions[:, 2]
    use_z = np.abs(dz) < 0.9  # first = d x e_z, else d x e_x
    first = np.stack([np.where(use_z, dy, 0.0), np.where(use_z, -dx, dz), np.where(use_z, 0.0, -dy)], axis=1)
    first /= np.sqrt(np.einsum("ij,ij->i", first, first))[:, None]
    fx, fy, fz = first[:, 0], first[:, 1], first[:, 2]
    second = np.stack([dy * fz - dz * fy, dz * fx - dx * fz, dx * fy - dy * fx], axis=1)
    return first, second


def rotate_by_angles(directions: np.ndarray, polar_rad: np.ndarray, azimuth_rad: np.ndarray) -> np.ndarray:
    """Turn each direction by ``polar_rad`` around a random axis set by ``azimuth_rad``; unit ``(n, 3)``."""
    first, second = perpendicular_basis(directions)
    sin_polar = np.sin(polar_rad)[:, None]
    turned = (
        np.cos(polar_rad)[:, None] * directions
        + sin_polar * np.cos(azimuth_rad)[:, None] * first
        + sin_polar * np.sin(azimuth_rad)[:, None] * second
    )
    return turned / np.linalg.norm(turned, axis=1, keepdims=True)


def partner_directions(directions: np.ndarray, fwhm_rad: float, rng: np.random.Generator) -> np.ndarray:
    """Direction of the second annihilation photon: opposite to the first, with each transverse angle
    Gaussian of FWHM ``fwhm_rad`` (photon non-collinearity)."""
    if fwhm_rad <= 0:
        return -directions
    sigma = fwhm_rad / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    n = directions.shape[0]
    first, second = perpendicular_basis(directions)
    # small angles: tan(deviation) components along two perpendicular axes, then normalise
    turned = (
        -directions + rng.normal(0.0, sigma, n)[:, None] * first + rng.normal(0.0, sigma, n)[:, None] * second
    )
    return turned / np.sqrt(np.einsum("ij,ij->i", turned, turned))[:, None]


def compton_energy_kev(energy_kev: np.ndarray, cos_theta: np.ndarray) -> np.ndarray:
    """Photon energy after Compton scattering by angle θ, keV."""
    return energy_kev / (1.0 + energy_kev / ELECTRON_REST_KEV * (1.0 - cos_theta))


def klein_nishina_total_relative(energy_kev: np.ndarray) -> np.ndarray:
    """Total Klein–Nishina cross-section at ``energy_kev`` relative to its value at 511 keV."""

    def sigma(k: np.ndarray) -> np.ndarray:
        log_term = np.log1p(2.0 * k)
        a = (1.0 + k) / k**2 * (2.0 * (1.0 + k) / (1.0 + 2.0 * k) - log_term / k)
        return a + log_term / (2.0 * k) - (1.0 + 3.0 * k) / (1.0 + 2.0 * k) ** 2

    k = np.asarray(energy_kev, dtype=np.float64) / ELECTRON_REST_KEV
    return sigma(k) / sigma(np.array([1.0]))


def sample_klein_nishina_cos(energy_kev: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scattering-angle cosines from the Klein–Nishina distribution (rejection sampling), ``(n,)``."""
    n = energy_kev.shape[0]
    result = np.empty(n)
    pending = np.arange(n)
    while pending.size:
        cos_theta = rng.uniform(-1.0, 1.0, pending.size)
        ratio = 1.0 / (1.0 + energy_kev[pending] / ELECTRON_REST_KEV * (1.0 - cos_theta))  # E'/E, in (0, 1]
        density = ratio**2 * (ratio + 1.0 / ratio - (1.0 - cos_theta**2))  # <= 2
        accept = rng.uniform(0.0, 2.0, pending.size) <= density
        result[pending[accept]] = cos_theta[accept]
        pending = pending[~accept]
    return result
