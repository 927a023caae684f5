"""A real Orthanc PACS on loopback for the delivery tests (Debian package ``orthanc``)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OrthancServer:
    """``Orthanc`` with its JSON config, storage and index in ``folder``; :meth:`start` / :meth:`stop`."""

    def __init__(self, folder: Path, dicom_port: int | None = None, check_called_aet: bool = False) -> None:
        exe = shutil.which("Orthanc")
        if exe is None:
            pytest.skip("Orthanc not installed (Debian package orthanc; .ci/run installs it)")
        self.exe = exe
        self.folder = folder
        self.aet = "ORTHANC"
        self.dicom_port = dicom_port or free_port()
        self.http_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "reconstream-test",
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "StorageDirectory": str(folder / "storage"),
            "IndexDirectory": str(folder / "index"),
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowEcho": True,
            "DicomCheckCalledAet": check_called_aet,
            "Plugins": [],
        }
        self.config = folder / "orthanc.json"
        self.config.write_text(json.dumps(config), encoding="utf-8")

    def start(self, timeout_s: float = 30.0) -> OrthancServer:
        with (self.folder / "orthanc.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [self.exe, str(self.config)], stdout=log, stderr=log, cwd=self.folder
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                self.rest("/system")
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"Orthanc exited (see {self.folder / 'orthanc.log'})") from None
                time.sleep(0.2)
        raise RuntimeError(f"Orthanc did not answer on port {self.http_port} within {timeout_s} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.proc = None

    def rest(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as response:
            return json.loads(response.read())

    def counts(self) -> tuple[int, int, int]:
        """(studies, series, instances) stored."""
        stats = self.rest("/statistics")
        return int(stats["CountStudies"]), int(stats["CountSeries"]), int(stats["CountInstances"])
