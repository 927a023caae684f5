"""The header facts a Dixon reconstruction needs (echo times, field strength, encoding), from the typed
header (:mod:`plugins.io.mr_header`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plugins.io.mr_header import mr_header
from plugins.mr.cine_header import cine_encoding
from recon.petmr_ac.fat_model import larmor_frequency_hz


@dataclass(frozen=True)
class DixonProtocol:
    """Dixon acquisition parameters read from the header.

    Attributes:
        echo_times_s: echo time of each contrast index (s), increasing, ≥ 2 entries.
        field_strength_t: B0 (T), from ``acquisitionSystemInformation.systemFieldStrength_T``.
        larmor_hz: proton resonance frequency (Hz): ``experimentalConditions.H1resonanceFrequency_Hz``, else γ̄·B0.
        n_ky: phase-encoding lines of the encoded matrix.
        n_y, n_x: reconstructed matrix (phase, readout).
        fov_mm: reconstructed field of view (x = readout, y = phase, z = slice thickness), mm.
        acceleration: in-plane acceleration along ky (1 when not accelerated).
    """

    echo_times_s: tuple[float, ...]
    field_strength_t: float
    larmor_hz: float
    n_ky: int
    n_y: int
    n_x: int
    fov_mm: tuple[float, float, float]
    acceleration: int

    def __post_init__(self) -> None:
        if len(self.echo_times_s) < 2 or any(
            b <= a for a, b in zip(self.echo_times_s, self.echo_times_s[1:], strict=False)
        ):
            raise ValueError(f"Dixon needs ≥ 2 increasing echo times, header gives {self.echo_times_s}")
        if self.field_strength_t <= 0:
            raise ValueError(f"field strength must be > 0 T, header gives {self.field_strength_t}")


def echo_times_ms(header: Any) -> list[float]:
    """Echo times (ms) from ``userParameterDouble echo_times_ms_<i>``, else ``sequenceParameters.TE``."""
    typed = mr_header(header)
    return list(typed.echo_times_ms) if typed is not None else []


def dixon_protocol(header: Any) -> DixonProtocol:
    """Read the Dixon facts from a session header (:func:`plugins.io.mr_header.mr_header`); a clear error
    when one is missing."""
    typed = mr_header(header)
    if typed is None:
        raise ValueError("the Dixon reconstruction needs the ISMRMRD header (echo times, field strength)")
    te_ms = list(typed.echo_times_ms)
    if not te_ms:
        raise ValueError(
            "header has no echo times (userParameterDouble echo_times_ms_<i> or sequenceParameters.TE)"
        )
    if typed.field_strength_t is None:
        raise ValueError("header has no acquisitionSystemInformation.systemFieldStrength_T")
    enc = cine_encoding(typed)
    if enc is None:
        raise ValueError("header has no encoding section")
    return DixonProtocol(
        echo_times_s=tuple(t * 1e-3 for t in te_ms),
        field_strength_t=typed.field_strength_t,
        larmor_hz=larmor_frequency_hz(typed.field_strength_t, typed.larmor_hz),
        n_ky=enc.n_ky,
        n_y=enc.n_y,
        n_x=enc.n_x,
        fov_mm=enc.fov_mm,
        acceleration=enc.acceleration,
    )
