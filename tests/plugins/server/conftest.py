"""Fixtures of the server tests: test-only plugins registered for the duration of a test, a live server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plugins.runtime.chain import plugin_registry
from plugins.server.config import ServerConfig
from plugins.server.server import ReconServer
from tests.plugins.server.helpers import TEST_PLUGINS


@pytest.fixture
def test_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = plugin_registry()
    for name, entry in TEST_PLUGINS.items():
        monkeypatch.setitem(registry, name, entry)


def server_config(journal: Path, **overrides: object) -> ServerConfig:
    settings: dict[str, object] = dict(
        host="127.0.0.1",
        port=0,
        journal_dir=journal,
        idle_timeout_s=5.0,
        drain_timeout_s=1.0,
        device="cpu",
        shutdown_grace_s=5.0,
    )
    settings.update(overrides)
    return ServerConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture
def server(tmp_path: Path, test_plugins: None) -> Iterator[ReconServer]:
    srv = ReconServer(server_config(tmp_path / "journal")).start()
    try:
        yield srv
    finally:
        srv.shutdown(grace_s=5.0)
