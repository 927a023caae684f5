"""Issue 25: ``reconstream send --out DIR`` writes provenance.json and chain.effective.toml as ``run`` does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plugins.cli import main
from plugins.io.ismrmrd_files import write_raw
from plugins.io.outputs import sha256_of
from plugins.server.server import ReconServer
from tests.plugins.server.helpers import RECON_TOML, make_acquisitions, make_header


def test_send_writes_provenance_and_effective_chain(
    server: ReconServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "raw.h5"
    write_raw(raw, make_header(), make_acquisitions(seed=1))
    chain = tmp_path / "recon.toml"
    chain.write_text(RECON_TOML, encoding="utf-8")
    out = tmp_path / "out"
    host, port = server.address
    code = main(
        ["send", str(raw), "--chain", str(chain), "--host", host, "--port", str(port), "--out", str(out)]
    )
    assert code == 0, capsys.readouterr()
    record = json.loads((out / "provenance.json").read_text(encoding="utf-8"))
    assert record["effective_chain_file"] == "chain.effective.toml"
    assert record["inputs"] == [{"path": str(raw), "sha256": sha256_of(raw), "bytes": raw.stat().st_size}]
    assert record["outputs"]["n_images"] >= 1 and record["outputs"]["previews"]
    assert record["session"]["server"] == f"{host}:{port}" and record["session"]["closed"] is True
    assert record["session"]["chain_resolved_by"].startswith("client")
    effective = (out / "chain.effective.toml").read_text(encoding="utf-8")
    assert 'plugin = "test_rss_recon"' in effective
    assert (out / "images.h5").is_file()
