"""From reconstructed activity to Bq/ml at the frame start and to SUV (body weight).

OSEM with m = T·g·η·att estimates the activity averaged over the frame, in Bq/mm³.  With decay constant
λ = ln 2 / T½ the activity at the frame start is the average times λT/(1 - e^{-λT}).  SUV(bw) divides the
concentration at the frame start by the injected dose decayed to the frame start per gram of body weight
(1 ml of tissue taken as 1 g).  ``calibration_factor`` is the scanner's cross-calibration (well-counter)
factor, 1 when the geometric model is trusted as is.

Recovery of hot spheres (NEMA NU 2 / EARL phantoms) is read with :func:`a50_voi_mean`, EARL's RCmean VOI.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import torch

from recon.tof.listmode import PETAcquisitionInfo

ML_PER_MM3 = 1.0e-3


def frame_average_to_start_factor(half_life_s: float, frame_duration_s: float) -> float:
    """λT/(1 - e^{-λT}): activity at the frame start / activity averaged over the frame (≥ 1)."""
    if half_life_s <= 0 or frame_duration_s < 0:
        raise ValueError("half_life_s must be > 0 and frame_duration_s >= 0")
    lam_t = math.log(2.0) / half_life_s * frame_duration_s
    return 1.0 if lam_t < 1e-12 else lam_t / -math.expm1(-lam_t)


def activity_bq_per_ml(
    activity_bq_per_mm3: torch.Tensor, info: PETAcquisitionInfo, calibration_factor: float = 1.0
) -> torch.Tensor:
    """Decay-corrected concentration at the frame start, Bq/ml."""
    factor = frame_average_to_start_factor(info.half_life_s, info.frame_duration_s)
    return activity_bq_per_mm3 / ML_PER_MM3 * (factor * calibration_factor)


def suv_scale_factor(info: PETAcquisitionInfo) -> float:
    """SUV per Bq/ml: weight [g] / dose decayed to the frame start [Bq] (g/ml → SUV is dimensionless)."""
    dose_at_start_bq = info.injected_dose_bq * info.decay_factor_at_frame_start()
    if dose_at_start_bq <= 0:
        raise ValueError("SUV needs a positive injected dose")
    return info.patient_weight_kg * 1000.0 / dose_at_start_bq


def suv_body_weight(concentration_bq_per_ml: torch.Tensor, info: PETAcquisitionInfo) -> torch.Tensor:
    """SUV(bw) = C [Bq/ml] / (dose at the frame start [Bq] / weight [g])."""
    return concentration_bq_per_ml * suv_scale_factor(info)


def a50_voi_mean(image: npt.NDArray[np.floating], near: npt.NDArray[np.bool_], background: float) -> float:
    """Mean of EARL's A50 VOI of one hot sphere: the voxels of ``near`` at or above ``background`` + 50 % of
    (their maximum − ``background``), background-adapted as EARL prescribes for RCmean.

    Args:
        image: ``(z, y, x)`` activity concentration (any unit).
        near: ``(z, y, x)`` bool, the voxels around the sphere to search (e.g. within radius + 8 mm), with no
            other hot structure.
        background: the phantom background's mean concentration, same unit as ``image``.

    Returns:
        The VOI mean, same unit as ``image`` (divide by the true sphere concentration for RCmean).
    """
    if image.shape != near.shape or not near.any():
        raise ValueError(
            f"near must be a non-empty mask of the image's shape {image.shape}, got {near.shape}"
        )
    threshold = background + 0.5 * (float(image[near].max()) - background)
    return float(image[near & (image >= threshold)].mean())
