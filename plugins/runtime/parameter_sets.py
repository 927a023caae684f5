"""Saved parameter sets: a small TOML file naming the chain it derives from and only what changed.

Format (``<name>.toml`` in a parameter-set folder, see :func:`plugins.runtime.chain.parameter_set_dirs`)::

    base = "cine"                                   # a shipped chain or another parameter set
    description = "GRAPPA with a 5 x 4 kernel"
    [set]
    "unfold.method" = "grappa"

A set runs by name (``--chain NAME``) and is listed by ``chains list`` with its base; every run's
``chain.effective.toml`` spells out all parameters, so any image can be redone bit for bit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from plugins.runtime.chain import (
    ChainConfigError,
    load_chain,
    parameter_set_dirs,
    shipped_chain_names,
    split_override,
    toml_value,
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def save_parameter_set(
    name: str, base: str | None, overrides: Iterable[str], description: str | None = None
) -> Path:
    """Validate ``base`` with ``overrides`` (``STAGE.KEY=VALUE``) and write the set into the first
    parameter-set folder; refuses an invalid name, a shipped chain's name and an existing set."""
    if not _NAME.match(name) or name.endswith(".toml"):
        raise ChainConfigError(f"parameter set name {name!r}: use letters, digits, '.', '_' and '-' (≤ 64)")
    if name in shipped_chain_names():
        raise ChainConfigError(f"parameter set name {name!r} is a shipped chain's name; choose another")
    if not base:
        raise ChainConfigError("chains save: --from CHAIN names the chain the set derives from")
    values = dict(map(split_override, overrides))
    if not values:
        raise ChainConfigError("chains save: give at least one --set STAGE.KEY=VALUE (what changes)")
    parent = load_chain(
        base, values
    )  # every value checked by the plugins' configs before anything is written
    folder = parameter_set_dirs()[0]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    if path.exists():
        raise ChainConfigError(f"parameter set {name!r} exists ({path}); remove it first")
    changed = ", ".join(values)
    lines = [
        f"base = {toml_value(base)}",
        f"description = {toml_value(description or f'{parent.description} (changed: {changed})')}",
        "[set]",
        *(f"{toml_value(key)} = {toml_value(value)}" for key, value in values.items()),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
