"""Compressed sensing for cine: SENSE with temporal total variation, solved by ADMM.

    minimise_x  ½‖E x − y‖₂² + λ‖D_t x‖₁

with E the multi-frame SENSE operator (iterated in the ``ifftshift``-ed domain, see
:class:`recon.cine.sense.ShiftedSense`) and D_t the cyclic finite difference along the cardiac-phase axis
(the cardiac cycle is periodic).  ADMM with the splitting z = D_t x:

    x ← argmin ½‖E x − y‖² + ρ/2‖D_t x − z + u‖²     (a few warm-started CG iterations)
    z ← soft(D_t x + u, λ/ρ),   u ← u + D_t x − z

λ is given relative to the largest magnitude of the CG-SENSE start image, so the same value works for
any data scaling.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recon.cine.sense import SenseOperator, ShiftedSense, cg_sense, shift, unshift
from recon.common.linop import LinearOperator
from recon.common.solvers import conjugate_gradient


class TemporalDifference(LinearOperator):
    """(D x)_p = x_{p+1} − x_p cyclically along ``dim`` (the cardiac-phase axis of ``(phases, y, x)`` images)."""

    def __init__(self, dim: int = -3) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.roll(x, shifts=-1, dims=self.dim) - x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return torch.roll(y, shifts=1, dims=self.dim) - y


def soft_threshold(v: torch.Tensor, threshold: float) -> torch.Tensor:
    """Complex soft thresholding v·max(|v| − τ, 0)/|v|."""
    magnitude = v.abs()
    return v * ((magnitude - threshold).clamp_min(0) / magnitude.clamp_min(1e-30))


@dataclass(frozen=True)
class TemporalTVResult:
    """Outcome of :func:`sense_temporal_tv`.

    Attributes:
        images: ``(phases, ny, nx)`` complex reconstruction.
        objective: ``(n_iterations,)`` values of ½‖Ex − y‖² + λ‖D_t x‖₁ after each ADMM iteration.
        regularization_abs: the absolute λ used.
    """

    images: torch.Tensor
    objective: tuple[float, ...]
    regularization_abs: float


def sense_temporal_tv(
    kspace: torch.Tensor,
    coil_maps: torch.Tensor,
    mask: torch.Tensor,
    regularization: float = 0.01,
    n_iterations: int = 10,
    n_cg_iterations: int = 5,
    admm_penalty: float = 0.5,
    n_initial_cg_iterations: int = 10,
) -> TemporalTVResult:
    """SENSE + temporal TV of ``kspace (phases, coils, ky, kx)`` with ``mask`` broadcastable to it.

    Args:
        regularization: λ relative to max|x₀| (x₀ = CG-SENSE start image).
        n_iterations: ADMM iterations.
        n_cg_iterations: CG iterations of each x-update (warm started).
        admm_penalty: ρ relative to λ's scale-free units (ρ multiplies DᴴD; EᴴE ≤ 1 for normalised maps).
        n_initial_cg_iterations: CG-SENSE iterations for the start image.
    """
    model, diff = ShiftedSense(coil_maps, mask), TemporalDifference(dim=-3)
    x = shift(cg_sense(kspace, coil_maps, mask, n_iterations=n_initial_cg_iterations).x)
    lam = regularization * float(x.abs().max())
    rho = admm_penalty
    rhs0 = shift(SenseOperator(coil_maps, mask).adjoint(kspace))
    data = shift(kspace)
    z = diff(x)
    u = torch.zeros_like(z)
    history: list[float] = []

    def normal(v: torch.Tensor) -> torch.Tensor:
        return model.normal(v) + rho * diff.adjoint(diff(v))

    for _ in range(n_iterations):
        x = conjugate_gradient(normal, rhs0 + rho * diff.adjoint(z - u), x0=x, n_iterations=n_cg_iterations).x
        dx = diff(x)
        z = soft_threshold(dx + u, lam / rho)
        u = u + dx - z
        residual = model.forward(x) - data
        history.append(float(0.5 * residual.abs().pow(2).sum() + lam * dx.abs().sum()))
    return TemporalTVResult(unshift(x), tuple(history), lam)
