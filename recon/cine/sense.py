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
    """
    op = SenseOperator(coil_maps, mask)
    rhs = op.adjoint(kspace)

    def normal(x: torch.Tensor) -> torch.Tensor:
        return op.normal(x) + regularization * x if regularization else op.normal(x)

    return conjugate_gradient(normal, rhs, n_iterations=n_iterations, tolerance=tolerance)
