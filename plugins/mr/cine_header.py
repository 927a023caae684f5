"""Reading the few ISMRMRD header values the cine plugins need (with defaults for sparse headers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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


def _get(obj: Any, *names: str) -> Any:
    for name in names:
        obj = getattr(obj, name, None) if obj is not None else None
    return obj


def cine_encoding(header: Any) -> CineEncoding | None:
    """The encoding of ``header`` (an ``ismrmrd.xsd.ismrmrdHeader``), or None without a header."""
    enc = _get(header, "encoding")
    if not enc:
        return None
    e = enc[0]
    limits = _get(e, "encodingLimits", "kspace_encoding_step_1")
    n_ky = (
        int(limits.maximum) + 1
        if limits is not None and limits.maximum is not None
        else int(e.encodedSpace.matrixSize.y)
    )
    n_ky = max(n_ky, int(e.encodedSpace.matrixSize.y))
    fov = e.reconSpace.fieldOfView_mm
    accel = _get(e, "parallelImaging", "accelerationFactor", "kspace_encoding_step_1")
    phase = _get(e, "encodingLimits", "phase", "maximum")
    return CineEncoding(
        n_kx_encoded=int(e.encodedSpace.matrixSize.x),
        n_x=int(e.reconSpace.matrixSize.x),
        n_ky=n_ky,
        n_y=int(e.reconSpace.matrixSize.y),
        fov_mm=(float(fov.x), float(fov.y), float(fov.z)),
        acceleration=int(accel) if accel else 1,
        n_phases=int(phase) + 1 if phase is not None else 0,
    )
