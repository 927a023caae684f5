"""Parameter sets and the chain schema (what physicists tune): saved, listed, run by name, reproduced bit
for bit; every parameter exported with its type, range, default, unit and meaning."""

from __future__ import annotations

from pathlib import Path

import ismrmrd
import numpy as np
import pytest

from plugins.cli import main
from plugins.runtime.chain import ChainConfigError, load_chain, parse_chain
from plugins.runtime.chain_schema import chain_schema
from plugins.runtime.parameter_sets import save_parameter_set
from plugins.runtime.session import run_to_folder


@pytest.fixture
def set_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "sets"
    monkeypatch.setenv("RECONSTREAM_PARAMETER_SETS", str(folder))
    return folder


def _images(folder: Path) -> dict[tuple[int, int, int], np.ndarray]:
    dataset = ismrmrd.Dataset(str(folder / "images.h5"), "dataset", create_if_needed=False)
    try:
        out = {}
        for group in dataset.list():
            if group.startswith("image_"):
                for k in range(dataset.number_of_images(group)):
                    image = dataset.read_image(group, k)
                    key = (int(image.image_series_index), int(image.slice), int(image.phase))
                    out[key] = np.asarray(image.data).copy()
        return out
    finally:
        dataset.close()


def test_a_saved_set_is_listed_runs_by_name_and_reproduces_identical_images(
    set_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("hardware_sim.mr.exam")
    from hardware_sim.mr import simulate_exam
    from tests.plugins.server.helpers import small_two_slice_cine_config

    overrides = ["bin.n_phases=6", "unfold.method=grappa"]
    path = save_parameter_set("my-grappa", "cine", overrides, "GRAPPA, 6 frames")
    assert path == set_folder / "my-grappa.toml"
    assert main(["chains", "list"]) == 0
    assert "my-grappa" in capsys.readouterr().out.split("[parameter set on cine")[0].splitlines()[-1]
    saved = load_chain("my-grappa")
    direct = load_chain("cine", overrides)
    assert saved.base == "cine" and saved.description == "GRAPPA, 6 frames"
    assert saved.effective_toml().splitlines()[2:] == direct.effective_toml().splitlines()[2:]
    for chain, out in ((saved, "a"), (direct, "b")):  # a fresh exam each: stages may work on items in place
        exam = simulate_exam(small_two_slice_cine_config(3))
        run_to_folder(chain, exam.items(), tmp_path / out, header=exam.header, device="cpu")
    a, b = _images(tmp_path / "a"), _images(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) == 2 * 6
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_bad_values_are_refused_before_anything_is_written(set_folder: Path) -> None:
    with pytest.raises(ChainConfigError, match="unknown key 'espirit_kernel_sise'"):
        save_parameter_set("typo", "cine", ["unfold.espirit_kernel_sise=3"])
    with pytest.raises(ChainConfigError, match="rr_tolerance_percent"):
        save_parameter_set("range", "cine", ["bin.rr_tolerance_percent=-4"])
    with pytest.raises(ChainConfigError, match="shipped chain's name"):
        save_parameter_set("cine", "cine", ["bin.n_phases=6"])
    with pytest.raises(ChainConfigError, match="use letters"):
        save_parameter_set("../evil", "cine", ["bin.n_phases=6"])
    assert not set_folder.exists() or not list(set_folder.iterdir())


def test_schema_exports_every_parameter_with_unit_range_default_and_chain_value() -> None:
    chain = load_chain("cine", ["bin.rr_tolerance_percent=15"])
    schema = chain_schema(chain)
    assert schema["$schema"].endswith("2020-12/schema") and schema["additionalProperties"] is False
    assert list(schema["properties"]) == [stage.name for stage in chain.stages]
    for stage in chain.stages:
        props = schema["properties"][stage.name]["properties"]
        assert set(props) == set(type(stage.config).model_fields), stage.name
        for key, prop in props.items():
            assert prop.get("description"), f"{stage.name}.{key} has no one-line meaning"
            assert prop["x-chain-value"] == stage.config.model_dump(mode="json")[key]
    tolerance = schema["properties"]["bin"]["properties"]["rr_tolerance_percent"]
    assert tolerance["x-unit"] == "%" and tolerance["x-chain-value"] == 15
    assert "default" in tolerance and ("minimum" in tolerance or "exclusiveMinimum" in tolerance)


def test_a_client_parameter_set_may_only_derive_from_a_shipped_chain(tmp_path: Path) -> None:
    ok = parse_chain(
        'base = "cine"\n[set]\n"bin.n_phases" = 6\n', "inline", "CONFIG_TEXT chain", from_network=True
    )
    assert ok.base == "cine"
    outside = tmp_path / "x.toml"
    outside.write_text('[[stage]]\nplugin = "passthrough"\n')
    with pytest.raises(ChainConfigError, match="is not a shipped chain"):
        parse_chain(
            f'base = "{outside}"\n[set]\n"passthrough.log_every_n_items" = 1\n',
            "inline",
            "c",
            from_network=True,
        )
