"""One typed MR header that every input format maps into, and every MR plugin reads.

ISMRMRD v1 XML headers are read field by field here; MRD v2 headers (``mrd.Header``) map into the v1
header first (:mod:`plugins.io.mrd2_header`, every field both hold) and Siemens twix protocols likewise
(:mod:`plugins.io.twix_header`), so all three arrive as the same :class:`MRHeader`.

Units are in the names: ``_mm``, ``_ms``, ``_deg``, ``_t`` (tesla), ``_hz``.  Axis order of matrix and field
of view is (x = readout, y = phase encoding, z = partition or slice thickness).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

#: Encoding-limit names, as in the ISMRMRD schema.
LIMIT_NAMES = (
    "kspace_encoding_step_0",
    "kspace_encoding_step_1",
    "kspace_encoding_step_2",
    "average",
    "slice",
    "contrast",
    "phase",
    "repetition",
    "set",
    "segment",
)


@dataclass(frozen=True)
class Limit:
    """An encoding counter's range: ``minimum`` … ``maximum`` (inclusive), ``center``."""

    minimum: int
    maximum: int
    center: int

    @property
    def count(self) -> int:
        """Number of values, ``maximum + 1`` (counters start at 0)."""
        return self.maximum + 1


@dataclass(frozen=True)
class EncodingSpace:
    """A matrix ``(x, y, z)`` (samples) and its field of view ``fov_mm`` ``(x, y, z)`` (mm)."""

    matrix: tuple[int, int, int]
    fov_mm: tuple[float, float, float]

    def __post_init__(self) -> None:
        if any(n < 0 for n in self.matrix) or any(not math.isfinite(f) or f < 0 for f in self.fov_mm):
            raise ValueError(f"encoding space {self.matrix} / {self.fov_mm} mm: negative or non-finite")


@dataclass(frozen=True)
class Encoding:
    """One encoding: encoded and recon spaces, counter limits, trajectory, parallel imaging.

    Attributes:
        encoded: the acquired k-space grid (readout samples with oversampling).
        recon: the reconstructed image grid.
        limits: counter name (:data:`LIMIT_NAMES`) → :class:`Limit`; only the limits the header gives.
        trajectory: ``cartesian``, ``epi``, ``radial``, ``goldenangle``, ``spiral`` or ``other``.
        acceleration: in-plane (k1) and through-plane (k2) acceleration factors (1 when absent).
        calibration_mode: ``embedded``, ``interleaved``, ``separate``, ``external``, ``other`` or None.
    """

    encoded: EncodingSpace
    recon: EncodingSpace
    limits: Mapping[str, Limit]
    trajectory: str = "cartesian"
    acceleration: tuple[int, int] = (1, 1)
    calibration_mode: str | None = None


@dataclass(frozen=True)
class MRHeader:
    """The MR facts of a session header.

    Attributes:
        encodings: every encoding (most sessions have one).
        field_strength_t: B0 in T (None when absent).
        larmor_hz: ¹H resonance frequency in Hz (None when absent).
        n_receiver_channels: receive channels announced (None when absent).
        tr_ms, te_ms, ti_ms: repetition, echo and inversion times in ms (empty when absent).
        flip_angle_deg: flip angles in degrees.
        user_parameters: name → values (numbers for long/double parameters, text for string ones).
    """

    encodings: tuple[Encoding, ...]
    field_strength_t: float | None = None
    larmor_hz: float | None = None
    n_receiver_channels: int | None = None
    tr_ms: tuple[float, ...] = ()
    te_ms: tuple[float, ...] = ()
    ti_ms: tuple[float, ...] = ()
    flip_angle_deg: tuple[float, ...] = ()
    user_parameters: Mapping[str, tuple[float | str, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def numbers(self, name: str) -> list[float]:
        """The values of user parameter ``name`` as numbers; ``ValueError`` naming one that is not."""
        out = []
        for value in self.user_parameters.get(name, ()):
            try:
                out.append(float(value))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"user parameter {name}={value!r} is not a number") from exc
        return out

    @property
    def echo_times_ms(self) -> tuple[float, ...]:
        """Echo times (ms): user parameters ``echo_times_ms_<i>`` (i = 0, 1, … without gaps), else ``te_ms``."""
        user: list[float] = []
        while f"echo_times_ms_{len(user)}" in self.user_parameters:
            user.append(self.numbers(f"echo_times_ms_{len(user)}")[0])
        return tuple(user) if user else self.te_ms

    def limit(self, name: str, encoding: int = 0) -> Limit | None:
        """A counter limit of an encoding, None when the header does not give it."""
        if not 0 <= encoding < len(self.encodings):
            return None
        return self.encodings[encoding].limits.get(name)


def _get(obj: Any, *names: str) -> Any:
    for name in names:
        obj = getattr(obj, name, None) if obj is not None else None
    return obj


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in (values or []))


