"""Receive coil array (smooth analytic sensitivities) and correlated thermal noise.

The array is ``n_coils`` loop elements in two rings on an elliptic cylinder around the torso
(semi-axes 200 × 145 mm) at z = ``centre_z_mm`` ± 60 mm.  Element c at position p_c has the on-axis
loop profile ``a³ / (a² + |r - p_c|²)^{3/2}`` (a = 90 mm) and a smooth phase
``φ_c + 2π·(r - p_c)·n_c / 600 mm``.  Noise covariance: per-element variance ``noise_std²·g_c``
(g_c ∈ [0.7, 1.3]) and correlation ``0.35·exp(-|p_c - p_d| / 120 mm)`` off the diagonal (positive
definite: an exponential kernel).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hardware_sim.mr.anatomy import Points
from recon.common.blas_threads import single_thread_blas

LOOP_RADIUS_MM = 90.0


@dataclass(frozen=True)
class CoilArray:
    """Coil geometry: ``positions_mm`` (n_coils, 3), ``normals`` (n_coils, 3) unit inward-facing,
    ``phase_offsets_rad`` (n_coils,), ``noise_covariance`` (n_coils, n_coils) complex128 Hermitian
    positive definite (per k-space sample, same units as the signal)."""

    positions_mm: npt.NDArray[np.float64]
    normals: npt.NDArray[np.float64]
    phase_offsets_rad: npt.NDArray[np.float64]
    noise_covariance: npt.NDArray[np.complex128]

    def __post_init__(self) -> None:
        n = self.positions_mm.shape[0]
        if self.positions_mm.shape != (n, 3) or self.noise_covariance.shape != (n, n):
            raise ValueError("coil arrays have inconsistent shapes")
        if not np.allclose(self.noise_covariance, self.noise_covariance.conj().T):
            raise ValueError("noise covariance must be Hermitian")

    @property
    def n_coils(self) -> int:
        """Number of elements."""
        return int(self.positions_mm.shape[0])

    def sensitivities(self, points: Points) -> npt.NDArray[np.complex64]:
        """Complex sensitivities ``(n_coils, *shape)`` at patient points."""
        out = np.empty((self.n_coils, *points[0].shape), dtype=np.complex64)
        a2, a3 = np.float32(LOOP_RADIUS_MM**2), np.float32(LOOP_RADIUS_MM**3)
        for c in range(self.n_coils):
            d = [points[i] - np.float32(self.positions_mm[c, i]) for i in range(3)]
            t = a2 + d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
            mag = a3 / (t * np.sqrt(t))  # a³ / (a² + r²)^{3/2}
            along = d[0] * np.float32(self.normals[c, 0]) + d[1] * np.float32(self.normals[c, 1])
            along += d[2] * np.float32(self.normals[c, 2])
            phase = np.float32(self.phase_offsets_rad[c]) + np.float32(2 * np.pi / 600.0) * along
            out[c].real = mag * np.cos(phase)
            out[c].imag = mag * np.sin(phase)
        return out


def make_coil_array(
    n_coils: int, noise_std: float, centre_z_mm: float, rng: np.random.Generator
) -> CoilArray:
    """Two rings of elements around the torso with a random (seeded) noise covariance."""
    n_first = (n_coils + 1) // 2
    positions, normals = [], []
    for k in range(n_coils):
        ring = 0 if k < n_first else 1
        n_ring = n_first if ring == 0 else n_coils - n_first
        angle = 2 * np.pi * ((k if ring == 0 else k - n_first) + 0.5 * ring) / n_ring
        pos = np.array(
            [200.0 * np.cos(angle), 145.0 * np.sin(angle), centre_z_mm + (-60.0 if ring == 0 else 60.0)]
        )
        positions.append(pos)
        normals.append(-np.array([np.cos(angle), np.sin(angle), 0.0]))
    pos_arr = np.array(positions)
    gains = rng.uniform(0.7, 1.3, n_coils)
    dist = np.linalg.norm(pos_arr[:, None, :] - pos_arr[None, :, :], axis=-1)
    correlation = 0.35 * np.exp(-dist / 120.0)
    np.fill_diagonal(correlation, 1.0)
    cov = noise_std**2 * np.sqrt(gains[:, None] * gains[None, :]) * correlation
    return CoilArray(
        positions_mm=pos_arr,
        normals=np.array(normals),
        phase_offsets_rad=rng.uniform(-np.pi, np.pi, n_coils),
        noise_covariance=cov.astype(np.complex128),
    )


def noise_mixing_matrix(covariance: npt.NDArray[np.complex128]) -> npt.NDArray[np.complexfloating]:
    """Cholesky factor L (L·Lᴴ = covariance) scaled by √½ for circular noise; real when Ψ is real."""
    chol = np.linalg.cholesky(covariance) * np.sqrt(0.5)
    if np.allclose(chol.imag, 0.0):
        return chol.real.astype(np.float32)
    return chol.astype(np.complex64)


def correlated_noise(
    covariance: npt.NDArray[np.complex128],
    shape: tuple[int, ...],
    rng: np.random.Generator,
    mixing: npt.NDArray[np.complexfloating] | None = None,
) -> npt.NDArray[np.complex64]:
    """Circular complex Gaussian noise ``(n_coils, *shape)`` with E[n nᴴ] = covariance.

    ``mixing`` (from :func:`noise_mixing_matrix`) may be passed to avoid refactoring Ψ per call.
    """
    n = covariance.shape[0]
    if not np.any(covariance):
        return np.zeros((n, *shape), dtype=np.complex64)
    chol = noise_mixing_matrix(covariance) if mixing is None else mixing
    m = int(np.prod(shape))
    white = rng.standard_normal((n, 2 * m), dtype=np.float32)
    with single_thread_blas():  # the product's last bits depend on BLAS's thread count: keep it fixed
        if chol.dtype == np.float32:  # real mixing of real and imaginary parts: 4× fewer flops
            return (chol @ white).view(np.complex64).reshape(n, *shape)
        return (chol @ white.view(np.complex64)).reshape(n, *shape)
