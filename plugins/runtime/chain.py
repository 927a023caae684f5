"""Chains: TOML files naming a sequence of plugin stages with their parameters.

Format (``plugins/chains/<name>.toml`` for shipped chains, or any user file)::

    description = "one line"
    [[stage]]
    plugin = "noise_adjust"     # entry-point name in the group ``reconstream.plugins``
    name = "noise"              # optional stage name (default: the plugin name), used by --set
    some_param_ms = 3.0         # parameters, validated by the plugin's Config
    [delivery]                  # optional: write DICOM and send it (plugins.io.dicom.delivery_config)

Errors name the chain file, the stage, the plugin, the key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import importlib.resources
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from plugins.runtime.config import UNIT_SUFFIXES, PluginConfig
from plugins.runtime.plugin import Plugin

if TYPE_CHECKING:
    from plugins.io.dicom.delivery_config import DeliveryConfig

ENTRY_POINT_GROUP = "reconstream.plugins"

# Unit suffixes a key may carry; a key that differs from a known one only in its unit is a unit mistake.
_UNIT_SUFFIXES = tuple(UNIT_SUFFIXES)


class ChainConfigError(ValueError):
    """A chain file or override is invalid; the message says where and what is allowed."""


@dataclass(frozen=True)
class StageSpec:
    """One stage of a chain.

    Attributes:
        name: stage name, unique within the chain (used by ``--set name.key=value``).
        plugin: entry-point name of the plugin.
        plugin_class: the plugin class loaded from the entry point.
        config: the validated parameters.
    """

    name: str
    plugin: str
    plugin_class: type[Plugin]
    config: PluginConfig


@dataclass(frozen=True)
class ChainSpec:
    """A validated chain: its name, one-line description, source file, stages in order and its optional
    ``[delivery]`` settings (a :class:`plugins.io.dicom.delivery_config.DeliveryConfig`)."""

    name: str
    description: str
    source: str
    stages: tuple[StageSpec, ...]
    delivery: DeliveryConfig | None = None
    base: str | None = None  # the chain a parameter set derives from (None: a chain of its own)

    def effective_toml(self) -> str:
        """The chain with every parameter spelled out (defaults included), as TOML text."""
        lines = [
            f"# effective chain {self.name!r} (from {self.source})",
            f"description = {toml_value(self.description)}",
        ]
        for stage in self.stages:
            lines += [
                "",
                "[[stage]]",
                f"plugin = {toml_value(stage.plugin)}",
                f"name = {toml_value(stage.name)}",
            ]
            for key, value in stage.config.model_dump(mode="json").items():
                if value is not None:
                    lines.append(f"{key} = {toml_value(value)}")
        if self.delivery is not None:
            table = self.delivery.model_dump(mode="json", exclude_none=True)
            lines[2:2] = [f"delivery = {toml_value(table)}"]
        return "\n".join(lines) + "\n"


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


@cache
def plugin_registry() -> dict[str, Any]:
    """Entry points of the group ``reconstream.plugins`` by name (not yet loaded)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_plugin_class(name: str, where: str = "") -> type[Plugin]:
    """Load a plugin class by its entry-point name; an unknown name is an error that lists close matches."""
    registry = plugin_registry()
    if name not in registry:
        close = difflib.get_close_matches(name, registry, n=3)
        hint = (
            f"; did you mean {', '.join(close)}?"
            if close
            else f"; installed plugins: {', '.join(sorted(registry))}"
        )
        raise ChainConfigError(f"{where}unknown plugin {name!r}{hint}")
    cls = registry[name].load()
    if not (isinstance(cls, type) and issubclass(cls, Plugin)):
        raise ChainConfigError(f"{where}entry point {name!r} is not a reconstream Plugin class")
    return cls


