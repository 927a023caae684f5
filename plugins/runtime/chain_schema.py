"""Every tunable parameter of a chain as one JSON Schema (what ``reconstream chains schema NAME`` prints).

The schema (draft 2020-12) is an object with one property per stage (by stage name); each stage is an
object whose properties are the plugin's parameters with their type, range, default and one-line
description, plus two annotations a form or notebook widget can show:

* ``x-unit``: the unit the parameter's name carries (``tr_ms`` → ``ms``), when it has one;
* ``x-chain-value``: the value this chain uses (its TOML, parameter set or overrides applied).

Unknown stages and keys are not allowed (``additionalProperties: false``), as the chain loader refuses them.
"""

from __future__ import annotations

import json
from typing import Any

from plugins.runtime.chain import ChainSpec
from plugins.runtime.config import unit_of

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _stage_schema(stage: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(schema of one stage, its ``$defs`` renamed under the stage name)."""
    raw = type(stage.config).model_json_schema()
    prefix = f"{stage.name}."
    text = json.dumps(raw).replace('"#/$defs/', f'"#/$defs/{prefix}')
    schema = json.loads(text)
    defs = {prefix + key: value for key, value in schema.pop("$defs", {}).items()}
    current = stage.config.model_dump(mode="json")
    properties: dict[str, Any] = {}
    for key, prop in schema.get("properties", {}).items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        unit = unit_of(key)
        if unit is not None:
            prop["x-unit"] = unit
        prop["x-chain-value"] = current.get(key)
        properties[key] = prop
    doc = (stage.plugin_class.__doc__ or "").strip().splitlines()
    return (
        {
            "type": "object",
            "title": f"stage {stage.name!r} (plugin {stage.plugin!r})",
            "description": doc[0] if doc else "",
            "properties": properties,
            "required": schema.get("required", []),
            "additionalProperties": False,
        },
        defs,
    )


def chain_schema(chain: ChainSpec) -> dict[str, Any]:
    """The JSON Schema of every tunable parameter of ``chain`` (see the module docstring)."""
    properties: dict[str, Any] = {}
    defs: dict[str, Any] = {}
    for stage in chain.stages:
        properties[stage.name], stage_defs = _stage_schema(stage)
        defs.update(stage_defs)
    schema: dict[str, Any] = {
        "$schema": SCHEMA_DIALECT,
        "$id": f"urn:reconstream:chain:{chain.name}",
        "title": f"parameters of chain {chain.name!r}",
        "description": chain.description,
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "x-source": chain.source,
    }
    if chain.base is not None:
        schema["x-base-chain"] = chain.base
    if defs:
        schema["$defs"] = defs
    return schema
