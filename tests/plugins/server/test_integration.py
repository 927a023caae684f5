"""End-to-end through the server: ISMRMRD's own tools' Shepp-Logan data, a simulated cine exam, PET
list-mode on the same protocol, scanner-paced streaming and TLS."""

from __future__ import annotations

import argparse
import shutil
import ssl
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import h5py
import ismrmrd
import numpy as np
import pytest

from plugins.io.ismrmrd_files import open_raw
from plugins.io.protocol import ConfigFile, ConfigText
from plugins.runtime.chain import load_chain
from plugins.runtime.pipeline import run_chain
from plugins.runtime.plugin import ChainContext
from plugins.server.client import ClientError, send_session, stream_simulation
from plugins.server.config import TLSSettings
from plugins.server.server import ReconServer
from tests.plugins.server.conftest import server_config
from tests.plugins.server.helpers import PASSTHROUGH_TOML, make_acquisitions, make_cert, make_header

GENERATOR = "ismrmrd_generate_cartesian_shepp_logan"
REFERENCE_RECON = "ismrmrd_recon_cartesian_2d"


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.abs(a).ravel().astype(float), np.abs(b).ravel().astype(float))[0, 1])


@pytest.mark.skipif(
    shutil.which(GENERATOR) is None or shutil.which(REFERENCE_RECON) is None,
    reason="ISMRMRD's command-line tools are not installed (Debian: apt-get install -y ismrmrd-tools)",
)
def test_shepp_logan_from_ismrmrd_tools_reconstructs_through_the_server(
    server: ReconServer, tmp_path: Path
) -> None:
    raw = tmp_path / "shepp_logan.h5"
    subprocess.run(
        [GENERATOR, "-m", "64", "-c", "4", "-n", "0", "-o", str(raw)],
        check=True,
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
    )
    reference_file = tmp_path / "reference.h5"
    shutil.copy(raw, reference_file)
    subprocess.run(
        [REFERENCE_RECON, str(reference_file)], check=True, cwd=tmp_path, capture_output=True, timeout=120
    )
    data = open_raw(raw)
    # a Gadgetron-style client names the chain "cartesian.xml"; the suffix is ignored
    result = send_session(*server.address, ConfigFile("cartesian.xml"), data.header, data.items)
    assert result.closed and not result.errors, result.errors
    local = open_raw(raw)
    expected = run_chain(load_chain("cartesian"), local.items, ChainContext("cartesian", header=local.header))
    expected_images = [o for o in expected if isinstance(o, ismrmrd.Image)]
    assert len(result.images) == len(expected_images) == 1
    np.testing.assert_array_equal(result.images[0].data, expected_images[0].data)
    dset = ismrmrd.Dataset(str(reference_file), "dataset", create_if_needed=False)
    try:
        reference = dset.read_image("cpp", 0).data.squeeze()
    finally:
        dset.close()
    with h5py.File(reference_file, "r") as fh:
        stored = fh["dataset/phantom"][()]
    phantom = (stored["real"] + 1j * stored["imag"]).squeeze()
    image = result.images[0].data.squeeze()
    assert _corr(image, reference) > 0.995  # ISMRMRD's own reference reconstruction
    assert _corr(image, phantom) > 0.98  # the generator's phantom


def _small_cine_config() -> object:
    from hardware_sim.mr import MRExamConfig

    return MRExamConfig(
        n_slices=1,
        n_coils=8,
        n_readout=48,
        n_phase_encodes=48,
        n_phases=6,
        acceleration=1,
        n_calibration_lines=0,
        heart_rate_bpm=120,
        views_per_segment=16,
        inter_slice_pause_s=0,
        seed=3,
    )


def test_simulated_cine_exam_through_server_equals_in_process_run(server: ReconServer) -> None:
    pytest.importorskip("hardware_sim.mr.exam")
    from hardware_sim.mr import simulate_exam

    exam = simulate_exam(_small_cine_config())  # type: ignore[arg-type]
    result = send_session(*server.address, ConfigFile("cine"), exam.header, exam.items())
    assert result.closed and not result.errors, result.errors
    local = run_chain(load_chain("cine"), exam.items(), ChainContext("cine", header=exam.header))
    local_images = [o for o in local if isinstance(o, ismrmrd.Image)]
    assert len(result.images) == len(local_images) == 6
    for got, want in zip(result.images, local_images, strict=True):
        assert (got.phase, got.slice) == (want.phase, want.slice)
        np.testing.assert_array_equal(got.data, want.data)


def test_simulate_to_a_server_command_line(server: ReconServer, capsys: pytest.CaptureFixture[str]) -> None:
    """``reconstream simulate mr … --to HOST:PORT --chain cine`` streams the simulator into the server."""
    pytest.importorskip("hardware_sim.mr.cli")
    from plugins.cli import main as cli_main

    host, port = server.address
    argv = [
        "simulate",
        "mr",
        "--slices",
        "1",
        "--coils",
        "8",
        "--accel",
        "1",
        "--calibration-lines",
        "0",
        "--phases",
        "6",
        "--heart-rate",
        "120",
        "--matrix",
        "48",
        "48",
        "--to",
        f"{host}:{port}",
        "--chain",
        "cine",
    ]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "6 images" in out and "0 errors back" in out


