"""Shared pieces of the server tests: a small synthetic dataset, test-only plugins, journal look-ups."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import ismrmrd
import ismrmrd.xsd
import numpy as np
from pydantic import Field

from plugins.runtime.config import PluginConfig
from plugins.runtime.items import Report
from plugins.runtime.plugin import ChainContext, Plugin

N_COILS = 4
N_K0 = 32
N_K1 = 16

PASSTHROUGH_TOML = 'description = "test"\n[[stage]]\nplugin = "passthrough"\n'
RECON_TOML = 'description = "test recon"\n[[stage]]\nplugin = "test_rss_recon"\n'
EXPLODE_TOML = 'description = "fails"\n[[stage]]\nplugin = "passthrough"\n[[stage]]\nplugin = "test_explode"\nat_item = 3\n'


def make_header(patient_name: str = "Sørensen^Åse") -> Any:
    """A minimal valid ISMRMRD header for an N_K0 × N_K1 Cartesian 2-D scan with N_COILS coils."""
    xml = f"""<?xml version="1.0" encoding="utf-8"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">
  <subjectInformation><patientName>{patient_name}</patientName></subjectInformation>
  <acquisitionSystemInformation><receiverChannels>{N_COILS}</receiverChannels></acquisitionSystemInformation>
  <experimentalConditions><H1resonanceFrequency_Hz>63500000</H1resonanceFrequency_Hz></experimentalConditions>
  <encoding>
    <encodedSpace><matrixSize><x>{N_K0}</x><y>{N_K1}</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>256</x><y>128</y><z>8</z></fieldOfView_mm></encodedSpace>
    <reconSpace><matrixSize><x>{N_K0}</x><y>{N_K1}</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>256</x><y>128</y><z>8</z></fieldOfView_mm></reconSpace>
    <encodingLimits>
      <kspace_encoding_step_1><minimum>0</minimum><maximum>{N_K1 - 1}</maximum><center>{N_K1 // 2}</center></kspace_encoding_step_1>
    </encodingLimits>
    <trajectory>cartesian</trajectory>
  </encoding>
</ismrmrdHeader>"""
    return ismrmrd.xsd.CreateFromDocument(xml.split("?>", 1)[1])


def make_acquisitions(seed: int, n_lines: int = N_K1) -> list[ismrmrd.Acquisition]:
    """``n_lines`` Cartesian readouts of random complex k-space (seeded), time stamps 2.5 ms apart."""
    rng = np.random.default_rng(seed)
    acquisitions = []
    for line in range(n_lines):
        data = (rng.standard_normal((N_COILS, N_K0)) + 1j * rng.standard_normal((N_COILS, N_K0))).astype(
            np.complex64
        )
        acq = ismrmrd.Acquisition.from_array(data)
        acq.idx.kspace_encode_step_1 = line
        acq.scan_counter = line
        acq.acquisition_time_stamp = 1000 + line
        if line == n_lines - 1:
            acq.set_flag(ismrmrd.ACQ_LAST_IN_SLICE)
        acquisitions.append(acq)
    return acquisitions


class ExplodeConfig(PluginConfig):
    at_item: int = Field(1, ge=1, description="raise on this item (1-based count)")


class Explode(Plugin):
    """Test plugin: raises RuntimeError on the configured item."""

    Config = ExplodeConfig
    accepts = (object,)

    def __init__(self, config: ExplodeConfig, context: ChainContext) -> None:  # type: ignore[override]
        super().__init__(config, context)
        self.at_item = config.at_item
        self.n = 0

    def process(self, item: Any) -> Iterable[Any]:
        self.n += 1
        if self.n == self.at_item:
            raise RuntimeError(f"injected failure at item {self.n}")
        return (item,)


class RSSRecon(Plugin):
    """Test plugin: inverse FFT per coil and root-sum-of-squares at the end of the stream; one report."""

    accepts = (ismrmrd.Acquisition,)

    def __init__(self, config: PluginConfig, context: ChainContext) -> None:
        super().__init__(config, context)
        self.kspace = np.zeros((N_COILS, N_K1, N_K0), np.complex64)

    def process(self, item: Any) -> Iterable[Any]:
        self.kspace[:, item.idx.kspace_encode_step_1, :] = item.data
        return ()

    def finish(self) -> Iterable[Any]:
        coil_images = np.fft.fftshift(
            np.fft.ifft2(np.fft.ifftshift(self.kspace, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
        )
        rss = np.sqrt(np.sum(np.abs(coil_images) ** 2, axis=0)).astype(np.float32)
        image = ismrmrd.Image.from_array(rss[None, None])
        image.image_series_index = 1
        yield image
        yield Report(
            "summary.json", json.dumps({"max": float(rss.max())}).encode(), "application/json", "test_rss"
        )


class _EntryPoint:
    def __init__(self, name: str, cls: type) -> None:
        self.name = name
        self.cls = cls

    def load(self) -> type:
        return self.cls


TEST_PLUGINS = {
    "test_explode": _EntryPoint("test_explode", Explode),
    "test_rss_recon": _EntryPoint("test_rss_recon", RSSRecon),
}


def wait_for_session(
    journal_root: Path, client_port: int, timeout_s: float = 20.0
) -> tuple[Path, dict[str, Any]]:
    """The journal folder and final manifest of the session whose peer used ``client_port``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for manifest_path in Path(journal_root).glob("*/manifest.json"):
            try:
                manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            if manifest["peer"].endswith(f":{client_port}") and manifest["outcome"] != "running":
                return manifest_path.parent, manifest
        time.sleep(0.02)
    raise AssertionError(f"no finished session from port {client_port} in {journal_root}")


def make_cert(folder: Path, name: str, ca: tuple[Path, Path] | None) -> tuple[Path, Path]:
    """(key, certificate) with subject ``CN=name`` for 127.0.0.1, self-signed (``ca`` None: a CA) or signed
    by ``ca`` = (CA key, CA certificate), made with the ``openssl`` command."""
    key, crt = folder / f"{name}.key", folder / f"{name}.crt"
    base = ["openssl", "req", "-x509" if ca is None else "-new", "-newkey", "rsa:2048", "-nodes"]
    base += ["-keyout", str(key), "-subj", f"/CN={name}"]
    if ca is None:
        extra = ["-out", str(crt), "-days", "1", "-addext", "subjectAltName=IP:127.0.0.1"]
        subprocess.run([*base, *extra], check=True, capture_output=True)
        return key, crt
    csr, ext = folder / f"{name}.csr", folder / f"{name}.ext"
    subprocess.run([*base, "-out", str(csr)], check=True, capture_output=True)
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    sign = ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca[1]), "-CAkey", str(ca[0])]
    sign += ["-CAcreateserial", "-out", str(crt), "-days", "1", "-extfile", str(ext)]
    subprocess.run(sign, check=True, capture_output=True)
    return key, crt


