"""Coil images of a multi-echo slice and their phase-preserving combination.

Dixon needs the echo-to-echo phase, so all echoes of a slice are combined with the *same* coil weights:
low-resolution coil maps from the calibration region of the first echo (normalised to Σ|C|² = 1), applied
as Σ_c C*_c m_c to every echo.  Whatever phase the maps carry (including the first echo's own B0 and fat
phase at low resolution) is then common to all echoes and drops out of the separation.

Axis convention: k-space ``(echoes, coils, ky, kx)``, images ``(echoes, y, x)``; line masks ``(ky,)``.
"""

from __future__ import annotations

import torch

from recon.cine import coilmaps, combine
from recon.cine.unfold import calibration_block, grappa_unfold
from recon.common.fft import ifftc


def calibration_kspace(kspace: torch.Tensor, calibration: torch.Tensor) -> torch.Tensor:
    """The contiguous calibration block of one echo ``(coils, ky, kx)`` → ``(coils, n_acs, kx)``."""
    first, last = calibration_block(calibration)
    if last - first < 2:
        raise ValueError("no contiguous block of calibration lines in the data")
    return kspace[:, first:last]


#: GRAPPA for Dixon echoes: 4 source blocks × 5 kx taps, Tikhonov weight 1 in noise units (the ridge the
#: data's own noise adds; see :func:`recon.cine.grappa.calibrate_grappa`).  Lighter than the cine default
#: (10): one unbinned frame per echo whose coil phase must stay unbiased for the water/fat separation.
DIXON_GRAPPA_BLOCKS, DIXON_GRAPPA_KX_TAPS, DIXON_GRAPPA_REGULARIZATION = 4, 5, 1.0


def grappa_coil_images(
    kspace: torch.Tensor, sampled: torch.Tensor, calib: torch.Tensor, acceleration: int
) -> torch.Tensor:
    """GRAPPA coil images ``(images, coils, y, x)`` of ``kspace`` ``(images, coils, ky, kx)`` with one kernel
    calibrated on ``calib`` ``(coils, n_acs, kx)``, at the Dixon settings above."""
    return grappa_unfold(
        kspace,
        sampled,
        calib,
        acceleration,
        n_blocks=DIXON_GRAPPA_BLOCKS,
        n_kx_taps=DIXON_GRAPPA_KX_TAPS,
        regularization=DIXON_GRAPPA_REGULARIZATION,
        combined=False,
    )


def echo_coil_images(
    kspace: torch.Tensor, sampled: torch.Tensor, calibration: torch.Tensor, acceleration: int
) -> torch.Tensor:
    """Coil images ``(echoes, coils, y, x)``: FFT when fully sampled, else GRAPPA calibrated per echo."""
    if acceleration <= 1 or bool(sampled.all()):
        return ifftc(kspace)
    out = torch.empty_like(kspace)
    for e in range(kspace.shape[0]):
        calib = calibration_kspace(kspace[e], calibration)
        out[e] = grappa_coil_images(kspace[e : e + 1], sampled, calib, acceleration)[0]
    return out


def combine_echoes(
    coil_images: torch.Tensor,
    reference_kspace: torch.Tensor,
    calibration: torch.Tensor,
    n_calibration_lines_if_full: int = 24,
) -> torch.Tensor:
    """Phase-preserving combination ``(echoes, coils, y, x)`` → ``(echoes, y, x)`` with maps from the
    calibration block of ``reference_kspace`` (``(coils, ky, kx)``, the first echo).  Without calibration
    lines (fully sampled data) the central ``n_calibration_lines_if_full`` lines are used."""
    if int(calibration.sum()) >= 2:
        calib = calibration_kspace(reference_kspace, calibration)
    else:
        ny = reference_kspace.shape[-2]
        half = min(n_calibration_lines_if_full, ny) // 2
        calib = reference_kspace[:, ny // 2 - half : ny // 2 + half]
    width = min(calib.shape[-1], max(32, 2 * calib.shape[-2]))
    calib = coilmaps.crop_centre(calib, (calib.shape[-2], width))
    maps = coilmaps.lowres_coil_maps(calib, (coil_images.shape[-2], coil_images.shape[-1]))
    weights = combine.combination_weights(maps)  # C*/Σ|C|², (coils, y, x)
    return (weights[None] * coil_images).sum(dim=1)
