"""Chain files: loading, overrides and the errors a physicist sees for bad parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from plugins.runtime import chain as chain_module
from plugins.runtime.chain import ChainConfigError, load_chain, parse_chain, shipped_chain_names
from plugins.runtime.config import PluginConfig, describe_fields
from plugins.runtime.plugin import MapPlugin


class GateConfig(PluginConfig):
    """Example parameters with units in their names."""

    rejection_tolerance_percent: float = Field(20.0, gt=0, le=100, description="allowed R-R deviation (%)")
    n_phases: int = Field(25, ge=1, le=200, description="output cardiac phases")
    tr_ms: float = Field(3.0, gt=0, description="repetition time (ms)")


class Gate(MapPlugin):
    """A test plugin with a unit-carrying config."""

    Config = GateConfig
    accepts = (int,)

    def map(self, item: object) -> object:
        return item


@pytest.fixture(autouse=True)
def _registry(monkeypatch: pytest.MonkeyPatch) -> None:
    real = chain_module.load_plugin_class

    def fake(name: str, where: str = "") -> type:
        return Gate if name == "gate" else real(name, where)

    monkeypatch.setattr(chain_module, "load_plugin_class", fake)


CHAIN = """
description = "test"
[[stage]]
plugin = "gate"
n_phases = 30
[[stage]]
plugin = "passthrough"
"""


def test_parse_and_defaults() -> None:
    chain = parse_chain(CHAIN, name="t", source="t.toml")
    assert [s.name for s in chain.stages] == ["gate", "passthrough"]
    config = chain.stages[0].config
    assert isinstance(config, GateConfig)
    assert config.n_phases == 30 and config.tr_ms == 3.0
    assert "n_phases = 30" in chain.effective_toml() and "tr_ms = 3.0" in chain.effective_toml()


def test_effective_toml_reloads_to_the_same_chain() -> None:
    chain = parse_chain(CHAIN, name="t", source="t.toml", overrides=["gate.tr_ms=2.5"])
    again = parse_chain(chain.effective_toml().split("\n", 1)[1], name="t", source="effective")
    assert again.stages[0].config == chain.stages[0].config


def test_overrides_are_typed() -> None:
    chain = parse_chain(CHAIN, name="t", source="t.toml", overrides=["gate.n_phases=12", "gate.tr_ms=2.8"])
    assert chain.stages[0].config.n_phases == 12  # type: ignore[attr-defined]
    assert chain.stages[0].config.tr_ms == 2.8  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("toml_line", "expected"),
    [
        (
            "n_phases = 0",
            r"chain.toml: stage 'gate': plugin 'gate': key 'n_phases' = 0: .*greater than or equal to 1",
        ),
        ('n_phases = "many"', r"key 'n_phases' = 'many': .*valid integer"),
        ("n_phase = 10", r"unknown key 'n_phase' = 10; did you mean 'n_phases'"),
        ("tr_s = 0.003", r"unknown key 'tr_s' = 0.003; wrong unit\? this parameter is 'tr_ms'"),
        ("rejection_tolerance_ms = 5", r"wrong unit\? this parameter is 'rejection_tolerance_percent'"),
    ],
)
def test_bad_parameters_name_file_stage_key_value_and_rule(toml_line: str, expected: str) -> None:
    text = CHAIN.replace("n_phases = 30", toml_line)
    with pytest.raises(ChainConfigError, match=expected):
        parse_chain(text, name="t", source="chain.toml")


def test_unknown_plugin_and_structure_errors() -> None:
    with pytest.raises(ChainConfigError, match="unknown plugin 'pasthrough'; did you mean passthrough"):
        parse_chain('[[stage]]\nplugin = "pasthrough"\n', name="t", source="c.toml")
    with pytest.raises(ChainConfigError, match="at least one"):
        parse_chain('description = "x"\n', name="t", source="c.toml")
    with pytest.raises(ChainConfigError, match="not valid TOML"):
        parse_chain("[[stage]\n", name="t", source="c.toml")
    with pytest.raises(ChainConfigError, match="two stages are named"):
        parse_chain('[[stage]]\nplugin = "gate"\n[[stage]]\nplugin = "gate"\n', name="t", source="c.toml")
    with pytest.raises(ChainConfigError, match="override 'nope.x' must be STAGE.KEY"):
        parse_chain(CHAIN, name="t", source="c.toml", overrides=["nope.x=1"])


def test_user_chain_file_and_shipped_names(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(CHAIN, encoding="utf-8")
    assert load_chain(path).name == "mine"
    with pytest.raises(ChainConfigError, match="no chain named 'does-not-exist'"):
        load_chain("does-not-exist")
    for name in shipped_chain_names():
        chain = load_chain(name + ".xml")  # Gadgetron clients send names with .xml
        assert chain.name == name and chain.stages


def test_describe_fields_lists_units_ranges_and_docs() -> None:
    rows = {r["name"]: r for r in describe_fields(GateConfig)}
    assert rows["rejection_tolerance_percent"]["allowed"] == "> 0, ≤ 100"
    assert rows["tr_ms"]["description"] == "repetition time (ms)"
    assert rows["n_phases"]["default"] == 25
