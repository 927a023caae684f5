"""Attack a ``reconstream serve`` process on loopback as a hospital security reviewer would; print a table.

Usage::

    python scripts/attack_server.py [--repo DIR] [--json OUT.json] [--lockout-s 20]

``--repo`` chooses the code of the server under test (default: this checkout), so an older commit checked
out with ``git worktree add /tmp/old COMMIT`` can be attacked with the same script for a before/after
table.  Every case runs a well-behaved session beside the attack.  All traffic stays on loopback; the
full-disk case mounts a 16 MB tmpfs (needs root; reported as skipped otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plugins.io.protocol import ConfigFile, ConfigText, encode_message  # noqa: E402
from plugins.server.client import ClientError, send_session  # noqa: E402
from tests.plugins.server.helpers import (  # noqa: E402
    make_acquisitions,
    make_cert,
    make_header,
    send_command,
    start_slow_attackers,
    write_small_raw,
)

PASSTHROUGH = 'description = "attack"\n[[stage]]\nplugin = "passthrough"\n'


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A ``reconstream serve`` subprocess of the code in ``repo``."""

    def __init__(self, repo: Path, journal: Path, *extra: str) -> None:
        self.port = _free_port()
        self.journal = journal
        self.log_path = journal.parent / f"serve-{self.port}.log"
        command = [sys.executable, "-m", "plugins.cli", "serve", "--port", str(self.port)]
        command += ["--journal", str(journal), *extra]
        env = dict(os.environ, PYTHONPATH=str(repo), OMP_NUM_THREADS="1")
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(command, cwd=repo, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.started = self._wait_listening()

    def _wait_listening(self) -> bool:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.1)
        return False

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def status(self, key: str) -> int:
        """``VmRSS`` (bytes) or ``Threads`` of the server process."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                value = int(line.split()[1])
                return value * 1024 if key == "VmRSS" else value
        return -1

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@contextmanager
def serving(repo: Path, journal: Path, *extra: str) -> Iterator[Server]:
    server = Server(repo, journal, *extra)
    try:
        yield server
    finally:
        server.stop()


def good(address: tuple[str, int], seed: int = 1, tls: Any = None, timeout_s: float = 15) -> str:
    """One well-behaved session; "ok" or what went wrong, in a few words."""
    try:
        result = send_session(
            *address,
            ConfigText(PASSTHROUGH),
            make_header(),
            make_acquisitions(seed, 6),
            tls=tls,
            timeout_s=timeout_s,
        )
    except (ClientError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if result.closed and not result.errors and len(result.other) == 6:
        return "ok"
    return (result.errors or [f"no CLOSE ({result.send_error})"])[0][:90]


def _largest(folders: list[Path]) -> Path:
    """The session folder with the most input (an old server also journals the readiness probe)."""
    return max(folders, key=lambda p: (p / "input.bin").stat().st_size if (p / "input.bin").is_file() else -1)


def _folders(journal: Path) -> list[Path]:
    return [p for p in journal.iterdir() if p.is_dir()] if journal.is_dir() else []


# ------------------------------------------------------------------------------------------------ cases


def case_lockout(repo: Path, work: Path, lockout_s: float) -> str:
    with serving(repo, work / "j-lockout") as srv:
        stop = threading.Event()

        start_slow_attackers(srv.address, stop)
        time.sleep(1.0)
        outcomes = []
        start = time.monotonic()
        while time.monotonic() - start < lockout_s:
            outcomes.append(good(srv.address, len(outcomes) + 1, timeout_s=10))
            time.sleep(2.0)
        stop.set()
        n_ok = outcomes.count("ok")
        failure = next((o for o in outcomes if o != "ok"), "")
        return f"{n_ok}/{len(outcomes)} good sessions completed" + (
            f" (else: {failure[:60]})" if failure else ""
        )


def case_tls_no_hello(repo: Path, work: Path) -> str:
    if shutil.which("openssl") is None:
        return "skipped (no openssl)"
    ca = make_cert(work, "ca", None)
    key, crt = make_cert(work, "server", ca)
    import ssl

    with serving(repo, work / "j-tls", "--tls-cert", str(crt), "--tls-key", str(key)) as srv:
        threads_before = srv.status("Threads")
        sockets = [socket.create_connection(srv.address) for _ in range(116)]
        time.sleep(2.0)
        threads = srv.status("Threads")
        outcome = good(srv.address, 2, ssl.create_default_context(cafile=str(ca[1])), timeout_s=10)
        for sock in sockets:
            sock.close()
    return f"server threads {threads_before} → {threads}; good TLS session: {outcome}"


def case_oversized(repo: Path, work: Path) -> str:
    with serving(repo, work / "j-big") as srv:
        baseline = srv.status("VmRSS")
        peak = [baseline]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], srv.status("VmRSS"))
                time.sleep(0.02)

        def attack(first: list[str]) -> None:
            n = 200_000_000
            sock = socket.create_connection(srv.address, timeout=20)
            try:
                sock.sendall(
                    encode_message(ConfigText(PASSTHROUGH)) + struct.pack("<HHHHQ", 1030, 7, 0, 1, n // 4)
                )
                chunk = bytes(1 << 20)
                for _ in range(n // len(chunk)):
                    sock.sendall(chunk)
                first.append("all 200 MB accepted")
            except OSError as exc:
                first.append(f"stopped: {type(exc).__name__}")
            finally:
                sock.close()

        sampler = threading.Thread(target=sample)
        sampler.start()
        notes: list[str] = []
        attacks = [threading.Thread(target=attack, args=(notes,)) for _ in range(3)]
        for thread in attacks:
            thread.start()
        outcome = good(srv.address, 3)
        for thread in attacks:
            thread.join(timeout=120)
        done.set()
        sampler.join()
    return f"RSS +{(peak[0] - baseline) / 1e6:.0f} MB ({notes[0] if notes else '?'}); good session: {outcome}"


def case_probes(repo: Path, work: Path) -> str:
    with serving(repo, work / "j-probes") as srv:
        for _ in range(200):
            with socket.create_connection(srv.address):
                pass
        time.sleep(2.0)
        return f"{len(_folders(srv.journal))} journal folders for 200 probes"


def _listmode_batch() -> Any:
    import numpy as np

    from recon.tof.listmode import ListModeBatch

    rng = np.random.default_rng(7)
    c1 = rng.integers(0, 500, 50).astype(np.int32)
    return ListModeBatch(
        crystal_id_1=c1,
        crystal_id_2=(c1 + 300).astype(np.int32),
        tof_bin=np.zeros(50, np.int16),
        is_prompt=np.ones(50, bool),
        time_ms=np.arange(50, dtype=np.uint32),
        scanner="small",
        frame_index=0,
        is_last_in_frame=True,
    )


def case_outside_path(repo: Path, work: Path) -> str:
    target = work / "outside" / "victim.petsird"
    target.parent.mkdir()
    toml = f'[[stage]]\nplugin = "petsird_writer"\nfilename = "{target}"\n'
    with serving(repo, work / "j-path") as srv:
        try:
            result = send_session(*srv.address, ConfigText(toml), None, [_listmode_batch()])
            live = (result.errors or ["no error"])[0][:70]
        except ClientError as exc:
            live = str(exc)
        time.sleep(0.5)
        folders = _folders(srv.journal)
    if not folders:
        return f"live: {live}; nothing journaled, nothing to replay; {target.name} written: {target.exists()}"
    env = dict(os.environ, PYTHONPATH=str(repo))
    replay = subprocess.run(
        [
            sys.executable,
            "-m",
            "plugins.cli",
            "replay",
            str(_largest(folders)),
            "--out",
            str(work / "replayed"),
        ],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return f"live: {live}; replay exit {replay.returncode}; {target.name} written outside: {target.exists()}"


def case_tls_misconfig(repo: Path, work: Path) -> str:
    if shutil.which("openssl") is None:
        return "skipped (no openssl)"
    ca = make_cert(work, "ca2", None)
    srv = Server(repo, work / "j-misconf", "--tls-client-ca", str(ca[1]))
    try:
        if not srv.started:
            first = srv.log_text().strip().splitlines()
            return f"refused at start: {first[-1][:90] if first else 'exit ' + str(srv.proc.returncode)}"
        return f"started; plaintext session: {good(srv.address, 4)}"
    finally:
        srv.stop()


def case_send_cleartext(repo: Path, work: Path) -> str:
    if shutil.which("openssl") is None:
        return "skipped (no openssl)"
    ca = make_cert(work, "ca3", None)
    key, crt = make_cert(work, "client3", ca)
    raw = work / "raw.h5"
    write_small_raw(raw)
    with serving(repo, work / "j-clear") as srv:
        env = dict(os.environ, PYTHONPATH=str(repo))
        command = [*send_command(raw, srv.port, work / "sent"), "--tls-cert", str(crt), "--tls-key", str(key)]
        proc = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        time.sleep(0.5)
        n = len(_folders(srv.journal))
    return f"send exit {proc.returncode}; sessions the plaintext server received: {n}"


def case_modes(repo: Path, work: Path) -> str:
    with serving(repo, work / "j-modes") as srv:
        outcome = good(srv.address, 5)
        time.sleep(0.5)
        folder = _largest(_folders(srv.journal))
        return (
            f"input.bin {oct((folder / 'input.bin').stat().st_mode & 0o777)}, folder "
            f"{oct(folder.stat().st_mode & 0o777)} (good session {outcome})"
        )


def case_log_injection(repo: Path, work: Path) -> str:
    with serving(repo, work / "j-log") as srv:
        name = "cine\nFORGED-LINE reconstream: all good\x1b[2J" + "A" * 900
        try:
            send_session(*srv.address, ConfigFile(name), make_header(), [])
        except ClientError:
            pass
        time.sleep(0.5)
        log_text = srv.log_text()
        manifests = [p / "manifest.json" for p in _folders(srv.journal)]
        stored = max((len(m.read_text()) for m in manifests if m.is_file()), default=0)
    forged = any(line.startswith("FORGED-LINE") for line in log_text.splitlines())
    longest = max((len(line) for line in log_text.splitlines()), default=0)
    return (
        f"forged line: {forged}; escape char: {chr(27) in log_text}; longest log line {longest} chars; "
        f"manifest {stored} bytes"
    )


def case_full_disk(repo: Path, work: Path) -> str:
    mount_point = work / "tiny"
    mount_point.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)], capture_output=True
    )
    if made.returncode != 0:
        return "skipped (cannot mount a tmpfs)"
    try:
        extra = () if not _has_option(repo, "--journal-min-free-gb") else ("--journal-min-free-gb", "0.004")
        with serving(repo, mount_point / "journal", *extra) as srv:
            first = good(srv.address, 6)
            filler = mount_point / "filler"
            with filler.open("wb") as fh:
                try:
                    fh.write(bytes(shutil.disk_usage(mount_point).free))
                except OSError:
                    pass
            full = good(srv.address, 7)
            filler.unlink()
            after = good(srv.address, 8)
        return f"before: {first}; disk full: {full[:80]}; space back: {after}"
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def _has_option(repo: Path, option: str) -> bool:
    return option in (repo / "plugins" / "server" / "cli.py").read_text()


CASES: dict[str, Callable[..., str]] = {
    "1 slow/silent sockets (15+1, reconnecting)": case_lockout,
    "1 TLS connections without ClientHello (116)": case_tls_no_hello,
    "2 three 200 MB NDARRAYs before the HEADER": case_oversized,
    "2 journal disk full": case_full_disk,
    "3 CONFIG_TEXT writer filename outside, then replay": case_outside_path,
    "4 serve --tls-client-ca without --tls-cert": case_tls_misconfig,
    "4 send --tls-cert/--tls-key without --tls-ca": case_send_cleartext,
    "5 journal file modes": case_modes,
    "5 200 TCP probes": case_probes,
    "5 newline and escape in CONFIG_FILE (log)": case_log_injection,
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repo", default=str(REPO), help="checkout whose server is attacked")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--lockout-s", type=float, default=20.0, help="duration of the slow-socket attack")
    args = parser.parse_args()
    repo = Path(args.repo).resolve()
    results: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="attack-") as tmp:
        work = Path(tmp)
        for name, case in CASES.items():
            sub = work / f"case{len(results)}"
            sub.mkdir()
            try:
                outcome = case(repo, sub, args.lockout_s) if case is case_lockout else case(repo, sub)
            except Exception as exc:  # a case that breaks the harness is a finding, not a crash of the table
                outcome = f"harness error: {type(exc).__name__}: {exc}"
            results[name] = outcome
            print(f"| {name} | {outcome} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"repo": str(repo), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
