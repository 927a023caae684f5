"""Linear operators with ``forward``, ``adjoint``, ``.H`` and composition with ``@``.

``A @ B`` composes (a new operator ``x ↦ A(B(x))``); ``A(x)`` or ``A.forward(x)`` applies.  ``*`` is not
overloaded, so one symbol never means two things.  Operators are ``torch.nn.Module``s so that tensors
held as buffers follow ``.to(device)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class LinearOperator(torch.nn.Module):
    """Base class.  Subclasses implement :meth:`forward` and :meth:`adjoint` on tensors."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def H(self) -> LinearOperator:
        """The adjoint operator Aᴴ."""
        return AdjointOperator(self)

    def __matmul__(self, other: LinearOperator) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return CompositeOperator([self, other])

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """AᴴA x."""
        return self.adjoint(self.forward(x))


class AdjointOperator(LinearOperator):
    """Aᴴ of a given operator; ``.H`` of it returns the original."""

    def __init__(self, op: LinearOperator) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op.adjoint(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.op.forward(y)

    @property
    def H(self) -> LinearOperator:
        return self.op


class CompositeOperator(LinearOperator):
    """``ops[0] @ ops[1] @ ...``: applies the last one first."""

    def __init__(self, ops: Sequence[LinearOperator]) -> None:
        super().__init__()
        flat: list[LinearOperator] = []
        for op in ops:
            flat.extend(op.operators() if isinstance(op, CompositeOperator) else [op])
        self.ops = torch.nn.ModuleList(flat)

    def operators(self) -> list[LinearOperator]:
        """The composed operators, outermost first."""
        return [op for op in self.ops if isinstance(op, LinearOperator)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in reversed(self.operators()):
            x = op.forward(x)
        return x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        for op in self.operators():
            y = op.adjoint(y)
        return y


class IdentityOperator(LinearOperator):
    """x ↦ x."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y


class MultiplyOperator(LinearOperator):
    """Pointwise multiplication by a (broadcast) tensor ``weights``: x ↦ w·x, adjoint y ↦ conj(w)·y."""

    weights: torch.Tensor

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weights", weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weights * x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.weights.conj() * y if self.weights.is_complex() else self.weights * y
