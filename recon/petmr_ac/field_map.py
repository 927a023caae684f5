"""Spatially regularised choice of the B0 field map among per-voxel candidates (shared by 2-point and
multi-echo Dixon).

Each voxel has K candidate field-map values (Hz), e.g. the local minima of the Dixon residual; the correct
one is usually the candidate that makes the field map smooth, because B0 varies slowly in the body while a
fat-water swap shifts it by about the fat frequency.  The choice is made by iterated conditional modes on
phasors e^{i 2π ψ τ} (τ = ``phasor_time_s``, so wraps of 1/τ do not matter), coarse to fine: the
signal-weighted field map is smoothed with a Gaussian of decreasing width and every voxel takes the
candidate closest to the smoothed map.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from recon.petmr_ac.smoothing import gaussian_smooth


def _smoothed_phasor(phasor: np.ndarray, weights: np.ndarray, sigma_voxels: Sequence[float]) -> np.ndarray:
    """Signal-weighted Gaussian average of a unit phasor field (complex, same shape)."""
    wz = weights * phasor
    if wz.ndim == 3:
        return gaussian_smooth(wz.real, sigma_voxels) + 1j * gaussian_smooth(wz.imag, sigma_voxels)
    re = ndimage.gaussian_filter(wz.real, sigma_voxels, mode="nearest")
    im = ndimage.gaussian_filter(wz.imag, sigma_voxels, mode="nearest")
    return re + 1j * im


def select_smooth_candidates(
    candidates_hz: np.ndarray,
    weights: np.ndarray,
    voxel_size_mm: Sequence[float],
    phasor_time_s: float,
    sigmas_mm: Sequence[float] = (60.0, 30.0, 15.0, 8.0),
    initial_index: np.ndarray | None = None,
    n_sweeps_per_scale: int = 2,
) -> np.ndarray:
    """Choose one candidate per voxel so that the field map is smooth.

    Args:
        candidates_hz: candidate field maps, shape (K, *spatial), float (Hz).
        weights: reliability of each voxel (e.g. signal magnitude), shape (*spatial), ≥ 0.
        voxel_size_mm: voxel size per spatial axis (mm), same order as the spatial axes.
        phasor_time_s: τ of the phasor e^{i2πψτ} used for smoothing (s), typically the echo spacing.
        sigmas_mm: Gaussian widths of the coarse-to-fine schedule (mm).
        initial_index: starting choice, shape (*spatial), int (default: candidate 0 everywhere).
        n_sweeps_per_scale: ICM sweeps per width.

    Returns:
        The chosen index per voxel, shape (*spatial), int64.
    """
    if candidates_hz.ndim != weights.ndim + 1 or candidates_hz.shape[1:] != weights.shape:
        raise ValueError(f"candidates {candidates_hz.shape} do not match weights {weights.shape}")
    if len(voxel_size_mm) != weights.ndim:
        raise ValueError(f"voxel_size_mm needs {weights.ndim} entries, got {len(voxel_size_mm)}")
    phasors = np.exp(2j * np.pi * candidates_hz * phasor_time_s).astype(np.complex64)
    index = (
        np.zeros(weights.shape, dtype=np.int64) if initial_index is None else initial_index.astype(np.int64)
    )
    w = weights.astype(np.float32)
    for sigma_mm in sigmas_mm:
        sigma_vox = [sigma_mm / float(v) for v in voxel_size_mm]
        for _ in range(n_sweeps_per_scale):
            chosen = (
                take_candidates(phasors, index)
                if len(phasors) > 2
                else np.where(index == 1, phasors[1], phasors[0])
            )
            reference = np.conj(_smoothed_phasor(chosen, w, sigma_vox)).astype(np.complex64)
            # closest candidate to the reference phasor = largest Re(p · conj(ref))
            if len(phasors) == 2:
                new_index = ((phasors[1] * reference).real > (phasors[0] * reference).real).astype(np.int64)
            else:
                new_index = np.argmax((phasors * reference[None]).real, axis=0)
            if np.array_equal(new_index, index):
                break
            index = new_index
    return index


def take_candidates(candidates: np.ndarray, index: np.ndarray) -> np.ndarray:
    """candidates[index[v], v] for every voxel v: shape (*spatial)."""
    return np.take_along_axis(candidates, index[None].astype(np.int64), axis=0)[0]
