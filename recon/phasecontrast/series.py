"""One slice's phase-contrast series end to end: velocity maps → background → unwrapping → vessels.

These functions only compose the single-purpose cores of this package, in the order the plugins use
them, so that the plugins stay thin and the composition is tested once on synthetic data.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from recon.phasecontrast.background import (
    BackgroundFit,
    blend_near_regions,
    distance_pixels,
    fit_background_robust,
    local_offset_near,
    subtract_background,
)
from recon.phasecontrast.masks import body_mask, noise_mask, static_tissue_mask
from recon.phasecontrast.unwrap import UnwrapMethod, unwrap_velocity
from recon.phasecontrast.vessels import VesselROI, find_vessels


@dataclass(frozen=True)
class BackgroundSettings:
    """Parameters of the background correction (see :mod:`recon.phasecontrast.background`).

    Attributes:
        order: polynomial order (0..8).
        signal_threshold_fraction: noise-mask threshold as a fraction of the robust maximum magnitude.
        static_percentile: percentile of temporal velocity std kept as static tissue (0 < p ≤ 100).
        exclude_margin_pixels: margin around detected vessels excluded from the fit (pixels).
        n_exclude_vessels: number of pulsatile regions detected and excluded before the fit.
        zero_outside_body: set velocities outside the body mask to 0 (they are the random phase of noise).
        local_sigma_pixels: around each detected vessel the offset comes from a fit of the static pixels
            weighted by a Gaussian of this width (pixels) of their distance to the vessel, blended into the
            slice-wide fit over the same distance (0 = slice-wide fit only; see
            :func:`~recon.phasecontrast.background.local_offset_near`).
        local_order: polynomial order of the vessel-local fits.
    """

    order: int = 6
    signal_threshold_fraction: float = 0.1
    static_percentile: float = 90.0
    exclude_margin_pixels: int = 3
    n_exclude_vessels: int = 4
    zero_outside_body: bool = True
    local_sigma_pixels: float = 0.0
    local_order: int = 3

    def __post_init__(self) -> None:
        if not 0 <= self.order <= 8 or not 0 < self.static_percentile <= 100:
            raise ValueError("order must be in 0..8 and static_percentile in (0, 100]")
        if self.exclude_margin_pixels < 0 or self.n_exclude_vessels < 0:
            raise ValueError("exclude_margin_pixels and n_exclude_vessels must be ≥ 0")
        if self.local_sigma_pixels < 0 or not 0 <= self.local_order <= 8:
            raise ValueError("local_sigma_pixels must be ≥ 0 and local_order in 0..8")


@dataclass(frozen=True)
class CorrectedSeries:
    """A background-corrected velocity series of one slice.

    Attributes:
        velocity_cm_per_s: ``(phases, y, x)`` real corrected velocity (cm/s).
        signal_mask: ``(y, x)`` bool, pixels with signal.
        static_mask: ``(y, x)`` bool, pixels used by the fit.
        excluded_vessels: ``(y, x)`` bool, pulsatile regions kept out of the fit.
        fit: the background fit; its offset is the one subtracted: inside the body, clamped to the range the
            polynomial takes on the static pixels, 0 outside the body.
        body_mask: ``(y, x)`` bool, the body (signal with holes filled); outside it the velocity is 0 when
            ``zero_outside_body`` is set.
    """

    velocity_cm_per_s: torch.Tensor
    signal_mask: torch.Tensor
    static_mask: torch.Tensor
    excluded_vessels: torch.Tensor
    fit: BackgroundFit
    body_mask: torch.Tensor

    def __post_init__(self) -> None:
        if self.velocity_cm_per_s.ndim != 3 or self.signal_mask.shape != self.velocity_cm_per_s.shape[1:]:
            raise ValueError("velocity must be (phases, y, x) and the masks (y, x)")


def signal_mask_of(magnitude: torch.Tensor, threshold_fraction: float) -> torch.Tensor:
    """Signal mask ``(y, x)`` of a ``(phases, y, x)`` or ``(y, x)`` magnitude series (temporal mean)."""
    mean = magnitude.mean(dim=0) if magnitude.ndim == 3 else magnitude
    return noise_mask(mean, threshold_fraction=threshold_fraction)


def correct_background(
    velocity_cm_per_s: torch.Tensor, magnitude: torch.Tensor, settings: BackgroundSettings
) -> CorrectedSeries:
    """Fit and subtract the background offset of one slice's ``(phases, y, x)`` velocity series.

    Pulsatile regions (vessels, found from the velocity itself) and a margin around them are kept out
    of the fit; static tissue is chosen among the remaining signal pixels by low temporal variation.
    """
    signal = signal_mask_of(magnitude, settings.signal_threshold_fraction)
    vessels = find_vessels(velocity_cm_per_s, signal, n_vessels=settings.n_exclude_vessels)
    excluded = torch.zeros_like(signal)
    for roi in vessels:
        excluded |= roi.mask
    static = static_tissue_mask(
        velocity_cm_per_s, signal, excluded, settings.exclude_margin_pixels, settings.static_percentile
    )
    fit = fit_background_robust(velocity_cm_per_s, static, order=settings.order)
    body = body_mask(signal)
    offset = fit.offset_cm_per_s
    if settings.local_sigma_pixels > 0:
        offset = _refine_near_vessels(velocity_cm_per_s, static, vessels, offset, settings)
    fit = replace(fit, offset_cm_per_s=bounded_offset(offset, static, body))
    corrected = subtract_background(velocity_cm_per_s, fit)
    if settings.zero_outside_body:
        corrected = torch.where(body, corrected, torch.zeros_like(corrected))
    return CorrectedSeries(
        velocity_cm_per_s=corrected,
        signal_mask=signal,
        static_mask=static,
        excluded_vessels=excluded,
        fit=fit,
        body_mask=body,
    )


def _refine_near_vessels(
    velocity_cm_per_s: torch.Tensor,
    static: torch.Tensor,
    vessels: list[VesselROI],
    global_offset: torch.Tensor,
    settings: BackgroundSettings,
) -> torch.Tensor:
    """The slice-wide offset with a vessel-local fit taking over around each detected vessel."""
    local = []
    for roi in vessels:
        distance = distance_pixels(roi.mask)
        fitted = local_offset_near(
            velocity_cm_per_s, static, distance, settings.local_order, settings.local_sigma_pixels
        )
        if fitted is not None:
            local.append((distance, fitted))
    return blend_near_regions(global_offset, local, settings.local_sigma_pixels) if local else global_offset


def bounded_offset(offset_cm_per_s: torch.Tensor, static: torch.Tensor, body: torch.Tensor) -> torch.Tensor:
    """The fitted offset where it is supported: clamped to its range over the static pixels (a high-order
    polynomial swings wildly away from its data), and 0 outside the body (no extrapolation into air)."""
    on_static = offset_cm_per_s[static]
    clamped = offset_cm_per_s.clamp(float(on_static.min()), float(on_static.max()))
    return torch.where(body, clamped, torch.zeros_like(clamped))


def unwrap_series(
    velocity_cm_per_s: torch.Tensor,
    magnitude: torch.Tensor,
    venc_cm_per_s: float,
    method: UnwrapMethod,
    signal_threshold_fraction: float,
) -> torch.Tensor:
    """Aliasing correction of one slice's ``(phases, y, x)`` series inside its signal mask."""
    signal = signal_mask_of(magnitude, signal_threshold_fraction)
    return unwrap_velocity(velocity_cm_per_s, venc_cm_per_s, signal, method)


def detect_vessels(
    velocity_cm_per_s: torch.Tensor, magnitude: torch.Tensor, n_vessels: int, signal_threshold_fraction: float
) -> list[VesselROI]:
    """Automatic vessel regions of one slice (strongest pulsatility first)."""
    return find_vessels(
        velocity_cm_per_s, signal_mask_of(magnitude, signal_threshold_fraction), n_vessels=n_vessels
    )