def test_stream_simulation_with_a_given_config(
    server: ReconServer, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("hardware_sim.mr.exam")
    host, port = server.address
    cli_module = SimpleNamespace(config_from_args=lambda _args: _small_cine_config())
    args = argparse.Namespace(to=f"{host}:{port}", chain="cine", realtime=False)
    assert stream_simulation(args, cli_module) == 0
    assert "6 images" in capsys.readouterr().out


def test_realtime_sending_follows_the_time_stamps(server: ReconServer) -> None:
    acqs = make_acquisitions(40, 5)
    for i, acq in enumerate(acqs):
        acq.acquisition_time_stamp = 1000 + 40 * i  # 100 ms apart (2.5 ms ticks)
    start = time.monotonic()
    result = send_session(*server.address, ConfigText(PASSTHROUGH_TOML), make_header(), acqs, realtime=True)
    assert result.closed and len(result.other) == 5
    assert result.last_item_sent_s - start >= 0.4 - 0.01  # never faster than the scanner


def test_pet_listmode_batches_travel_on_the_same_connection(server: ReconServer) -> None:
    listmode = pytest.importorskip("recon.tof.listmode")
    rng = np.random.default_rng(7)
    n = 50
    c1 = rng.integers(0, 1000, n).astype(np.int32)
    batch = listmode.ListModeBatch(
        crystal_id_1=c1,
        crystal_id_2=((c1 + 1 + rng.integers(0, 500, n)) % 2000).astype(np.int32),
        tof_bin=rng.integers(-5, 6, n).astype(np.int16),
        is_prompt=rng.integers(0, 2, n).astype(bool),
        time_ms=np.sort(rng.integers(0, 1000, n)).astype(np.uint32),
        scanner="test",
        frame_index=0,
        is_last_in_frame=True,
    )
    # PET-MR: one connection, MR header and acquisitions, then list-mode batches
    result = send_session(
        *server.address, ConfigText(PASSTHROUGH_TOML), make_header(), [*make_acquisitions(41, 2), batch]
    )
    assert result.closed and not result.errors
    back = [o for o in result.other if type(o).__name__ == "ListModeBatch"]
    assert len(back) == 1
    np.testing.assert_array_equal(back[0].crystal_id_2, batch.crystal_id_2)
    # PET only: the first batch may come without an MR header
    pet_only = send_session(*server.address, ConfigText(PASSTHROUGH_TOML), None, [batch])
    assert pet_only.closed and not pet_only.errors and len(pet_only.other) == 1


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a test certificate")
def test_tls_with_client_certificates(tmp_path: Path, test_plugins: None) -> None:
    ca_key, ca_crt = make_cert(tmp_path, "ca", None)
    srv_key, srv_crt = make_cert(tmp_path, "server", (ca_key, ca_crt))
    cli_key, cli_crt = make_cert(tmp_path, "client", (ca_key, ca_crt))
    tls = TLSSettings(srv_crt, srv_key, client_ca_file=ca_crt)
    with ReconServer(server_config(tmp_path / "j", tls=tls)) as srv:
        context = ssl.create_default_context(cafile=str(ca_crt))
        context.load_cert_chain(str(cli_crt), str(cli_key))
        result = send_session(
            *srv.address, ConfigText(PASSTHROUGH_TOML), make_header(), make_acquisitions(42, 3), tls=context
        )
        assert result.closed and not result.errors and len(result.other) == 3
        anonymous = ssl.create_default_context(cafile=str(ca_crt))  # no client certificate: refused
        try:
            refused = send_session(
                *srv.address,
                ConfigText(PASSTHROUGH_TOML),
                make_header(),
                make_acquisitions(43, 1),
                tls=anonymous,
                timeout_s=10,
            )
        except ClientError as exc:  # the handshake was refused (TLS 1.2)
            assert exc.kind == "tls" and "refused this client's certificate" in str(exc)
        else:  # with TLS 1.3 the refusal shows at the first read: one error line, nothing came back
            assert not refused.closed and not refused.other and not refused.images
            assert refused.failure_kind == "tls"
            assert refused.errors[0].startswith("ERROR [tls]: the server refused this client's certificate")


def test_concurrent_cine_sessions_are_isolated(server: ReconServer) -> None:
    """Three scanners at once through real cine chains: each gets exactly its in-process images."""
    pytest.importorskip("hardware_sim.mr.exam")
    from hardware_sim.mr import MRExamConfig, simulate_exam

    base = _small_cine_config().model_dump()  # type: ignore[attr-defined]
    exams = [simulate_exam(MRExamConfig(**{**base, "seed": seed})) for seed in range(3)]
    results: dict[int, Any] = {}

    def scanner(i: int) -> None:
        results[i] = send_session(*server.address, ConfigFile("cine"), exams[i].header, exams[i].items())

    threads = [threading.Thread(target=scanner, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for i, exam in enumerate(exams):
        assert results[i].closed and not results[i].errors, results[i].errors
        local = [
            o
            for o in run_chain(load_chain("cine"), exam.items(), ChainContext("cine", header=exam.header))
            if isinstance(o, ismrmrd.Image)
        ]
        assert len(results[i].images) == len(local)
        for got, want in zip(results[i].images, local, strict=True):
            np.testing.assert_array_equal(got.data, want.data)
