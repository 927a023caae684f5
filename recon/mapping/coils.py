"""Coil images of a multi-image tissue-characterisation slice (LGE IR + reference, MOLLI, T2 preparations,
T2* echoes) with one GRAPPA kernel for all images.

The images of a slice share the coil geometry and the sampling pattern; only their contrast differs.  The
kernel is calibrated once, on the image whose calibration block holds the most energy (MOLLI images near
their null and the LGE image with nulled myocardium calibrate poorer kernels), and applied to every image:
one calibration instead of one per image, and the image-to-image phase (which PSIR needs) is not perturbed
by kernel differences.  Axis convention: k-space ``(images, coils, ky, kx)``; line masks ``(ky,)``.
"""

from __future__ import annotations

import torch

from recon.cine.unfold import calibration_block
from recon.common.fft import ifftc
from recon.petmr_ac.dixon_coils import calibration_kspace, grappa_coil_images


def calibration_image_index(kspace: torch.Tensor, calibration: torch.Tensor) -> int:
    """The image whose calibration block has the largest energy."""
    first, last = calibration_block(calibration)
    energy = kspace[:, :, first:last].abs().square().sum(dim=(1, 2, 3))
    return int(torch.argmax(energy))


def series_coil_images(
    kspace: torch.Tensor, sampled: torch.Tensor, calibration: torch.Tensor, acceleration: int
) -> torch.Tensor:
    """Coil images ``(images, coils, y, x)``: FFT when fully sampled, else GRAPPA with one kernel (module
    docstring; 4 source blocks × 5 kx taps, regularisation 1 in noise units, as for the Dixon echoes)."""
    if acceleration <= 1 or bool(sampled.all()):
        return ifftc(kspace)
    reference = calibration_image_index(kspace, calibration)
    calib = calibration_kspace(kspace[reference], calibration)
    return grappa_coil_images(kspace, sampled, calib, acceleration)
