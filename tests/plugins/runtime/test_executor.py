"""The executor interface without a cluster: units in order with pass-through items, configuration checks,
and an unreachable Ray cluster falling back to the in-process executor (no Ray process is started here)."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterable
from typing import Any

import pytest
from pydantic import ValidationError

from plugins.runtime.chain import ChainSpec, StageSpec
from plugins.runtime.executor import LOCAL, ExecutorConfig, UnitJob, open_executor, shared_executor
from plugins.runtime.pipeline import Pipeline, run_chain
from plugins.runtime.plugin import ChainContext, Plugin


class _Squares(Plugin):
    """Squares ints as units (one per int, one more at the end); strings pass through."""

    accepts = (int,)
    unit_kind = "test square"

    def __init__(self, config: Any, context: ChainContext) -> None:
        super().__init__(config, context)
        self.threads: list[str] = []

    def process(self, item: Any) -> Iterable[Any]:
        return (UnitJob(self.unit_kind or "", item, "square", (item,)),)

    def finish(self) -> Iterable[Any]:
        return ("end", UnitJob(self.unit_kind or "", -1, "square", (10,)))

    def square(self, value: int) -> list[Any]:
        self.threads.append(threading.current_thread().name)
        return [value * value, f"after {value}"]


def _chain() -> ChainSpec:
    return ChainSpec("squares", "test", "test", (StageSpec("sq", "squares", _Squares, _Squares.Config()),))


def test_local_units_keep_stream_order_and_run_in_the_stage_thread() -> None:
    context = ChainContext("squares")
    assert context.executor is LOCAL  # the default
    pipeline = Pipeline(_chain(), context)
    out = list(pipeline.run([1, "a", 2, 3, "b"]))
    assert out == [1, "after 1", "a", 4, "after 2", 9, "after 3", "b", "end", 100, "after 10"]
    squares = pipeline.plugins[0]
    assert isinstance(squares, _Squares)
    assert squares.threads == ["reconstream-sq"] * 4  # each unit computed where it was met
    assert run_chain(_chain(), [2], context) == [4, "after 2", "end", 100, "after 10"]


def test_a_plugin_without_units_is_untouched_by_the_executor() -> None:
    assert Plugin.unit_kind is None
    plugin = Plugin(Plugin.Config(), ChainContext("x"))
    assert list(plugin.run(iter([1, 2]))) == [1, 2]


def test_executor_configuration_is_validated() -> None:
    assert ExecutorConfig().kind == "local" and ExecutorConfig(n_workers=3).units_in_flight == 6
    for bad in ({"n_workers": 0}, {"kind": "dask"}, {"num_gpus_per_worker": -1}, {"workers": 2}):
        with pytest.raises(ValidationError):
            ExecutorConfig(**bad)


def test_local_configuration_opens_the_in_process_executor() -> None:
    assert open_executor(None) is LOCAL
    assert open_executor(ExecutorConfig()) is LOCAL
    assert shared_executor(ExecutorConfig(kind="local")) is LOCAL


def test_an_unreachable_cluster_falls_back_to_local_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("ray", reason="Ray is not installed (pip install reconstream[ray])")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nothing listens there
    with caplog.at_level(logging.WARNING, logger="reconstream.executor"):
        executor = open_executor(ExecutorConfig(kind="ray", ray_address=f"127.0.0.1:{port}"))
    assert executor is LOCAL
    assert any(f"127.0.0.1:{port}" in r.message and "running locally" in r.message for r in caplog.records)
