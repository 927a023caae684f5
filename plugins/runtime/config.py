"""Typed, validated plugin parameters.

Every plugin declares a :class:`PluginConfig` subclass.  Each field has a type, a default, a range where
one makes sense and a one-line ``description``; a quantity with a unit carries the unit in its name
(``tr_ms``, ``venc_cm_per_s``, ``regularization_weight``).  Unknown keys are rejected, so a misspelt key or a
key with the wrong unit suffix (``tolerance_s`` where ``tolerance_percent`` is meant) is an error, never
silently ignored.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

#: Unit of a parameter from the suffix of its name (longest suffix first).
UNIT_SUFFIXES: dict[str, str] = {
    "_cm_per_s": "cm/s",
    "_m_per_s": "m/s",
    "_mm_per_s": "mm/s",
    "_ml_per_s": "ml/s",
    "_bq_per_ml": "Bq/ml",
    "_per_cm": "1/cm",
    "_per_mm": "1/mm",
    "_percent": "%",
    "_ms": "ms",
    "_us": "µs",
    "_ns": "ns",
    "_ps": "ps",
    "_mm": "mm",
    "_cm": "cm",
    "_hz": "Hz",
    "_khz": "kHz",
    "_deg": "°",
    "_rad": "rad",
    "_ml": "ml",
    "_bpm": "1/min",
    "_kev": "keV",
    "_bq": "Bq",
    "_kg": "kg",
    "_ppm": "ppm",
    "_days": "d",
    "_s": "s",
    "_m": "m",
    "_t": "T",
}


def unit_of(name: str) -> str | None:
    """The unit a parameter name carries in its suffix, or None."""
    for suffix in sorted(UNIT_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return UNIT_SUFFIXES[suffix]
    return None


class PluginConfig(BaseModel):
    """Base class of every plugin's parameters: frozen, strict about unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def describe_fields(model: type[BaseModel]) -> list[dict[str, Any]]:
    """One row per parameter: name, type, default, allowed range and description (for ``chains show``)."""
    rows: list[dict[str, Any]] = []
    schema = model.model_json_schema()
    props = schema.get("properties", {})
    for name, field in model.model_fields.items():
        prop = props.get(name, {})
        allowed = []
        for key, sym in (
            ("minimum", "≥"),
            ("exclusiveMinimum", ">"),
            ("maximum", "≤"),
            ("exclusiveMaximum", "<"),
        ):
            if key in prop:
                allowed.append(f"{sym} {prop[key]}")
        if "enum" in prop:
            allowed.append("one of " + ", ".join(map(str, prop["enum"])))
        annotation = field.annotation
        rows.append(
            {
                "name": name,
                "type": getattr(annotation, "__name__", str(annotation)).replace("typing.", ""),
                "default": None if field.is_required() else field.get_default(call_default_factory=True),
                "required": field.is_required(),
                "allowed": ", ".join(allowed),
                "description": field.description or "",
            }
        )
    return rows
