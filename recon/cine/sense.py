"""SENSE forward model and CG-SENSE on Cartesian k-space."""

from __future__ import annotations

import torch

from recon.common.fft import fftc, ifftc
from recon.common.linop import LinearOperator
from recon.common.solvers import CGResult, conjugate_gradient


class SenseOperator(LinearOperator):
    """E x = M · FFT(C · x): images ``(..., ny, nx)`` → k-space ``(..., coils, ky, kx)``.

    Args:
        coil_maps: ``(coils, ny, nx)`` complex sensitivities.
        mask: sampling mask broadcastable to ``(..., coils, ky, kx)`` (e.g. ``(ky, 1)`` for line sampling
            or ``(phases, 1, ky, 1)`` when the pattern changes per frame); bool or real.
    """

    coil_maps: torch.Tensor
    mask: torch.Tensor

    def __init__(self, coil_maps: torch.Tensor, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("coil_maps", coil_maps)
        self.register_buffer("mask", mask.to(coil_maps.real.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mask * fftc(self.coil_maps * x.unsqueeze(-3))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return (self.coil_maps.conj() * ifftc(self.mask * y)).sum(dim=-3)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        mask = self.mask * self.mask
        return (self.coil_maps.conj() * ifftc(mask * fftc(self.coil_maps * x.unsqueeze(-3)))).sum(dim=-3)


class ShiftedSense:
    """The SENSE model in the ``ifftshift``-ed image and k-space domains (no centring shifts per iteration).

    With ' = ifftshift over (y, x): ifftshift(Eᴴ E x) = Σ_c C'*_c · IFFT(M' · FFT(C'_c x')), and
    E x = fftshift(M' · FFT(C' x')).  Iterative solvers run on x' and shift once at the end.
    """

    def __init__(self, coil_maps: torch.Tensor, mask: torch.Tensor) -> None:
        self.maps = torch.fft.ifftshift(coil_maps, dim=(-2, -1))
        self.mask = torch.fft.ifftshift(mask.to(coil_maps.real.dtype), dim=(-2, -1))
        self.mask2 = self.mask * self.mask

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """Eᴴ E in the shifted domain."""
        k = torch.fft.fft2(self.maps * x.unsqueeze(-3), norm="ortho")
        return (self.maps.conj() * torch.fft.ifft2(self.mask2 * k, norm="ortho")).sum(dim=-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """E x with both x and the result in the shifted domains."""
        return self.mask * torch.fft.fft2(self.maps * x.unsqueeze(-3), norm="ortho")


def shift(x: torch.Tensor) -> torch.Tensor:
    """ifftshift over the last two axes (into the shifted domain)."""
    return torch.fft.ifftshift(x, dim=(-2, -1))


def unshift(x: torch.Tensor) -> torch.Tensor:
    """fftshift over the last two axes (back to centred images / k-space)."""
    return torch.fft.fftshift(x, dim=(-2, -1))


def cg_sense(
    kspace: torch.Tensor,
    coil_maps: torch.Tensor,
    mask: torch.Tensor,
    n_iterations: int = 10,
    regularization: float = 0.0,
    tolerance: float = 0.0,
) -> CGResult:
    """Solve (EᴴE + λI) x = Eᴴ y for all frames of ``kspace (..., coils, ky, kx)`` jointly (block diagonal).

    ``regularization`` λ is absolute; with maps normalised to Σ|C|² = 1, EᴴE has eigenvalues ≤ 1.
    Runs in the shifted domain (:class:`ShiftedSense`); the result is in the centred image domain.
    """
    rhs = shift(SenseOperator(coil_maps, mask).adjoint(kspace))
    model = ShiftedSense(coil_maps, mask)

    def normal(x: torch.Tensor) -> torch.Tensor:
        return model.normal(x) + regularization * x if regularization else model.normal(x)

    result = conjugate_gradient(normal, rhs, n_iterations=n_iterations, tolerance=tolerance)
    return CGResult(unshift(result.x), result.n_iterations, result.residual_norms)
