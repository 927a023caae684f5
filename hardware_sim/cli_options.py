"""Command-line helpers shared by the simulators: option help from config fields, counts written as
``1e6``, and one-line errors that name the flag, the value, the allowed range and the unit.

A simulator's ``config_from_args`` builds its pydantic config; when validation fails, pydantic's own
message names internal field names and links to a web page.  :func:`validated` turns that into
``--venc 1.5: allowed 10 to 600 cm/s`` (one line per bad option, no traceback) as an
:class:`OptionError`, which the ``reconstream`` command prints and exits with status 2.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from typing import Any, TypeVar

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

ModelT = TypeVar("ModelT", bound=BaseModel)

#: Unit of a field from the end of its name (the project's names carry their units).
_UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_cm_per_s", "cm/s"),
    ("_per_cm", "1/cm"),
    ("_bpm", "beats/min"),
    ("_percent", "%"),
    ("_ms", "ms"),
    ("_mm", "mm"),
    ("_hz", "Hz"),
    ("_bq", "Bq"),
    ("_kg", "kg"),
    ("_ps", "ps"),
    ("_t", "T"),
    ("_s", "s"),
)


class OptionError(ValueError):
    """A command-line option outside what the simulator allows (the message is one line per option)."""


def unit_of(field_name: str) -> str:
    """The unit a field name carries (``venc_cm_per_s`` → ``cm/s``), or ``""``."""
    for suffix, unit in _UNIT_SUFFIXES:
        if field_name.endswith(suffix):
            return unit
    return ""


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def allowed_range(info: FieldInfo, unit: str = "") -> str:
    """``10 to 600 cm/s`` from a field's bounds (``ge``/``gt``/``le``/``lt``), or ``""`` without bounds."""
    low = high = ""
    for bound in info.metadata:
        if isinstance(bound, annotated_types.Ge):
            low = _number(bound.ge)
        elif isinstance(bound, annotated_types.Gt):
            low = f"above {_number(bound.gt)}"
        elif isinstance(bound, annotated_types.Le):
            high = _number(bound.le)
        elif isinstance(bound, annotated_types.Lt):
            high = f"below {_number(bound.lt)}"
    if low and high:
        text = f"{low} to {high}"
    elif low:
        text = f"at least {low}" if not low.startswith("above") else low
    elif high:
        text = f"at most {high}" if not high.startswith("below") else high
    else:
        return ""
    return f"{text} {unit}".rstrip()


def field_help(model: type[BaseModel], name: str, extra: str = "") -> str:
    """argparse help of an option from its config field: description, allowed range with unit, default."""
    info = model.model_fields[name]
    allowed = allowed_range(info, unit_of(name))
    parts = [info.description or name]
    if extra:
        parts.append(extra)
    if allowed:
        parts.append(f"allowed {allowed}")
    default = info.get_default(call_default_factory=True)
    text = f"{'; '.join(parts)} (default {_number(default)})"
    return text.replace("%", "%%")  # argparse expands %-formats in help


def describe_error(exc: ValidationError, model: type[BaseModel], flags: Mapping[str, str]) -> str:
    """One line per validation error: ``--flag value: allowed range unit`` (or the validator's message)."""
    lines = []
    for error in exc.errors(include_url=False):
        loc = error.get("loc") or ()
        name = str(loc[0]) if loc else ""
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        if name in model.model_fields:
            flag = flags.get(name, name)
            info = model.model_fields[name]
            allowed = allowed_range(info, unit_of(name))
            value = _number(error.get("input"))
            detail = f"allowed {allowed}" if allowed else message
            if not unit_of(name) and info.description and allowed:
                detail += f" ({info.description})"
            lines.append(f"{flag} {value}: {detail}")
        else:
            lines.append(message)
    return "; ".join(lines)


def validated(model: type[ModelT], flags: Mapping[str, str], **values: Any) -> ModelT:
    """``model(**values)``, with validation errors turned into an :class:`OptionError` naming the flags."""
    try:
        return model(**values)
    except ValidationError as exc:
        raise OptionError(describe_error(exc, model, flags)) from None


def count(text: str) -> int:
    """An event count as written on a command line: ``1000000``, ``1e6`` or ``2.5e7`` (a whole number ≥ 0)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (e.g. 1000000 or 1e6)") from None
    if not math.isfinite(value) or value < 0 or value != math.floor(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of events ≥ 0")
    return int(value)
