"""Iterative solvers, written as small loops with explicit state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class CGResult:
    """Outcome of :func:`conjugate_gradient`.

    Attributes:
        x: the solution, same shape as the right-hand side.
        n_iterations: iterations actually run.
        residual_norms: ‖r_k‖₂ / ‖b‖₂ after each iteration (length ``n_iterations``).
    """

    x: torch.Tensor
    n_iterations: int
    residual_norms: tuple[float, ...]


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Real part of ⟨a, b⟩ = Σ conj(a)·b (a 0-d tensor, kept on the device)."""
    return torch.vdot(a.reshape(-1), b.reshape(-1)).real


def conjugate_gradient(
    normal_op: Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    x0: torch.Tensor | None = None,
    n_iterations: int = 10,
    tolerance: float = 0.0,
) -> CGResult:
    """Solve ``N x = b`` for a Hermitian positive semi-definite ``N`` (e.g. AᴴA + λI) by conjugate gradients.

    Args:
        normal_op: x ↦ N x.
        rhs: b, any shape; x has the same shape.
        x0: start value (zeros when ``None``).
        n_iterations: maximum iterations (≥ 0).
        tolerance: stop early when ‖r‖/‖b‖ falls below this (0 = run all iterations).
    """
    if n_iterations < 0:
        raise ValueError(f"n_iterations must be ≥ 0, got {n_iterations}")
    x = torch.zeros_like(rhs) if x0 is None else x0.clone()
    r = rhs - normal_op(x) if x0 is not None else rhs.clone()
    p = r.clone()
    rr = _dot(r, r)
    b_norm = float(torch.linalg.vector_norm(rhs)) or 1.0
    history: list[float] = []
    for _ in range(n_iterations):
        if float(rr) == 0.0:
            break
        q = normal_op(p)
        alpha = rr / _dot(p, q)
        x = x + alpha * p
        r = r - alpha * q
        rr_new = _dot(r, r)
        history.append(float(rr_new.sqrt()) / b_norm)
        if history[-1] < tolerance:
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return CGResult(x=x, n_iterations=len(history), residual_norms=tuple(history))


def power_iteration(
    normal_op: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    n_iterations: int = 20,
) -> float:
    """Largest eigenvalue of a Hermitian PSD operator (e.g. ‖A‖² from AᴴA), by power iteration from ``x0``."""
    x = x0 / torch.linalg.vector_norm(x0)
    eigenvalue = 0.0
    for _ in range(n_iterations):
        y = normal_op(x)
        eigenvalue = float(torch.linalg.vector_norm(y))
        if eigenvalue == 0.0:
            return 0.0
        x = y / eigenvalue
    return eigenvalue
