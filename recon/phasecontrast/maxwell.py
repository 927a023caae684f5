"""Optional Maxwell (concomitant-field) phase correction for phase-contrast series.

A gradient ``G = (Gx, Gy, Gz)`` comes with concomitant fields that Maxwell's equations impose; for a
cylindrically symmetric gradient set the lowest-order term is (Bernstein et al. 1998, MRM 39:300)

    B_c = 1/(2 B0) · [ (Gx z − Gz x / 2)² + (Gy z − Gz y / 2)² ]
        = 1/(2 B0) · [ (Gx² + Gy²) z² + Gz² (x² + y²) / 4 − Gx Gz x z − Gy Gz y z ].

Its phase ``γ ∫ B_c dt`` differs between the reference and the encoded acquisition whenever their
bipolar flow-encoding lobes differ, which biases the velocity quadratically with the distance from
the isocentre.  The sequence knows the gradient waveforms; it provides the differences of the moments
``∫ Ga Gb dt`` (encoded minus reference) and this module turns them into a phase map per pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from recon.phasecontrast.velocity import VelocityEncoding, velocity_from_phase

GYROMAGNETIC_RATIO_RAD_PER_S_PER_T = 2.0 * math.pi * 42.577478e6
_MT2_MS_PER_M2_TO_SI = 1e-9  # (mT/m)² · ms → T²/m² · s


@dataclass(frozen=True)
class ConcomitantMoments:
    """Differences (encoded − reference) of the squared-gradient moments ``∫ Ga(t) Gb(t) dt``.

    Attributes (all in (mT/m)² · ms, physical gradient axes, z along B0):
        xx: ∫Gx² dt difference.
        yy: ∫Gy² dt difference.
        zz: ∫Gz² dt difference.
        xz: ∫Gx·Gz dt difference.
        yz: ∫Gy·Gz dt difference.
    """

    xx: float = 0.0
    yy: float = 0.0
    zz: float = 0.0
    xz: float = 0.0
    yz: float = 0.0

    def __post_init__(self) -> None:
        for name in ("xx", "yy", "zz", "xz", "yz"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"concomitant moment {name} must be finite")


def maxwell_phase_difference(
    positions_m: torch.Tensor, moments: ConcomitantMoments, field_strength_t: float
) -> torch.Tensor:
    """Concomitant-field phase difference (rad) at ``positions_m`` ``(..., 3)`` (x, y, z in metres).

    Returns a real tensor of shape ``positions_m.shape[:-1]``.
    """
    if positions_m.shape[-1] != 3:
        raise ValueError(
            f"positions must end with an (x, y, z) axis of length 3, got {tuple(positions_m.shape)}"
        )
    if not field_strength_t > 0:
        raise ValueError(f"field_strength_t must be positive, got {field_strength_t}")
    x, y, z = positions_m.unbind(-1)
    m = {k: getattr(moments, k) * _MT2_MS_PER_M2_TO_SI for k in ("xx", "yy", "zz", "xz", "yz")}
    field_integral = (
        m["xx"] * z**2 + m["yy"] * z**2 + m["zz"] * (x**2 + y**2) / 4.0 - m["xz"] * x * z - m["yz"] * y * z
    ) / (2.0 * field_strength_t)
    return GYROMAGNETIC_RATIO_RAD_PER_S_PER_T * field_integral


def correct_maxwell(
    velocity_cm_per_s: torch.Tensor,
    positions_m: torch.Tensor,
    moments: ConcomitantMoments,
    field_strength_t: float,
    encoding: VelocityEncoding,
) -> torch.Tensor:
    """Remove the concomitant-field velocity offset from ``(..., y, x)`` maps; ``positions_m`` is ``(y, x, 3)``."""
    phase = maxwell_phase_difference(positions_m, moments, field_strength_t)
    return velocity_cm_per_s - velocity_from_phase(phase, encoding).to(velocity_cm_per_s.dtype)


def pixel_positions_m(
    shape_yx: tuple[int, int],
    voxel_size_mm: tuple[float, float],
    centre_mm: tuple[float, float, float],
    read_dir: tuple[float, float, float],
    phase_dir: tuple[float, float, float],
) -> torch.Tensor:
    """Physical positions ``(y, x, 3)`` (metres) of the pixel centres of a 2-D image.

    ``x`` runs along ``read_dir`` and ``y`` along ``phase_dir``; pixel ``n // 2`` sits at ``centre_mm``
    (the ISMRMRD ``position`` of an image).  ``voxel_size_mm`` is ``(dy, dx)``.
    """
    ny, nx = shape_yx
    iy = (torch.arange(ny, dtype=torch.float64) - ny // 2) * voxel_size_mm[0]
    ix = (torch.arange(nx, dtype=torch.float64) - nx // 2) * voxel_size_mm[1]
    centre = torch.tensor(centre_mm, dtype=torch.float64)
    rd = torch.tensor(read_dir, dtype=torch.float64)
    pd = torch.tensor(phase_dir, dtype=torch.float64)
    pos_mm = centre + iy[:, None, None] * pd + ix[None, :, None] * rd
    return pos_mm * 1e-3
