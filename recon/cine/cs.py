"""Compressed sensing for cine: SENSE with temporal total variation (ADMM), or low-rank + sparse (L + S).

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


def singular_value_threshold(casorati: torch.Tensor, threshold: float) -> torch.Tensor:
    """Prox of τ‖·‖_* on a tall ``(pixels, phases)`` matrix, via the eigen-decomposition of its small Gram.

    With CᴴC = V Σ² Vᴴ: SVT(C) = C V diag(max(σ − τ, 0)/σ) Vᴴ (only a ``phases × phases`` eigenproblem,
    solved in double precision; runs on the tensor's device).
    """
    gram = (casorati.conj().T @ casorati).to(torch.complex128)
    eigenvalues, vectors = torch.linalg.eigh(0.5 * (gram + gram.conj().T))
    sigma = eigenvalues.clamp_min(0).sqrt()
    shrink = ((sigma - threshold).clamp_min(0) / sigma.clamp_min(1e-30)).to(casorati.dtype)
    v = vectors.to(casorati.dtype)
    return casorati @ (v * shrink[None, :]) @ v.conj().T


@dataclass(frozen=True)
class LowRankSparseResult:
    """Outcome of :func:`sense_low_rank_sparse`.

    Attributes:
        images: ``(phases, ny, nx)`` complex reconstruction L + S.
        low_rank: ``(phases, ny, nx)`` the low-rank (background) component L.
        objective: ``(n_iterations,)`` ½‖E(L+S) − y‖² + λ_L‖L‖_* + λ_S‖F_t S‖₁ after each iteration.
        regularization_abs: the absolute (λ_L, λ_S) used.
    """

    images: torch.Tensor
    low_rank: torch.Tensor
    objective: tuple[float, ...]
    regularization_abs: tuple[float, float]


def sense_low_rank_sparse(
    kspace: torch.Tensor,
    coil_maps: torch.Tensor,
    mask: torch.Tensor,
    low_rank_regularization: float = 0.01,
    sparse_regularization: float = 0.003,
    n_iterations: int = 30,
    n_initial_cg_iterations: int = 10,
) -> LowRankSparseResult:
    """L + S reconstruction (Otazo, Candès, Sodickson, MRM 2015) of ``kspace (phases, coils, ky, kx)``.

        minimise_{L,S}  ½‖E(L + S) − y‖₂² + λ_L‖L‖_* + λ_S‖F_t S‖₁

    L's nuclear norm is taken over the Casorati matrix (pixels × phases), F_t is the orthonormal temporal
    FFT.  Proximal-gradient iterations as in Otazo et al. (step 1, valid because ‖EᴴE‖ ≤ 1 for maps
    normalised to Σ|C|² = 1):  L ← SVT(M − S, λ_L), S ← F_tᴴ soft(F_t(M − L_prev), λ_S),
    M ← L + S − Eᴴ(E(L + S) − y).  Starts from the CG-SENSE image (L = start, S = 0).

    Args:
        low_rank_regularization: λ_L relative to the largest singular value of the start's Casorati matrix.
        sparse_regularization: λ_S relative to max|F_t x₀| of the start image x₀.
        n_iterations: proximal-gradient iterations.
        n_initial_cg_iterations: CG-SENSE iterations for the start image.
    """
    model = ShiftedSense(coil_maps, mask)
    x0 = shift(cg_sense(kspace, coil_maps, mask, n_iterations=n_initial_cg_iterations).x)
    n_phases = x0.shape[0]
    data = shift(kspace)

    def casorati(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(n_phases, -1).T

    def from_casorati(c: torch.Tensor) -> torch.Tensor:
        return c.T.reshape(x0.shape)

    sigma_max = float(torch.linalg.matrix_norm(casorati(x0), ord=2))
    lam_l = low_rank_regularization * sigma_max
    lam_s = sparse_regularization * float(torch.fft.fft(x0, dim=0, norm="ortho").abs().max())
    low_rank, sparse, m = x0, torch.zeros_like(x0), x0
    history: list[float] = []
    for _ in range(n_iterations):
        low_rank_new = from_casorati(singular_value_threshold(casorati(m - sparse), lam_l))
        spectrum = torch.fft.fft(m - low_rank, dim=0, norm="ortho")
        sparse = torch.fft.ifft(soft_threshold(spectrum, lam_s), dim=0, norm="ortho")
        low_rank = low_rank_new
        estimate = low_rank + sparse
        residual = model.forward(estimate) - data
        m = estimate - (model.maps.conj() * torch.fft.ifft2(model.mask * residual, norm="ortho")).sum(dim=-3)
        nuclear = float(torch.linalg.matrix_norm(casorati(low_rank), ord="nuc"))
        l1 = float(torch.fft.fft(sparse, dim=0, norm="ortho").abs().sum())
        history.append(float(0.5 * residual.abs().pow(2).sum()) + lam_l * nuclear + lam_s * l1)
    return LowRankSparseResult(unshift(low_rank + sparse), unshift(low_rank), tuple(history), (lam_l, lam_s))
