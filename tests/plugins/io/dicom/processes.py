"""What the delivery tests start: simulated raw exams and a ``reconstream serve`` subprocess on loopback."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def simulate_raw(protocol: str, path: Path, size: dict[str, Any], study_uid: str | None = None) -> Path:
    """A simulated exam written as ISMRMRD HDF5; ``study_uid`` makes several scans one exam."""
    from hardware_sim.mr import MRExamConfig, simulate_exam
    from plugins.io.ismrmrd_files import write_raw

    exam = simulate_exam(MRExamConfig(protocol=protocol, **size))  # type: ignore[arg-type]
    if study_uid is not None:
        exam.header.studyInformation.studyInstanceUID = study_uid
    write_raw(path, exam.header, exam.items())
    return path


def start_serve(tmp_path: Path, port: int, target: str, outbox: Path) -> subprocess.Popen[bytes]:
    """``reconstream serve`` delivering to ``target`` through ``outbox``; returns once it is serving."""
    cmd = [sys.executable, "-m", "plugins.cli", "-v", "serve", "--port", str(port), "--device", "cpu"]
    cmd += ["--journal", str(tmp_path / "journal"), "--deliver", target, "--outbox", str(outbox)]
    with (tmp_path / "serve.log").open("ab") as log:
        proc = subprocess.Popen([*cmd, "--delivery-retry-s", "0.5"], stdout=log, stderr=log, cwd=Path.cwd())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited: {(tmp_path / 'serve.log').read_text()}")
        if "serving on" in (tmp_path / "serve.log").read_text():
            return proc
        time.sleep(0.1)
    raise RuntimeError("reconstream serve did not start")


def stop_serve(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then kill if it has not stopped within 60 s (a loaded machine: never leave it behind)."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
