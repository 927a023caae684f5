"""Checks every linear operator must pass: adjointness ⟨Ax, y⟩ = ⟨x, Aᴴy⟩, linearity and shapes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def random_complex(
    shape: Sequence[int],
    generator: torch.Generator,
    dtype: torch.dtype = torch.complex128,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Standard complex Gaussian tensor (seeded through ``generator``)."""
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    re = torch.randn(tuple(shape), generator=generator, dtype=real)
    im = torch.randn(tuple(shape), generator=generator, dtype=real)
    return torch.complex(re, im).to(device)


def assert_adjoint(
    forward: Callable[[torch.Tensor], torch.Tensor],
    adjoint: Callable[[torch.Tensor], torch.Tensor],
    domain_shape: Sequence[int],
    range_shape: Sequence[int],
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.complex128,
    rtol: float = 1e-10,
    real: bool = False,
) -> None:
    """Assert ⟨A x, y⟩ = ⟨x, Aᴴ y⟩ for seeded random x, y, plus the shapes of A x and Aᴴ y and linearity.

    ``real=True`` draws real inputs (for operators on real vectors such as PET projectors).
    """
    g = torch.Generator().manual_seed(seed)
    if real:
        rdt = torch.float64 if dtype in (torch.complex128, torch.float64) else torch.float32
        x = torch.randn(tuple(domain_shape), generator=g, dtype=rdt)
        y = torch.randn(tuple(range_shape), generator=g, dtype=rdt)
        x2 = torch.randn(tuple(domain_shape), generator=g, dtype=rdt)
    else:
        x = random_complex(domain_shape, g, dtype)
        y = random_complex(range_shape, g, dtype)
        x2 = random_complex(domain_shape, g, dtype)
    ax = forward(x)
    ahy = adjoint(y)
    assert tuple(ax.shape) == tuple(range_shape), (
        f"A x has shape {tuple(ax.shape)}, expected {tuple(range_shape)}"
    )
    assert tuple(ahy.shape) == tuple(domain_shape), (
        f"Aᴴ y has shape {tuple(ahy.shape)}, expected {tuple(domain_shape)}"
    )
    lhs = torch.vdot(ax.reshape(-1).to(y.dtype), y.reshape(-1))
    rhs = torch.vdot(x.reshape(-1), ahy.reshape(-1).to(x.dtype))
    scale = float(torch.linalg.vector_norm(ax)) * float(torch.linalg.vector_norm(y)) or 1.0
    assert abs(complex(lhs) - complex(rhs)) <= rtol * scale, (
        f"adjoint mismatch: ⟨Ax,y⟩={complex(lhs)} ⟨x,Aᴴy⟩={complex(rhs)}"
    )
    combo = forward(2.0 * x + 3.0 * x2)
    expected = 2.0 * ax + 3.0 * forward(x2)
    err = float(torch.linalg.vector_norm(combo - expected))
    assert err <= max(rtol, 1e-6) * float(torch.linalg.vector_norm(expected)) * 10, f"not linear: error {err}"