def shipped_chain_names() -> list[str]:
    """Names of the chains shipped in ``plugins/chains``."""
    folder = importlib.resources.files("plugins.chains")
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def resolve_chain_source(name_or_path: str | Path) -> tuple[str, str, str]:
    """(chain name, source description, TOML text) for a file path, a shipped name or a saved parameter set.

    A ``.xml`` or ``.toml`` suffix on a shipped name is ignored (Gadgetron clients send ``default.xml``).
    """
    text_name = str(name_or_path)
    path = Path(text_name)
    if path.suffix == ".toml" and path.is_file():
        return path.stem, str(path), path.read_text(encoding="utf-8")
    stem = text_name.removesuffix(".xml").removesuffix(".toml")
    if stem in shipped_chain_names():
        resource = importlib.resources.files("plugins.chains") / f"{stem}.toml"
        return stem, f"shipped chain {stem!r}", resource.read_text(encoding="utf-8")
    saved = parameter_set_paths().get(stem)
    if saved is not None:
        return stem, f"parameter set {str(saved)!r}", saved.read_text(encoding="utf-8")
    sets = ", ".join(parameter_set_paths()) or "none"
    raise ChainConfigError(
        f"no chain named {text_name!r}: not a readable .toml file, not a shipped chain "
        f"(shipped: {', '.join(shipped_chain_names()) or 'none'}) and not a parameter set (saved: {sets})"
    )


def load_chain(name_or_path: str | Path, overrides: Iterable[str] | Mapping[str, Any] = ()) -> ChainSpec:
    """Load and validate a chain; ``overrides`` are ``stage.key=value`` strings (or a mapping of them)."""
    name, source, text = resolve_chain_source(name_or_path)
    return parse_chain(text, name=name, source=source, overrides=overrides)


def load_shipped_chain(name: str) -> ChainSpec:
    """A shipped chain by name only (never a file from the working directory); ``.xml``/``.toml`` ignored."""
    stem = name.removesuffix(".xml").removesuffix(".toml")
    if stem not in shipped_chain_names():
        raise ChainConfigError(
            f"no chain named {name!r} (shipped: {', '.join(shipped_chain_names()) or 'none'})"
        )
    resource = importlib.resources.files("plugins.chains") / f"{stem}.toml"
    return parse_chain(resource.read_text(encoding="utf-8"), name=stem, source=f"shipped chain {stem!r}")


def parse_chain(
    text: str,
    name: str,
    source: str,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    from_network: bool = False,
) -> ChainSpec:
    """Validate chain TOML text (see the module docstring for the format).

    Every parameter named ``filename`` or ``*_filename`` is a file the stage writes: it must be a plain
    relative name under the run's output folder (no absolute path, no ``..``).  With ``from_network``
    (a chain a client sent inline), parameters naming files on the server (``*_file``, ``*_path``,
    ``*_dir``) set to anything but their default and a ``[delivery]`` table (destinations, outbox folder) are refused: only the server's own
    configuration may name files, folders and network destinations.
    """
    doc = _toml(text, source)
    if "base" in doc:
        return _parse_parameter_set(doc, name, source, overrides, from_network)
    unknown_top = set(doc) - {"description", "stage", "delivery"}
    if unknown_top:
        raise ChainConfigError(
            f"{source}: unknown top-level keys {sorted(unknown_top)}; allowed: description, stage, delivery"
        )
    raw_stages = doc.get("stage")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise ChainConfigError(f"{source}: a chain needs at least one [[stage]] table")
    stage_params: list[tuple[str, str, dict[str, Any]]] = []
    for index, raw in enumerate(raw_stages):
        params = dict(raw)
        plugin = params.pop("plugin", None)
        if not isinstance(plugin, str):
            raise ChainConfigError(f"{source}: stage #{index + 1} has no 'plugin = \"name\"' key")
        stage_name = params.pop("name", plugin)
        if any(stage_name == s[0] for s in stage_params):
            raise ChainConfigError(
                f"{source}: two stages are named {stage_name!r}; give one a distinct 'name'"
            )
        stage_params.append((str(stage_name), plugin, params))
    _apply_overrides(stage_params, overrides, source)
    stages = tuple(_build_stage(source, *entry) for entry in stage_params)
    for stage in stages:
        check_stage_paths(source, stage, from_network)
    if from_network and "delivery" in doc:
        raise ChainConfigError(
            f"{source}: a chain sent by a client may not carry a [delivery] table "
            "(destinations and the outbox are the server's configuration)"
        )
    delivery = None
    if "delivery" in doc:
        from plugins.io.dicom.delivery_config import parse_delivery

        try:
            delivery = parse_delivery(doc["delivery"], source)
        except ValueError as exc:
            raise ChainConfigError(str(exc)) from None
    description = str(doc.get("description", ""))
    return ChainSpec(name=name, description=description, source=source, stages=stages, delivery=delivery)


