"""Sampling of radioactive decays from a voxelised activity map, in continuous time.

Only decays that can produce a detected photon need simulating: a photon from a point at transaxial
radius ``r`` and axial position ``z`` can only reach the crystals (radius >= ``R``, ``|z| <= L/2``) when
the cotangent of its polar angle satisfies ``|cot θ| <= (L/2 + |z|) / (R - r)``.  Each voxel therefore
gets a conservative cone ``|cos θ| <= c_v`` (worst corner of the voxel, margins for positron range and
non-collinearity, scaled by ``cone_scale`` so that photons scattering back into the detector are kept);
decays are drawn as a Poisson process of rate ``Σ_v A_v · c_v`` (the isotropic decay rate thinned to the
cone), each with its direction uniform in its voxel's cone.  Decays outside every cone are never
detectable, except through scatter from outside the scaled cone, which is neglected.  The voxel of each
decay is drawn with Walker's alias method (O(1) per decay, exact for the discrete rate distribution).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from hardware_sim.pet.rng_kernel import spawn_streams, uniform
from recon.tof.geometry import ScannerGeometry

_MARGIN_MM = 5.0
_MARGIN_COT = 0.02


@numba.njit(cache=True)
def alias_table(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker/Vose alias table of non-negative ``weights`` ``(m,)``: ``(keep_probability float64, alias
    int64)``; column ``j`` (chosen uniformly) yields ``j`` with its keep probability, else ``alias[j]``."""
    m = weights.shape[0]
    scaled = weights * (m / weights.sum())
    keep = np.ones(m)
    alias = np.arange(m)
    piles = np.empty(m, np.int64)  # columns below 1 from the front, the others from the back
    n_small = n_large = 0
    for j in range(m):
        if scaled[j] < 1.0:
            piles[n_small] = j
            n_small += 1
        else:
            n_large += 1
            piles[m - n_large] = j
    while n_small > 0 and n_large > 0:
        n_small -= 1
        small, big = piles[n_small], piles[m - n_large]
        keep[small], alias[small] = scaled[small], big
        scaled[big] -= 1.0 - scaled[small]
        if scaled[big] < 1.0:  # the donor falls below 1: move it to the small pile
            n_large -= 1
            piles[n_small] = big
            n_small += 1
    return keep, alias  # leftover columns (rounding) keep themselves with probability 1


@numba.njit(cache=True, parallel=True)
def _sample_points(n: int, keep: np.ndarray, alias: np.ndarray, centres_xyz_mm: np.ndarray, cone: np.ndarray, voxel_xyz_mm: np.ndarray, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``n`` emission points ``(n, 3)`` (voxel by the alias table, uniform inside it) and their cones."""
    positions = np.empty((n, 3))
    cones = np.empty(n)
    m, n_blocks = keep.shape[0], states.shape[0]
    for k in numba.prange(n_blocks):  # block k: decays [k·n/B, (k+1)·n/B) with random stream k
        for i in range(k * n // n_blocks, (k + 1) * n // n_blocks):
            column_position = uniform(states, k) * m
            column = min(int(column_position), m - 1)
            voxel = column if column_position - column < keep[column] else alias[column]
            for axis in range(3):
                offset = uniform(states, k) - 0.5
                positions[i, axis] = centres_xyz_mm[voxel, axis] + offset * voxel_xyz_mm[axis]
            cones[i] = cone[voxel]
    return positions, cones


@dataclass(frozen=True)
class DecayBatch:
    """Decays to simulate (all arrays have ``n`` rows).

    Attributes:
        time_ns: decay times, float64, ns since the start of the acquisition, increasing.
        position_mm: positron emission points, ``(n, 3)`` float64, (x, y, z) mm.
        max_abs_cos_polar: cone of directions to sample for each decay, float64 in (0, 1].
    """

    time_ns: np.ndarray
    position_mm: np.ndarray
    max_abs_cos_polar: np.ndarray


class DecaySampler:
    """Draws decays in time order from an activity map (Bq/ml) that decays with ``half_life_s``.

    Args:
        centres_xyz_mm: voxel centres of the active voxels, ``(m, 3)`` float64 mm.
        activity_bq: activity of each active voxel at t = 0, ``(m,)`` float64 Bq.
        voxel_xyz_mm: voxel size (x, y, z) mm.
        scanner: the scanner (sets the cones).
        half_life_s: isotope half-life, s.
        cone_scale: factor (>= 1) on each voxel's cotangent bound.
    """

    def __init__(
        self,
        centres_xyz_mm: np.ndarray,
        activity_bq: np.ndarray,
        voxel_xyz_mm: np.ndarray,
        scanner: ScannerGeometry,
        half_life_s: float,
        cone_scale: float = 1.3,
    ) -> None:
        if cone_scale < 1.0:
            raise ValueError(f"cone_scale must be >= 1, got {cone_scale}")
        half = np.asarray(voxel_xyz_mm, dtype=np.float64) / 2.0
        radius = (
            np.hypot(np.abs(centres_xyz_mm[:, 0]) + half[0], np.abs(centres_xyz_mm[:, 1]) + half[1])
            + _MARGIN_MM
        )
        if np.any(radius >= scanner.ring_radius_mm - 1.0):
            raise ValueError(
                f"activity extends to {radius.max():.0f} mm, beyond the bore of scanner {scanner.name}"
            )
        axial = np.abs(centres_xyz_mm[:, 2]) + half[2] + _MARGIN_MM
        cot = (
            cone_scale * (scanner.axial_fov_mm / 2.0 + axial) / (scanner.ring_radius_mm - radius)
            + _MARGIN_COT
        )
        self.centres_xyz_mm = np.ascontiguousarray(centres_xyz_mm, dtype=np.float64)
        self.voxel_xyz_mm = np.asarray(voxel_xyz_mm, dtype=np.float64)
        self.cone = np.minimum(cot / np.sqrt(1.0 + cot**2), 1.0)
        rate = activity_bq * self.cone
        self.cumulative = np.cumsum(rate)
        self._keep, self._alias = alias_table(rate)
        self.rate_bq = float(self.cumulative[-1])
        if self.rate_bq <= 0:
            raise ValueError("the activity map has no activity")
        self.decay_constant_per_ns = np.log(2.0) / (half_life_s * 1e9)
        self._cumulative_events = 0.0

    def _time_of_cumulative(self, cumulative_events: np.ndarray) -> np.ndarray:
        """Time (ns) at which the expected number of candidate decays reaches ``cumulative_events``."""
        rate_per_ns = self.rate_bq * 1e-9
        fraction = cumulative_events * self.decay_constant_per_ns / rate_per_ns
        if np.any(fraction >= 1.0):
            raise ValueError("the source has decayed away before the requested number of decays")
        return -np.log1p(-fraction) / self.decay_constant_per_ns

    def sample(self, n: int, rng: np.random.Generator) -> DecayBatch:
        """The next ``n`` decays of the process, in time order."""
        steps = np.cumsum(rng.exponential(1.0, n)) + self._cumulative_events
        self._cumulative_events = float(steps[-1])
        positions, cones = _sample_points(
            n, self._keep, self._alias, self.centres_xyz_mm, self.cone, self.voxel_xyz_mm, spawn_streams(rng)
        )
        return DecayBatch(self._time_of_cumulative(steps), positions, cones)
