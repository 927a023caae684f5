"""Static field inhomogeneity (B0 map) and the eddy-current background phase of phase contrast.

B0 (Hz) after shimming: a residual linear/quadratic term, a susceptibility bump at the inferolateral
heart–lung interface, a dip at the liver dome, and a steep rise towards the edge of the imaging volume
(|r_xy| > 190 mm); susceptibility offsets scale with B0, so every term is multiplied by B0 / 1.5 T.

Eddy-current phase (rad, velocity-encoded minus reference acquisition): smooth in the slice plane but
deliberately not a low-order polynomial: a sum of a wide Gaussian bump, a slow sinusoid and a linear
term in the in-plane coordinates (u along read, v along phase, in mm).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from hardware_sim.mr.anatomy import Points

FloatArray = npt.NDArray[np.float32]


def _bump(p: Points, centre: tuple[float, float, float], width_mm: float) -> FloatArray:
    r2 = sum((p[i] - np.float32(centre[i])) ** 2 for i in range(3))
    return np.exp(-r2 / np.float32(2.0 * width_mm**2)).astype(np.float32)


def b0_map_hz(points: Points, field_strength_t: float) -> FloatArray:
    """Off-resonance in Hz at patient points (same shape as the coordinates)."""
    x, y, z = points
    scale = np.float32(field_strength_t / 1.5)
    r_xy = np.sqrt(x * x + y * y)
    value = 12.0 * x / 200.0 - 8.0 * y / 150.0 + 15.0 * (z / 200.0) ** 2
    value = value + 85.0 * _bump(points, (70.0, 5.0, -25.0), 30.0)
    value = value - 70.0 * _bump(points, (-45.0, 10.0, -65.0), 40.0)
    value = value + 120.0 * np.maximum(np.float32(0.0), (r_xy - 190.0) / 100.0) ** 2
    return (scale * value).astype(np.float32)


def eddy_current_phase_rad(u_mm: FloatArray, v_mm: FloatArray, slice_index: int) -> FloatArray:
    """Background phase difference (encoded − reference) in rad on in-plane coordinates (mm)."""
    shift = np.float32(7.0 * slice_index)
    bump = 0.25 * np.exp(-((u_mm - 60.0 - shift) ** 2 + (v_mm + 40.0) ** 2) / (2.0 * 110.0**2))
    wave = 0.12 * np.sin(2 * np.pi * (u_mm + 0.6 * v_mm) / 420.0 + 0.4)
    linear = 0.08 * u_mm / 200.0 - 0.05 * v_mm / 200.0
    return (bump + wave + linear).astype(np.float32)
