"""Unfolding a binned cine slice: calibration extraction, then FFT, GRAPPA, CG-SENSE or SENSE + temporal TV.

Inputs follow the cine convention: k-space ``(phases, coils, ky, kx)`` zero where not sampled, a
per-frame line mask ``(phases, ky)``, and the calibration-line mask ``(ky,)``.
"""

from __future__ import annotations

import logging

import torch

from recon.cine import coilmaps, combine, grappa, noise
from recon.cine.cs import sense_low_rank_sparse, sense_temporal_tv
from recon.cine.sense import cg_sense
from recon.common.fft import ifftc

log = logging.getLogger(__name__)


def calibration_block(calibration: torch.Tensor) -> tuple[int, int]:
    """First and one-past-last line of the longest contiguous run of calibration lines (``(ky,)`` bool)."""
    best, start, run_start = (0, 0), None, 0
    for i, flag in enumerate([*calibration.tolist(), False]):
        if flag and start is None:
            start = run_start = i
        elif not flag and start is not None:
            if i - run_start > best[1] - best[0]:
                best = (run_start, i)
            start = None
    return best


def time_averaged_calibration(
    kspace: torch.Tensor, sampled: torch.Tensor, calibration: torch.Tensor
) -> torch.Tensor:
    """Calibration k-space ``(coils, n_acs, kx)``: the calibration block averaged over the frames that hold it."""
    first, last = calibration_block(calibration)
    if last - first < 2:
        raise ValueError("no calibration block (contiguous calibration lines) in the data")
    mask = sampled[:, None, first:last, None].to(kspace.device)
    return coilmaps.time_averaged_kspace(kspace[:, :, first:last], mask)


def detect_acceleration(imaging: torch.Tensor) -> int:
    """In-plane acceleration from the imaging-line mask ``(ky,)``: the most common gap between imaging lines."""
    lines = torch.nonzero(imaging).flatten()
    if lines.numel() < 2:
        return 1
    gaps = lines[1:] - lines[:-1]
    return int(torch.mode(gaps).values)


def fft_coil_images(kspace: torch.Tensor) -> torch.Tensor:
    """Zero-filled coil images ``(phases, coils, y, x)``."""
    return ifftc(kspace)


def grappa_unfold(
    kspace: torch.Tensor,
    imaging: torch.Tensor,
    calib: torch.Tensor,
    acceleration: int,
    n_blocks: int = 2,
    n_kx_taps: int = 7,
    regularization: float = 10.0,
    combined: bool = True,
    sampled: torch.Tensor | None = None,
) -> torch.Tensor:
    """Image-domain GRAPPA: ``(phases, 1, y, x)`` B1-combined, or ``(phases, coils, y, x)`` coil images.

    ``regularization`` is in noise units (see :func:`recon.cine.grappa.calibrate_grappa`), σ² estimated
    from the data (:func:`recon.cine.noise.kspace_noise_variance`).  With ``sampled`` ``(phases, ky)`` the
    acquired lines beyond the regular pattern (the calibration lines of every frame) replace the kernel's
    estimates (:func:`recon.cine.grappa.calibration_consistency`, combined output only).
    """
    shape = (kspace.shape[-2], kspace.shape[-1])
    offset, regular = grappa.regular_sampling(imaging, acceleration)
    per_frame = imaging[None].expand(kspace.shape[0], -1) if sampled is None else sampled
    sigma2 = noise.kspace_noise_variance(kspace, per_frame)
    kernel = grappa.calibrate_grappa(calib, acceleration, n_blocks, n_kx_taps, regularization, sigma2)
    weights = grappa.grappa_image_weights(kernel, shape)
    zero_filled = kspace * regular.to(kspace.device)[:, None].to(kspace.real.dtype)
    log.debug(
        "GRAPPA R=%d, pattern offset %d, %d source blocks, σ² %.3g",
        acceleration, offset, len(kernel.source_offsets), sigma2,
    )  # fmt: skip
    if not combined:
        return grappa.apply_image_weights(zero_filled, weights)
    combination = combine.combination_weights(coilmaps.lowres_coil_maps(calib, shape))
    unmix = grappa.unmixing_weights(weights, combination)
    if shape[0] % 2 == 0 and shape[1] % 2 == 0:
        images = grappa.apply_unmixing_fast(zero_filled, grappa.shifted_unmixing(unmix))
    else:
        images = grappa.apply_unmixing(zero_filled, unmix)
    if sampled is not None:
        images = images + grappa.calibration_consistency(kspace, sampled, kernel, offset, combination)
    return images[:, None]


