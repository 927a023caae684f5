"""The ISMRMRD header facts a Dixon reconstruction needs: echo times, field strength, encoding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


def _user_echo_times_ms(header: Any) -> list[float]:
    params = getattr(getattr(header, "userParameters", None), "userParameterDouble", None) or []
    found = {p.name: float(p.value) for p in params if str(p.name).startswith("echo_times_ms_")}
    return [found[f"echo_times_ms_{i}"] for i in range(len(found)) if f"echo_times_ms_{i}" in found]


def echo_times_ms(header: Any) -> list[float]:
    """Echo times (ms) from ``userParameterDouble echo_times_ms_<i>``, else ``sequenceParameters.TE``."""
    user = _user_echo_times_ms(header)
    if user:
        return user
    te = getattr(getattr(header, "sequenceParameters", None), "TE", None)
    return [float(t) for t in te] if te else []


def dixon_protocol(header: Any) -> DixonProtocol:
    """Read the Dixon facts from an ``ismrmrd.xsd.ismrmrdHeader``; a clear error when one is missing."""
    if header is None:
        raise ValueError("the Dixon reconstruction needs the ISMRMRD header (echo times, field strength)")
    te_ms = echo_times_ms(header)
    if not te_ms:
        raise ValueError(
            "header has no echo times (userParameterDouble echo_times_ms_<i> or sequenceParameters.TE)"
        )
    system = getattr(header, "acquisitionSystemInformation", None)
    field_t = float(getattr(system, "systemFieldStrength_T", 0.0) or 0.0)
    if field_t <= 0:
        raise ValueError("header has no acquisitionSystemInformation.systemFieldStrength_T")
    h1 = getattr(getattr(header, "experimentalConditions", None), "H1resonanceFrequency_Hz", None)
    enc = cine_encoding(header)
    if enc is None:
        raise ValueError("header has no encoding section")
    return DixonProtocol(
        echo_times_s=tuple(t * 1e-3 for t in te_ms),
        field_strength_t=field_t,
        larmor_hz=larmor_frequency_hz(field_t, float(h1) if h1 else None),
        n_ky=enc.n_ky,
        n_y=enc.n_y,
        n_x=enc.n_x,
        fov_mm=enc.fov_mm,
        acceleration=enc.acceleration,
    )
