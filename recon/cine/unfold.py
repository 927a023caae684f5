"""Unfolding a binned cine slice: calibration extraction, then FFT, GRAPPA, CG-SENSE or SENSE + temporal TV.

Inputs follow the cine convention: k-space ``(phases, coils, ky, kx)`` zero where not sampled, a
per-frame line mask ``(phases, ky)``, and the calibration-line mask ``(ky,)``.
"""

from __future__ import annotations

import logging

import torch

from recon.cine import coilmaps, combine, grappa
from recon.cine.cs import sense_temporal_tv
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
    n_blocks: int = 4,
    n_kx_taps: int = 5,
    regularization: float = 0.03,
    combined: bool = True,
) -> torch.Tensor:
    """Image-domain GRAPPA: ``(phases, 1, y, x)`` B1-combined, or ``(phases, coils, y, x)`` coil images."""
    shape = (kspace.shape[-2], kspace.shape[-1])
    offset, regular = grappa.regular_sampling(imaging, acceleration)
    kernel = grappa.calibrate_grappa(calib, acceleration, n_blocks, n_kx_taps, regularization)
    weights = grappa.grappa_image_weights(kernel, shape)
    zero_filled = kspace * regular.to(kspace.device)[:, None].to(kspace.real.dtype)
    log.debug(
        "GRAPPA R=%d, pattern offset %d, %d source blocks", acceleration, offset, len(kernel.source_offsets)
    )
    if combined:
        maps = coilmaps.lowres_coil_maps(calib, shape)
        unmix = grappa.unmixing_weights(weights, combine.combination_weights(maps))
        if shape[0] % 2 == 0 and shape[1] % 2 == 0:
            return grappa.apply_unmixing_fast(zero_filled, grappa.shifted_unmixing(unmix))[:, None]
        return grappa.apply_unmixing(zero_filled, unmix)[:, None]
    return grappa.apply_image_weights(zero_filled, weights)


def espirit_from_calibration(
    calib: torch.Tensor, shape: tuple[int, int], kernel_size: int, threshold: float, crop: float
) -> torch.Tensor:
    """ESPIRiT maps from the central ``2 × n_acs`` (≥ 32) columns of the calibration block."""
    width = min(calib.shape[-1], max(32, 2 * calib.shape[-2]))
    central = coilmaps.crop_centre(calib, (calib.shape[-2], width))
    return coilmaps.espirit_maps(central, shape, kernel_size, threshold, crop)


def sense_unfold(
    kspace: torch.Tensor, sampled: torch.Tensor, maps: torch.Tensor, n_iterations: int, regularization: float
) -> torch.Tensor:
    """CG-SENSE of all frames jointly → ``(phases, 1, y, x)``."""
    mask = sampled[:, None, :, None].to(device=kspace.device, dtype=kspace.real.dtype)
    return cg_sense(kspace, maps, mask, n_iterations=n_iterations, regularization=regularization).x[:, None]


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
