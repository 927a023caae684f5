"""Flow quantification in a vessel region: flow curve, beat volumes, regurgitant fraction, Qp:Qs.

Units: velocity cm/s, pixel area cm², so ``Σ v · A`` is cm³/s = ml/s; volumes in ml; the cardiac
phases are assumed to tile one R–R interval uniformly (retrospective binning), so each phase stands
for ``rr_s / n_phases`` seconds of the beat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class FlowCurve:
    """Per-phase flow through one vessel region.

    Attributes:
        flow_ml_per_s: ``(phases,)`` float64 net flow through the region (ml/s), positive along the
            velocity sign convention of the maps.
        mean_velocity_cm_per_s: ``(phases,)`` float64 spatial mean velocity over the region (cm/s).
        peak_velocity_cm_per_s: ``(phases,)`` float64 velocity of largest magnitude in the region, signed
            (cm/s), after averaging over ``peak_window_pixels``² neighbourhoods inside the region (see
            :func:`flow_curve`).
        area_cm2: region area (cm²).
        phase_times_s: ``(phases,)`` float64 time of each phase centre after the R wave (s).
    """

    flow_ml_per_s: np.ndarray
    mean_velocity_cm_per_s: np.ndarray
    peak_velocity_cm_per_s: np.ndarray
    area_cm2: float
    phase_times_s: np.ndarray

    def __post_init__(self) -> None:
        n = self.flow_ml_per_s.shape
        for name in ("mean_velocity_cm_per_s", "peak_velocity_cm_per_s", "phase_times_s"):
            if getattr(self, name).shape != n:
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected {n}")
        if not self.area_cm2 > 0:
            raise ValueError(f"area_cm2 must be positive, got {self.area_cm2}")


@dataclass(frozen=True)
class BeatVolumes:
    """Volumes per beat from one flow curve.

    Attributes:
        forward_ml: volume moved in the positive direction per beat (ml).
        backward_ml: volume moved in the negative direction per beat (ml, ≥ 0).
        net_ml: forward − backward (ml): the stroke volume through the vessel.
        regurgitant_fraction_percent: 100 · backward / forward (%).
        heart_rate_bpm: heart rate used (beats per minute).
        cardiac_output_l_per_min: net_ml · heart rate / 1000 (l/min).
        peak_velocity_cm_per_s: largest forward velocity in any phase (cm/s).
    """

    forward_ml: float
    backward_ml: float
    net_ml: float
    regurgitant_fraction_percent: float
    heart_rate_bpm: float
    cardiac_output_l_per_min: float
    peak_velocity_cm_per_s: float

    def __post_init__(self) -> None:
        if self.forward_ml < 0 or self.backward_ml < 0 or not self.heart_rate_bpm > 0:
            raise ValueError("volumes must be non-negative and the heart rate positive")


def phase_times_s(n_phases: int, rr_s: float) -> np.ndarray:
    """Centres of ``n_phases`` equal bins tiling an R–R interval of ``rr_s`` seconds."""
    if n_phases < 1 or not rr_s > 0:
        raise ValueError(f"need n_phases ≥ 1 and rr_s > 0, got {n_phases}, {rr_s}")
    return (np.arange(n_phases) + 0.5) * (rr_s / n_phases)


def _window_mean(v: torch.Tensor, roi: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of ``v`` over ``window × window`` neighbourhoods and whether each lies fully inside ``roi``."""
    inside = roi.to(v.dtype)
    pad = window // 2
    total = F.avg_pool2d((v * inside).unsqueeze(1), window, stride=1, padding=pad, count_include_pad=True)
    count = F.avg_pool2d(inside.unsqueeze(1), window, stride=1, padding=pad, count_include_pad=True)
    full = count[:, 0] > 1.0 - 1e-9
    return total[:, 0] / count[:, 0].clamp_min(1e-12), full


def peak_velocity(v: torch.Tensor, roi: torch.Tensor, window: int) -> torch.Tensor:
    """Signed velocity of largest magnitude per phase of ``(phases, y, x)`` maps inside ``roi``.

    With ``window`` > 1 the maps are first averaged over ``window × window`` neighbourhoods that lie
    fully inside the region: the maximum of single pixels is biased upwards by noise (by ≈ 2–3 σ over a
    vessel), while the centre of a (blunted) vessel profile is flat over a few pixels.  Phases whose
    region holds no full neighbourhood fall back to single pixels.
    """
    masked = torch.where(roi, v, torch.zeros_like(v))
    single = torch.gather(masked.flatten(1), 1, masked.flatten(1).abs().argmax(dim=1, keepdim=True))[:, 0]
    if window <= 1:
        return single
    smooth, full = _window_mean(v, roi, window)
    smooth = torch.where(full, smooth, torch.zeros_like(smooth)).flatten(1)
    windowed = torch.gather(smooth, 1, smooth.abs().argmax(dim=1, keepdim=True))[:, 0]
    return torch.where(full.flatten(1).any(dim=1), windowed, single)