_SERVER_PATH_SUFFIXES = ("_file", "_path", "_dir")


def check_output_name(value: str, where: str) -> None:
    """Raise :class:`ChainConfigError` unless ``value`` is a relative file name inside the output folder."""
    parts = value.replace("\\", "/").split("/")
    if (
        not value.strip()
        or value.startswith(("/", "\\", "~"))
        or (len(value) > 1 and value[1] == ":")
        or any(part in ("", ".", "..") for part in parts)
        or any(ord(c) < 32 for c in value)
        or len(value) > 255
    ):
        raise ChainConfigError(
            f"{where}{value!r} is not allowed: give a relative file name inside the run's output folder "
            "(no absolute path, no '..', no empty or '.' parts)"
        )


def check_stage_paths(source: str, stage: StageSpec, from_network: bool) -> None:
    """Output names relative and inside the output folder; no server file names in a network chain."""
    fields = type(stage.config).model_fields
    for key, value in stage.config.model_dump().items():
        where = f"{source}: stage {stage.name!r}: key {key!r} = "
        default = fields[key].get_default(call_default_factory=True) if key in fields else None
        if (key == "filename" or key.endswith("_filename")) and isinstance(value, str):
            check_output_name(value, where)
        elif from_network and key.endswith(_SERVER_PATH_SUFFIXES) and value not in (None, "", (), default):
            raise ChainConfigError(
                f"{where}{str(value)[:80]!r}: a chain sent by a client may not name files on the server "
                "(put the chain in a configured chain folder instead)"
            )


_MAX_BASE_DEPTH = 4


def _parse_parameter_set(
    doc: dict[str, Any],
    name: str,
    source: str,
    overrides: Iterable[str] | Mapping[str, Any],
    from_network: bool,
    depth: int = 0,
) -> ChainSpec:
    """A parameter set: ``base = "CHAIN"``, a ``description`` and a ``[set]`` table of ``"stage.key" = value``.

    The base is a shipped chain or another parameter set found by name (a network client may only name a
    shipped chain); ``overrides`` apply after the set's own values.
    """
    unknown = set(doc) - {"base", "description", "set"}
    if unknown:
        raise ChainConfigError(
            f"{source}: unknown top-level keys {sorted(unknown)} in a parameter set; allowed: base, description, set"
        )
    base, values = doc["base"], doc.get("set", {})
    if not isinstance(base, str) or not base:
        raise ChainConfigError(f"{source}: 'base' must name the chain this parameter set derives from")
    if not isinstance(values, dict) or not all(isinstance(k, str) and "." in k for k in values):
        raise ChainConfigError(f'{source}: [set] holds "stage.key" = value lines')
    merged = dict(values)
    merged.update(dict(overrides) if isinstance(overrides, Mapping) else dict(map(split_override, overrides)))
    if depth >= _MAX_BASE_DEPTH:
        raise ChainConfigError(f"{source}: parameter sets nest deeper than {_MAX_BASE_DEPTH} (a cycle?)")
    if from_network:  # a client's inline set may only derive from a shipped chain
        stem = base.removesuffix(".toml")
        if stem not in shipped_chain_names():
            raise ChainConfigError(f"{source}: base {base!r} is not a shipped chain")
        text = (importlib.resources.files("plugins.chains") / f"{stem}.toml").read_text(encoding="utf-8")
        parent = parse_chain(text, stem, f"shipped chain {stem!r}", merged, from_network=True)
    else:
        base_name, base_source, base_text = resolve_chain_source(base)
        base_doc = _toml(base_text, base_source)
        if "base" in base_doc:
            parent = _parse_parameter_set(base_doc, base_name, base_source, merged, False, depth + 1)
        else:
            parent = parse_chain(base_text, base_name, base_source, merged)
    description = str(doc.get("description", parent.description))
    return ChainSpec(
        name=name,
        description=description,
        source=f"{source} (parameter set on {parent.source})",
        stages=parent.stages,
        delivery=parent.delivery,
        base=parent.name,
    )