def espirit_from_calibration(
    calib: torch.Tensor, shape: tuple[int, int], kernel_size: int, threshold: float, crop: float
) -> torch.Tensor:
    """ESPIRiT maps from the central ``2 × n_acs`` (≥ 32) columns of the calibration block."""
    width = min(calib.shape[-1], max(32, 2 * calib.shape[-2]))
    central = coilmaps.crop_centre(calib, (calib.shape[-2], width))
    return coilmaps.espirit_maps(central, shape, kernel_size, threshold, crop)


def noise_to_signal_ratio(kspace: torch.Tensor, sampled: torch.Tensor) -> float:
    """σ²/s̄²: noise variance per k-space sample over the mean image power per pixel (both from the data).

    s̄² = (Σ_acquired |k|² − n_acquired·σ²) / (n_phases · n_pixels): by Parseval, the mean |x|² of a
    frame for maps normalised to Σ|C|² = 1; the missing outer lines (little energy) are left out.
    """
    sigma2 = noise.kspace_noise_variance(kspace, sampled)
    held = sampled.to(kspace.device)[:, None, :, None].to(kspace.real.dtype)
    n_held = float(held.sum()) * kspace.shape[1] * kspace.shape[-1]
    energy = float((held * kspace.abs().pow(2)).sum()) - n_held * sigma2
    n_pixels = kspace.shape[0] * kspace.shape[-2] * kspace.shape[-1]
    return sigma2 / max(energy / n_pixels, sigma2 * 1e-6)


def sense_unfold(
    kspace: torch.Tensor, sampled: torch.Tensor, maps: torch.Tensor, n_iterations: int, regularization: float
) -> torch.Tensor:
    """CG-SENSE of all frames jointly → ``(phases, 1, y, x)``.

    ``regularization`` is relative to the noise-to-signal ratio: λ = regularization · σ²/s̄²
    (:func:`noise_to_signal_ratio`; 1 is the Wiener / Gaussian-prior MAP weight for a white image prior).
    """
    mask = sampled[:, None, :, None].to(device=kspace.device, dtype=kspace.real.dtype)
    lam = regularization * noise_to_signal_ratio(kspace, sampled)
    log.debug("CG-SENSE λ = %.3g (%.3g × σ²/s̄²)", lam, regularization)
    return cg_sense(kspace, maps, mask, n_iterations=n_iterations, regularization=lam).x[:, None]


def cs_unfold(
    kspace: torch.Tensor,
    sampled: torch.Tensor,
    maps: torch.Tensor,
    regularization: float,
    n_iterations: int,
    n_cg_iterations: int,
) -> torch.Tensor:
    """SENSE + temporal TV (ADMM) → ``(phases, 1, y, x)``."""
    mask = sampled[:, None, :, None].to(device=kspace.device, dtype=kspace.real.dtype)
    result = sense_temporal_tv(kspace, maps, mask, regularization, n_iterations, n_cg_iterations)
    return result.images[:, None]


def low_rank_sparse_unfold(
    kspace: torch.Tensor,
    sampled: torch.Tensor,
    maps: torch.Tensor,
    low_rank_regularization: float,
    sparse_regularization: float,
    n_iterations: int,
) -> torch.Tensor:
    """Low-rank + sparse (L + S, proximal gradient) → ``(phases, 1, y, x)``."""
    mask = sampled[:, None, :, None].to(device=kspace.device, dtype=kspace.real.dtype)
    result = sense_low_rank_sparse(
        kspace, maps, mask, low_rank_regularization, sparse_regularization, n_iterations
    )
    return result.images[:, None]
