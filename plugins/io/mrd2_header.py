"""The MRD v2 header (``mrd.Header``, yardl) mapped to and from the ISMRMRD v1 XML header, field by field.

The two schemas describe the same tree with different spellings (``fieldOfView_mm`` ↔ ``field_of_view_mm``,
``TR`` ↔ ``t_r``, ``H1resonanceFrequency_Hz`` ↔ ``h1resonance_frequency_hz``); fields are matched by their
name with case and underscores ignored, recursively, so every field both schemas hold maps both ways:
subject, study and measurement information, system, experimental conditions, every encoding (spaces,
limits, trajectory and its description, parallel imaging), sequence parameters, user parameters (long,
double, string, base64 — e.g. ``VENC_cm_per_s``, ``echo_times_ms_<i>``) and waveform information.

Conversions besides names: enums by member name (``trajectoryType.CARTESIAN`` ↔ ``Trajectory.CARTESIAN``),
``patientGender`` text ``M``/``F``/``O`` ↔ ``PatientGender``, ``XmlDate``/``XmlTime`` ↔ ``datetime.date`` /
``yardl.Time``.  What does not map is listed in :data:`NOT_MAPPED` (and in the README); a value that one
schema cannot hold is dropped with a log line, never silently changed.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import functools
import logging
import types
import typing
from typing import Any

import ismrmrd.xsd
import mrd
import numpy as np
from xsdata.models.datatype import XmlDate, XmlTime

log = logging.getLogger("reconstream.io.mrd2")

#: What the v1 ↔ v2 header mapping cannot carry (documented in the README's formats section).
NOT_MAPPED = (
    "ISMRMRD v1 header 'version' has no MRD v2 field of that meaning: v2 writes its own schema version",
    "text in v1 fields the v2 schema types as numbers or enums (xsdata keeps unparsable values as text) is dropped",
)


def _key(name: str) -> str:
    return name.replace("_", "").lower()


def _v1_fields(cls: type) -> dict[str, tuple[str, Any]]:
    hints = typing.get_type_hints(cls)
    return {_key(f.name): (f.name, hints[f.name]) for f in dataclasses.fields(cls)}


@functools.cache
def _v2_fields(cls: Any) -> dict[str, tuple[str, Any]]:
    hints = typing.get_type_hints(cls.__init__, include_extras=True)
    hints.pop("return", None)
    return {_key(name): (name, _float32_marked(hint)) for name, hint in hints.items()}


class _Float32:
    """Marks a v2 field stored as float32 (its value comes back as the shortest decimal of that float32)."""


def _float32_marked(hint: Any) -> Any:
    """The hint without ``Annotated`` extras; ``Annotated[float, 'Float32']`` becomes :class:`_Float32`."""
    if typing.get_origin(hint) is typing.Annotated:
        base, *extras = typing.get_args(hint)
        return _Float32 if base is float and "Float32" in extras else base
    args = typing.get_args(hint)
    if args and typing.get_origin(hint) in (typing.Union, types.UnionType, list):
        mapped = tuple(_float32_marked(a) for a in args)
        if typing.get_origin(hint) is list:
            return list[mapped[0]]  # type: ignore[valid-type]
        return typing.Optional[mapped[0]] if len(mapped) == 2 and type(None) in mapped else hint  # noqa: UP045
    return hint


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """(the element type, is-a-list) of ``Optional[X]``, ``X | None``, ``list[X]``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else (hint, False)
    if origin is list:
        return typing.get_args(hint)[0], True
    return hint, False


def _convert(value: Any, target: Any, to_v2: bool, where: str) -> Any:
    """Convert one value (scalar, enum, record) to the ``target`` type of the other schema."""
    if value is None:
        return None
    if target is _Float32:  # v1 → v2: a float32 field
        return float(value)
    if isinstance(target, type) and issubclass(target, enum.Enum):
        return _convert_enum(value, target, where)
    if isinstance(target, type) and (dataclasses.is_dataclass(target) or hasattr(target, "__init__")):
        if target is str and isinstance(value, enum.Enum):
            return value.name
        if target in (int, float, str, bool):
            try:
                return target(value)
            except (TypeError, ValueError):
                log.warning("header %s = %r is not a %s: not mapped", where, value, target.__name__)
                return None
        if target is datetime.date and isinstance(value, XmlDate):
            return value.to_date()
        if target is XmlDate and isinstance(value, datetime.date):
            return XmlDate.from_date(value)
        if target is XmlTime:
            return XmlTime.from_time(value.to_time() if hasattr(value, "to_time") else _yardl_time(value))
        if target.__name__ == "Time":
            return typing.cast(Any, target).from_time(value.to_time())
        return _convert_record(value, target, to_v2, where)
    return value


def _yardl_time(value: Any) -> datetime.time:
    ns = int(value.numpy_value.astype("int64"))
    seconds, ns = divmod(ns, 1_000_000_000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return datetime.time(hour, minute, second, ns // 1000)


def _convert_enum(value: Any, target: type[enum.Enum], where: str) -> Any:
    name = _key(value.name if isinstance(value, enum.Enum) else str(value))
    for member in target:
        if _key(member.name) == name or _key(str(member.value)) == name:
            return member
    log.warning("header %s = %r has no counterpart in %s: not mapped", where, value, target.__name__)
    return None


def _convert_record(value: Any, target: type, to_v2: bool, where: str) -> Any:
    kind: Any = type(value)
    source_fields = _v1_fields(kind) if dataclasses.is_dataclass(value) else _v2_fields(kind)
    target_fields = _v2_fields(target) if to_v2 else _v1_fields(target)
    float32 = (
        set() if to_v2 else {k for k, (_, hint) in _v2_fields(kind).items() if _unwrap(hint)[0] is _Float32}
    )
    kwargs: dict[str, Any] = {}
    for key, (src_name, _) in source_fields.items():
        if key not in target_fields:
            continue
        dst_name, hint = target_fields[key]
        element, is_list = _unwrap(hint)
        raw = getattr(value, src_name)
        if key in float32:
            raw = _shortest_float32(raw)
        path = f"{where}.{src_name}"
        if is_list:
            items = raw if isinstance(raw, list) else ([] if raw is None else [raw])
            converted = [_convert(v, element, to_v2, path) for v in items]
            kwargs[dst_name] = [v for v in converted if v is not None]
        else:
            raw = raw[0] if isinstance(raw, list) and raw else (None if isinstance(raw, list) else raw)
            mapped = _convert(raw, element, to_v2, path)
            if mapped is not None:
                kwargs[dst_name] = mapped
    return target(**kwargs)


def _shortest_float32(value: Any) -> Any:
    """A float32 value (or list of them) as the shortest decimal that is that float32 (2.303f → 2.303)."""
    if isinstance(value, list):
        return [_shortest_float32(v) for v in value]
    if value is None:
        return None
    return float(np.format_float_positional(np.float32(value), unique=True, trim="-"))


def header_v1_to_v2(header: ismrmrd.xsd.ismrmrdHeader) -> mrd.Header:
    """The ISMRMRD v1 XML header as an MRD v2 ``mrd.Header`` (every field both schemas hold)."""
    return typing.cast(mrd.Header, _convert_record(header, mrd.Header, True, "header"))


def header_v2_to_v1(header: mrd.Header) -> ismrmrd.xsd.ismrmrdHeader:
    """An MRD v2 ``mrd.Header`` as the ISMRMRD v1 XML header the plugins read."""
    v1 = typing.cast(
        ismrmrd.xsd.ismrmrdHeader, _convert_record(header, ismrmrd.xsd.ismrmrdHeader, False, "header")
    )
    return v1
