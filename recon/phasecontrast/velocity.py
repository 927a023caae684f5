"""Phase-contrast velocity encoding: phase difference, complex difference and ``v = VENC · Δφ / π``.

Axis convention (phase contrast): images ``(*other, z, y, x)`` where ``*other`` holds
``velocity_encoding`` (0 = flow-compensated reference, 1 = velocity-encoded) and ``cardiac_phase``;
the functions here take the two encodings as separate tensors of equal shape.  Coil-resolved images
put ``coils`` directly before ``(z, y, x)`` and pass ``coil_dim``.

A velocity ``v`` along the encoding direction adds the phase ``π · v / VENC`` to the encoded image
relative to the reference, so velocities are unambiguous on ``(−VENC, VENC]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class VelocityEncoding:
    """How one phase-contrast series encodes velocity.

    Attributes:
        venc_cm_per_s: encoding velocity VENC (cm/s, > 0): the velocity whose phase shift is π.
        flow_direction: +1 when positive velocities point along the slice normal, −1 when against it.
    """

    venc_cm_per_s: float
    flow_direction: int = 1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.venc_cm_per_s) and self.venc_cm_per_s > 0):
            raise ValueError(f"venc_cm_per_s must be a finite positive number, got {self.venc_cm_per_s!r}")
        if self.flow_direction not in (1, -1):
            raise ValueError(f"flow_direction must be +1 or -1, got {self.flow_direction!r}")


def _check_pair(reference: torch.Tensor, encoded: torch.Tensor) -> None:
    if reference.shape != encoded.shape:
        raise ValueError(
            f"reference {tuple(reference.shape)} and encoded {tuple(encoded.shape)} differ in shape"
        )
    if not (reference.is_complex() and encoded.is_complex()):
        raise TypeError("phase-contrast images must be complex tensors")


def phase_difference(
    reference: torch.Tensor, encoded: torch.Tensor, coil_dim: int | None = None
) -> torch.Tensor:
    """Phase difference Δφ = arg(encoded · conj(reference)) in radians, on (−π, π].

    With ``coil_dim`` the coil images (noise-whitened, e.g. after noise adjustment) are combined as
    ``arg Σ_c conj(ref_c) · enc_c``: each coil's phase difference is weighted by its squared magnitude,
    the maximum-likelihood weighting for white noise (Bernstein et al. 1994), and ``coil_dim`` is dropped.
    Coil-combined complex images (``coil_dim=None``) only need the same coil combination for both
    encodings, so that coil phases cancel.

    Args:
        reference: complex, any shape (set 0).
        encoded: complex, same shape (set 1).
        coil_dim: axis holding coils, or ``None`` for combined images.
    """
    return torch.angle(coil_product(reference, encoded, coil_dim))


def coil_product(reference: torch.Tensor, encoded: torch.Tensor, coil_dim: int | None = None) -> torch.Tensor:
    """``Σ_c enc_c · conj(ref_c)`` (or ``enc · conj(ref)`` without ``coil_dim``): the complex quantity whose
    argument is the noise-weighted phase difference and whose modulus is ``Σ_c |ref_c| |enc_c|``."""
    _check_pair(reference, encoded)
    product = encoded * reference.conj()
    return product.sum(dim=coil_dim) if coil_dim is not None else product


def phase_difference_and_magnitude(
    reference: torch.Tensor, encoded: torch.Tensor, coil_dim: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Phase difference (rad) and magnitude ``√|Σ_c enc_c conj(ref_c)|`` from one pass over the coils.

    The magnitude is the geometric mean of the two encodings' (coil-combined) magnitudes: for equal
    magnitudes it equals the root-sum-of-squares image, and it costs nothing beyond the product that the
    phase difference needs (the cheapest magnitude for clinical-size coil data).
    """
    product = coil_product(reference, encoded, coil_dim)
    return torch.angle(product), product.abs().sqrt()


def velocity_from_phase(delta_phase_rad: torch.Tensor, encoding: VelocityEncoding) -> torch.Tensor:
    """``v = flow_direction · VENC · Δφ / π`` (cm/s) from a phase difference in radians."""
    return delta_phase_rad * (encoding.flow_direction * encoding.venc_cm_per_s / math.pi)


def phase_from_velocity(velocity_cm_per_s: torch.Tensor, encoding: VelocityEncoding) -> torch.Tensor:
    """The (unwrapped) phase difference in radians that a velocity produces: ``π · v / (dir · VENC)``."""
    return velocity_cm_per_s * (math.pi / (encoding.flow_direction * encoding.venc_cm_per_s))


def complex_difference(
    reference: torch.Tensor, encoded: torch.Tensor, coil_dim: int | None = None
) -> torch.Tensor:
    """Magnitude of the complex difference ``|enc − ref|`` (root-sum-of-squares over ``coil_dim`` if given).

    The complex difference suppresses static tissue completely (angiography) and does not depend on a
    phase estimate, but it is unsigned and saturates at ``|v| = VENC``.
    """
    _check_pair(reference, encoded)
    diff = (encoded - reference).abs()
    if coil_dim is not None:
        diff = torch.linalg.vector_norm(diff, dim=coil_dim)
    return diff


def combined_magnitude(
    reference: torch.Tensor, encoded: torch.Tensor, coil_dim: int | None = None
) -> torch.Tensor:
    """Mean magnitude of the two encodings (root-sum-of-squares over ``coil_dim`` if given)."""
    _check_pair(reference, encoded)
    mag = 0.5 * (reference.abs() + encoded.abs())
    if coil_dim is not None:
        mag = torch.linalg.vector_norm(mag, dim=coil_dim)
    return mag


def velocity_from_complex_difference(
    reference: torch.Tensor,
    encoded: torch.Tensor,
    encoding: VelocityEncoding,
    coil_dim: int | None = None,
) -> torch.Tensor:
    """Velocity (cm/s) from the complex difference, signed by the phase difference.

    For two equal-magnitude spins ``|enc − ref| = 2 |M| sin(|Δφ| / 2)``, hence
    ``|v| = (VENC / π) · 2 · arcsin(CD / (2 |M|))``; the ratio is clipped to 1 (|v| ≤ VENC).  Unlike the
    phase difference this is insensitive to a phase offset that is common to both encodings but,
    being derived from magnitudes, it is noisier at low SNR.
    """
    cd = complex_difference(reference, encoded, coil_dim)
    mag = combined_magnitude(reference, encoded, coil_dim)
    ratio = torch.where(
        mag > 0, cd / (2.0 * mag.clamp_min(torch.finfo(mag.dtype).tiny)), torch.zeros_like(cd)
    )
    speed = (encoding.venc_cm_per_s / math.pi) * 2.0 * torch.asin(ratio.clamp(0.0, 1.0))
    sign = torch.sign(velocity_from_phase(phase_difference(reference, encoded, coil_dim), encoding))
    return speed * sign