def _toml(text: str, source: str) -> dict[str, Any]:
    """The TOML document of a chain or parameter set; invalid TOML is a :class:`ChainConfigError`."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ChainConfigError(f"{source}: not valid TOML: {exc}") from exc


def parameter_set_dirs() -> list[Path]:
    """Folders searched for parameter sets by name: ``$RECONSTREAM_PARAMETER_SETS`` (``os.pathsep``-separated),
    else ``~/.config/reconstream/parameter-sets``."""
    import os

    env = os.environ.get("RECONSTREAM_PARAMETER_SETS")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return [Path.home() / ".config" / "reconstream" / "parameter-sets"]


def parameter_set_paths() -> dict[str, Path]:
    """Parameter sets by name (first folder wins), from :func:`parameter_set_dirs`."""
    found: dict[str, Path] = {}
    for folder in parameter_set_dirs():
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                found.setdefault(path.stem, path)
    return found


def _apply_overrides(
    stage_params: list[tuple[str, str, dict[str, Any]]],
    overrides: Iterable[str] | Mapping[str, Any],
    source: str,
) -> None:
    items = overrides.items() if isinstance(overrides, Mapping) else (split_override(o) for o in overrides)
    by_name = {s[0]: s[2] for s in stage_params}
    for dotted, value in items:
        stage, _, key = dotted.partition(".")
        if stage not in by_name or not key:
            raise ChainConfigError(
                f"{source}: override {dotted!r} must be STAGE.KEY with STAGE one of {', '.join(by_name)}"
            )
        by_name[stage][key] = value


def split_override(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep:
        raise ChainConfigError(f"--set {text!r}: expected STAGE.KEY=VALUE")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word is a string
    return key.strip(), value


def _build_stage(source: str, stage_name: str, plugin: str, params: dict[str, Any]) -> StageSpec:
    where = f"{source}: stage {stage_name!r}: "
    cls = load_plugin_class(plugin, where)
    try:
        config = cls.Config.model_validate(params)
    except ValidationError as exc:
        raise ChainConfigError(
            _explain_validation(where + f"plugin {plugin!r}: ", cls.Config, params, exc)
        ) from exc
    return StageSpec(name=stage_name, plugin=plugin, plugin_class=cls, config=config)


def _explain_validation(
    where: str, model: type[PluginConfig], params: Mapping[str, Any], exc: ValidationError
) -> str:
    problems = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(config)"
        top = str(err["loc"][0]) if err["loc"] else ""
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown key {key!r} = {params.get(top)!r}{_unknown_key_hint(top, model)}")
        else:
            field = model.model_fields.get(top)
            doc = f" ({field.description})" if field is not None and field.description else ""
            problems.append(f"key {key!r} = {params.get(top)!r}: {err['msg']}{doc}")
    return where + "; ".join(problems)


def _unit_stem(key: str) -> str:
    for suffix in sorted(_UNIT_SUFFIXES, key=len, reverse=True):
        if key.endswith(suffix):
            return key[: -len(suffix)]
    return key


def _unknown_key_hint(key: str, model: type[PluginConfig]) -> str:
    fields = list(model.model_fields)
    same_stem = [f for f in fields if _unit_stem(f) == _unit_stem(key) and f != key]
    if same_stem:
        return f"; wrong unit? this parameter is {same_stem[0]!r} (the unit is part of the name)"
    close = difflib.get_close_matches(key, fields, n=2)
    if close:
        return f"; did you mean {', '.join(repr(c) for c in close)}?"
    return f"; allowed keys: {', '.join(fields) or 'none'}"