def write_small_raw(path: Path) -> Path:
    """A small ISMRMRD HDF5 raw file (this module's header and 4 acquisitions) for command-line tests."""
    from plugins.io.ismrmrd_files import header_to_xml

    dataset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    dataset.write_xml_header(header_to_xml(make_header("Test^Patient")))
    for acquisition in make_acquisitions(4, 4):
        dataset.append_acquisition(acquisition)
    dataset.close()
    return path


def small_two_slice_cine_config(seed: int) -> Any:
    """A two-slice 64 × 64 cine exam (8 coils, R = 2 with 16 calibration lines, 8 phases, 90 bpm): a few
    seconds of scan, reconstructed by the shipped ``cine`` chain in seconds (recovery tests, soak)."""
    from hardware_sim.mr import MRExamConfig

    return MRExamConfig(
        n_slices=2,
        n_coils=8,
        n_readout=64,
        n_phase_encodes=64,
        n_phases=8,
        acceleration=2,
        n_calibration_lines=16,
        heart_rate_bpm=90,
        views_per_segment=8,
        inter_slice_pause_s=0,
        seed=seed,
    )


def slow_attacker(address: tuple[str, int], stop: Any, silent: bool) -> None:
    """A slow-loris client: connects and sends a CONFIG_FILE one byte per second (or nothing at all),
    reconnecting whenever the server drops it, until ``stop`` (a ``threading.Event``) is set."""
    import socket

    from plugins.io.protocol import ConfigFile, encode_message

    payload = encode_message(ConfigFile("cine"))
    while not stop.is_set():
        try:
            sock = socket.create_connection(address, timeout=2)
        except OSError:
            stop.wait(0.1)
            continue
        try:
            for byte in payload:
                if stop.wait(1.0):
                    break
                if not silent:
                    sock.sendall(bytes([byte]))
        except OSError:
            pass
        finally:
            sock.close()


def start_slow_attackers(address: tuple[str, int], stop: Any, n: int = 16) -> list[Any]:
    """Start ``n`` :func:`slow_attacker` threads (the last one silent) and return them."""
    import threading

    threads = [
        threading.Thread(target=slow_attacker, args=(address, stop, k == n - 1), daemon=True)
        for k in range(n)
    ]
    for thread in threads:
        thread.start()
    return threads


def send_command(raw: Path, port: int, out: Path) -> list[str]:
    """The ``reconstream send`` command line for ``raw`` to a loopback server (the chain named ``cine``)."""
    import sys

    command = [sys.executable, "-m", "plugins.cli", "send", str(raw), "--chain", "cine"]
    return [*command, "--port", str(port), "--out", str(out)]
