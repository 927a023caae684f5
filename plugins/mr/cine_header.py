"""The encoding facts the cine plugins need, read from the typed header (:mod:`plugins.io.mr_header`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plugins.io.mr_header import mr_header


@dataclass(frozen=True)
class CineEncoding:
    """Encoding facts of the session.

    Attributes:
        n_kx_encoded: readout samples as acquired (with oversampling).
        n_x: reconstructed matrix along the readout.
        n_ky: phase-encoding lines of the encoded matrix.
        n_y: reconstructed matrix along the phase-encoding direction.
        fov_mm: reconstructed field of view (x, y, z) in mm.
        acceleration: in-plane acceleration along ky announced by the header (1 when absent).
        n_phases: cardiac phases announced by the header (``encodingLimits.phase.maximum + 1``; 0 when absent).
    """

    n_kx_encoded: int
    n_x: int
    n_ky: int
    n_y: int
    fov_mm: tuple[float, float, float]
    acceleration: int
    n_phases: int

    @property
    def readout_oversampling(self) -> int:
        """Integer readout oversampling factor (encoded / recon matrix)."""
        return max(1, round(self.n_kx_encoded / self.n_x)) if self.n_x else 1


def cine_encoding(header: Any) -> CineEncoding | None:
    """The first encoding of ``header`` (any header :func:`plugins.io.mr_header.mr_header` reads), or None
    without a header or encoding."""
    typed = mr_header(header)
    if typed is None or not typed.encodings:
        return None
    e = typed.encodings[0]
    ky = e.limits.get("kspace_encoding_step_1")
    phase = e.limits.get("phase")
    return CineEncoding(
        n_kx_encoded=e.encoded.matrix[0],
        n_x=e.recon.matrix[0],
        n_ky=max(ky.count if ky is not None else 0, e.encoded.matrix[1]),
        n_y=e.recon.matrix[1],
        fov_mm=e.recon.fov_mm,
        acceleration=e.acceleration[0],
        n_phases=phase.count if phase is not None else 0,
    )