def _space(space: Any) -> EncodingSpace:
    size, fov = _get(space, "matrixSize"), _get(space, "fieldOfView_mm")
    matrix = tuple(int(getattr(size, a, 0) or 0) for a in "xyz") if size is not None else (0, 0, 0)
    fov_mm = tuple(float(getattr(fov, a, 0.0) or 0.0) for a in "xyz") if fov is not None else (0.0, 0.0, 0.0)
    return EncodingSpace(matrix, fov_mm)  # type: ignore[arg-type]


def _encoding(enc: Any) -> Encoding:
    limits: dict[str, Limit] = {}
    for name in LIMIT_NAMES:
        lim = _get(enc, "encodingLimits", name)
        if lim is not None and lim.maximum is not None:
            limits[name] = Limit(int(lim.minimum or 0), int(lim.maximum), int(lim.center or 0))
    factor = _get(enc, "parallelImaging", "accelerationFactor")
    trajectory, mode = _get(enc, "trajectory"), _get(enc, "parallelImaging", "calibrationMode")
    return Encoding(
        encoded=_space(_get(enc, "encodedSpace")),
        recon=_space(_get(enc, "reconSpace")),
        limits=MappingProxyType(limits),
        trajectory=str(getattr(trajectory, "value", trajectory) or "cartesian"),
        acceleration=(
            int(_get(factor, "kspace_encoding_step_1") or 1),
            int(_get(factor, "kspace_encoding_step_2") or 1),
        ),
        calibration_mode=None if mode is None else str(getattr(mode, "value", mode)),
    )


def _user_parameters(header: Any) -> Mapping[str, tuple[float | str, ...]]:
    params = _get(header, "userParameters")
    found: dict[str, list[float | str]] = {}
    for group, convert in (
        ("userParameterLong", float),
        ("userParameterDouble", float),
        ("userParameterString", str),
    ):
        for p in getattr(params, group, None) or []:
            try:
                value: float | str = convert(p.value)
            except (TypeError, ValueError):
                value = str(p.value)
            found.setdefault(str(p.name), []).append(value)
    return MappingProxyType({k: tuple(v) for k, v in found.items()})


def _positive(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def from_ismrmrd(header: Any) -> MRHeader:
    """The typed header of an ISMRMRD v1 XML header (``ismrmrd.xsd.ismrmrdHeader``)."""
    seq = _get(header, "sequenceParameters")
    channels = _get(header, "acquisitionSystemInformation", "receiverChannels")
    return MRHeader(
        encodings=tuple(_encoding(e) for e in (_get(header, "encoding") or [])),
        field_strength_t=_positive(_get(header, "acquisitionSystemInformation", "systemFieldStrength_T")),
        larmor_hz=_positive(_get(header, "experimentalConditions", "H1resonanceFrequency_Hz")),
        n_receiver_channels=int(channels) if channels else None,
        tr_ms=_floats(_get(seq, "TR")),
        te_ms=_floats(_get(seq, "TE")),
        ti_ms=_floats(_get(seq, "TI")),
        flip_angle_deg=_floats(_get(seq, "flipAngle_deg")),
        user_parameters=_user_parameters(header),
    )


def mr_header(header: Any) -> MRHeader | None:
    """The :class:`MRHeader` of any session header: ISMRMRD v1, MRD v2 (``mrd.Header``), or already typed.

    None for no header.  (Twix protocols become v1 headers when the file is read.)
    """
    if header is None or isinstance(header, MRHeader):
        return header
    if type(header).__module__.startswith("mrd"):
        from plugins.io.mrd2_header import header_v2_to_v1

        header = header_v2_to_v1(header)
    return from_ismrmrd(header)