def flow_curve(
    velocity_cm_per_s: torch.Tensor,
    roi: torch.Tensor,
    pixel_area_mm2: float,
    rr_s: float,
    peak_window_pixels: int = 3,
) -> FlowCurve:
    """Flow through ``roi`` for ``(phases, y, x)`` velocity maps.

    Args:
        velocity_cm_per_s: ``(phases, y, x)`` real, background-corrected and unwrapped.
        roi: ``(y, x)`` or ``(phases, y, x)`` boolean region (a per-phase region follows a moving vessel).
        pixel_area_mm2: in-plane pixel area (mm²).
        rr_s: R–R interval the phases tile (s).
        peak_window_pixels: odd neighbourhood width for the peak velocity (1 = single pixels).
    """
    if peak_window_pixels < 1 or peak_window_pixels % 2 == 0:
        raise ValueError(f"peak_window_pixels must be odd and ≥ 1, got {peak_window_pixels}")
    if velocity_cm_per_s.ndim != 3:
        raise ValueError(f"velocity must be (phases, y, x), got {tuple(velocity_cm_per_s.shape)}")
    roi_t = roi.expand_as(velocity_cm_per_s) if roi.ndim == 2 else roi
    if roi_t.shape != velocity_cm_per_s.shape or not bool(roi_t.flatten(1).any(dim=1).all()):
        raise ValueError("roi must be a non-empty (y, x) or (phases, y, x) mask matching the velocity maps")
    pixel_area_cm2 = pixel_area_mm2 / 100.0
    v = torch.where(roi_t, velocity_cm_per_s, torch.zeros_like(velocity_cm_per_s)).to(torch.float64)
    n_pix = roi_t.flatten(1).sum(dim=1).to(torch.float64)
    flow = v.flatten(1).sum(dim=1) * pixel_area_cm2
    peak = peak_velocity(v, roi_t, peak_window_pixels)
    return FlowCurve(
        flow_ml_per_s=flow.cpu().numpy(),
        mean_velocity_cm_per_s=(flow / (n_pix * pixel_area_cm2)).cpu().numpy(),
        peak_velocity_cm_per_s=peak.cpu().numpy(),
        area_cm2=float(n_pix.mean()) * pixel_area_cm2,
        phase_times_s=phase_times_s(velocity_cm_per_s.shape[0], rr_s),
    )


def beat_volumes(curve: FlowCurve, rr_s: float) -> BeatVolumes:
    """Forward, backward and net volume of one beat, regurgitant fraction and cardiac output."""
    if not rr_s > 0:
        raise ValueError(f"rr_s must be positive, got {rr_s}")
    dt_s = rr_s / curve.flow_ml_per_s.shape[0]
    forward = float(np.clip(curve.flow_ml_per_s, 0.0, None).sum() * dt_s)
    backward = float(np.clip(-curve.flow_ml_per_s, 0.0, None).sum() * dt_s)
    heart_rate_bpm = 60.0 / rr_s
    net = forward - backward
    return BeatVolumes(
        forward_ml=forward,
        backward_ml=backward,
        net_ml=net,
        regurgitant_fraction_percent=100.0 * backward / forward if forward > 0 else math.nan,
        heart_rate_bpm=heart_rate_bpm,
        cardiac_output_l_per_min=net * heart_rate_bpm / 1000.0,
        peak_velocity_cm_per_s=float(curve.peak_velocity_cm_per_s.max()),
    )


def qp_qs(pulmonary: BeatVolumes, systemic: BeatVolumes) -> float:
    """Shunt ratio Qp:Qs = pulmonary net flow / systemic (aortic) net flow per beat."""
    if not systemic.net_ml > 0:
        raise ValueError(f"systemic net volume must be positive, got {systemic.net_ml} ml")
    return pulmonary.net_ml / systemic.net_ml


def orient_forward(velocity_cm_per_s: torch.Tensor, roi: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Flip the sign of the maps so that the net flow through ``roi`` is positive; returns (maps, sign).

    Used when a vessel's forward direction (e.g. descending versus ascending aorta in one slice) is
    not known in advance: forward is the direction of the larger volume.
    """
    total = float(torch.where(roi, velocity_cm_per_s, torch.zeros_like(velocity_cm_per_s)).sum())
    sign = 1 if total >= 0 else -1
    return velocity_cm_per_s * sign, sign
