"""Device resolution: done once per chain run, never at import time."""

from __future__ import annotations

from typing import Literal

import torch

DeviceChoice = Literal["auto", "cpu", "cuda"]


def resolve_device(choice: DeviceChoice | str = "auto") -> torch.device:
    """Turn ``auto | cpu | cuda[:N]`` into a concrete :class:`torch.device`.

    ``auto`` picks CUDA when a GPU is present, else the CPU.  Asking for ``cuda`` on a machine without
    a GPU is an error that says so (no silent fallback: the user asked for it explicitly).
    """
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if str(choice).startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device {choice!r} requested but no CUDA GPU is available; use 'auto' or 'cpu'"
            )
        return torch.device(choice)
    raise ValueError(f"unknown device {choice!r}; allowed: auto, cpu, cuda, cuda:N")


def complex_dtype_for(real: torch.dtype) -> torch.dtype:
    """The complex dtype matching a real floating dtype (float32 → complex64, float64 → complex128)."""
    return {torch.float32: torch.complex64, torch.float64: torch.complex128}[real]
