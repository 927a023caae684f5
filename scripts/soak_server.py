"""Soak ``reconstream serve`` with simulated scanners and injected faults; prove nothing is lost.

Usage::

    python scripts/soak_server.py [--scanners 8] [--minutes 30] [--restart-every-s 600] [--json OUT]

N scanner threads stream small simulated cine exams (2 slices, 64 × 64, 8 coils) through the shipped
``cine`` chain at scanner pace, one session after another, against one server process.  Faults are
injected at random: a scanner killed mid-stream (socket dropped), a malformed message, a slow scanner
(pauses between messages), and a ``kill -9`` of the server with a restart (``--replay-interrupted``)
every ``--restart-every-s``.  At the end every session the scanners started is checked against the
journal:

* **completed**: the scanner got CLOSE without error → its journal holds exactly the bytes it sent,
  outcome ``completed``, and it got every image (2 slices × 8 phases).
* **failed / disconnected / interrupted**: the journal holds a prefix of the bytes sent, its outcome is
  final (never ``running``), its checksums verify; interrupted ones were replayed by the restarted server.
* **lost**: anything else with bytes the server had accepted (a completed session whose journal or
  images are short, a journal left ``running``, a journal that does not verify).  Must be 0.

Also reported: the scanners' latency (last readout sent → CLOSE) p50/p95 for completed sessions, and the
server's RSS over time (growth after a warm-up, per server lifetime).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plugins.io.protocol import TICK_S, Close, ConfigFile, MessageReader, encode_message, exact_reader  # noqa: E402
from plugins.server.journal import read_manifest, verify_journal  # noqa: E402

N_IMAGES = 2 * 8


def _exam_messages(seed: int) -> list[tuple[float, bytes]]:
    """(send time offset in s, message bytes) of one small cine exam, config and header first."""
    import ismrmrd

    from hardware_sim.mr import simulate_exam
    from tests.plugins.server.helpers import small_two_slice_cine_config

    exam = simulate_exam(small_two_slice_cine_config(seed))
    messages = [(0.0, encode_message(ConfigFile("cine"))), (0.0, encode_message(exam.header))]
    first: int | None = None
    for item in exam.items():
        stamp = int(item.acquisition_time_stamp if isinstance(item, ismrmrd.Acquisition) else item.time_stamp)
        first = stamp if first is None else first
        messages.append(((stamp - first) * TICK_S, encode_message(item)))
    messages.append((messages[-1][0], encode_message(Close())))
    return messages


@dataclass
class SessionRecord:
    scanner: int
    fault: str
    local_port: int = 0
    sent: bytearray = field(default_factory=bytearray)
    closed: bool = False
    errors: list[str] = field(default_factory=list)
    n_images: int = 0
    latency_s: float | None = None


class ServerProcess:
    """The server under test; restartable (``kill -9``) on the same port and journal."""

    def __init__(self, journal: Path, port: int, log_path: Path) -> None:
        self.journal, self.port, self.log_path = journal, port, log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.lifetimes: list[list[tuple[float, int]]] = []
        self.n_restarts = 0

    def start(self) -> None:
        command = [sys.executable, "-m", "plugins.cli", "serve", "--port", str(self.port)]
        command += ["--journal", str(self.journal), "--device", "cpu", "--replay-interrupted"]
        env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.1)
        self.lifetimes.append([])

    def kill_and_restart(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.n_restarts += 1
        self.start()

    def sample_rss(self, t: float) -> None:
        if self.proc is None:
            return
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    self.lifetimes[-1].append((t, int(line.split()[1]) * 1024))
        except OSError:
            pass

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _read_replies(sock: socket.socket, record: SessionRecord) -> None:
    from plugins.io.protocol import StreamClosed, Text

    reader = MessageReader(exact_reader(sock.recv))
    try:
        while True:
            _, obj = reader.next_message()
            if isinstance(obj, Close):
                record.closed = True
                return
            if isinstance(obj, Text) and obj.text.startswith("ERROR ["):
                record.errors.append(obj.text[:200])
            elif type(obj).__name__ == "Image":
                record.n_images += 1
    except (StreamClosed, OSError, ValueError):
        return


def run_session(
    port: int, messages: list[tuple[float, bytes]], record: SessionRecord, rng: random.Random
) -> None:
    """One scanner session with ``record.fault`` injected."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    except OSError as exc:
        record.errors.append(f"connect: {exc}")
        return
    record.local_port = sock.getsockname()[1]
    sock.settimeout(None)  # a stalled scanner may wait long for its images; the join below bounds it
    replies = threading.Thread(target=_read_replies, args=(sock, record), daemon=True)
    replies.start()
    cut_at = rng.randrange(3, len(messages) - 1) if record.fault in ("killed", "malformed") else None
    start = time.monotonic()
    last_sent = start
    try:
        for k, (offset, data) in enumerate(messages):
            delay = start + offset - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if record.fault == "slow" and k % 50 == 0:
                time.sleep(
                    rng.uniform(0.5, 3.0)
                )  # a scanner that stalls now and then (below the idle timeout)
            if cut_at is not None and k == cut_at:
                if record.fault == "malformed":
                    junk = b"\x10\x27" + bytes(rng.randrange(256) for _ in range(64))
                    sock.sendall(junk)
                    record.sent += junk
                    break
                part = data[: rng.randrange(1, len(data))]
                sock.sendall(part)
                record.sent += part
                sock.close()  # the scanner dies mid-message
                replies.join(timeout=5)
                return
            sock.sendall(data)
            record.sent += data
            last_sent = time.monotonic()
    except OSError as exc:
        record.errors.append(f"send: {exc}")
    replies.join(timeout=600)
    if record.closed and not record.errors:
        record.latency_s = time.monotonic() - last_sent
    sock.close()


def _journal_by_port(journal: Path) -> dict[int, list[Path]]:
    """Journal folders by the client port in their peer address (ports are reused over a long soak)."""
    found: dict[int, list[Path]] = {}
    for folder in journal.iterdir():
        if folder.is_dir() and (folder / "manifest.json").is_file():
            try:
                peer = read_manifest(folder)["peer"]
            except (OSError, ValueError, KeyError):
                continue
            found.setdefault(int(str(peer).rsplit(":", 1)[1]), []).append(folder)
    return found


def _match(record: SessionRecord, candidates: list[Path], taken: set[Path]) -> Path | None:
    """The journal of ``record``: among the folders of its client port not matched yet, the one whose
    input is the longest non-empty prefix of what the scanner sent (None: nothing of it was journaled)."""
    sent = bytes(record.sent)
    best: tuple[int, Path] | None = None
    for folder in candidates:
        if folder in taken:
            continue
        stored = _input_bytes(folder)
        if stored and sent.startswith(stored) and (best is None or len(stored) > best[0]):
            best = (len(stored), folder)
    return None if best is None else best[1]


def _input_bytes(folder: Path) -> bytes:
    return (folder / "input.bin").read_bytes()


def audit(records: list[SessionRecord], journal: Path) -> dict[str, Any]:
    """Classify every session against the journal (see the module docstring)."""
    by_port = _journal_by_port(journal)
    counts = {"completed": 0, "failed": 0, "disconnected": 0, "interrupted_recovered": 0, "not_journaled": 0}
    lost: list[str] = []
    by_fault: dict[str, dict[str, int]] = {}
    refusals: dict[str, int] = {}
    taken: set[Path] = set()
    for record in records:
        folder = _match(record, by_port.get(record.local_port, []), taken)
        if folder is not None:
            taken.add(folder)
        outcome_seen = "not journaled" if folder is None else str(read_manifest(folder)["outcome"])
        row = by_fault.setdefault(record.fault, {})
        row[outcome_seen] = row.get(outcome_seen, 0) + 1
        if folder is None:
            why = (record.errors or ["no answer (server restarting, or the scanner died before CONFIG)"])[0]
            refusals[why[:90]] = refusals.get(why[:90], 0) + 1
            # nothing accepted: a fault before a valid CONFIG, or a restart before it; the scanner was told
            # (no CLOSE) and nothing of its data is on the server
            counts["not_journaled"] += 1
            if record.closed and not record.errors:
                lost.append(f"scanner {record.scanner} port {record.local_port}: CLOSE but no journal")
            continue
        manifest = read_manifest(folder)
        stored = _input_bytes(folder)
        outcome = manifest["outcome"]
        if outcome == "running" or not verify_journal(folder):
            lost.append(f"{folder.name}: outcome {outcome}, verifies {verify_journal(folder)}")
            continue
        if record.closed and not record.errors:
            if outcome != "completed" or stored != bytes(record.sent) or record.n_images != N_IMAGES:
                lost.append(f"{folder.name}: CLOSE to the scanner but {outcome}, {record.n_images} images")
            else:
                counts["completed"] += 1
        elif outcome == "interrupted":
            replay = manifest.get("replay") or {}
            if replay.get("outcome") in ("completed", "partial"):
                counts["interrupted_recovered"] += 1
            else:
                lost.append(f"{folder.name}: interrupted and not replayed ({replay})")
        else:
            counts[outcome if outcome in counts else "failed"] += 1
    latencies = sorted(r.latency_s for r in records if r.latency_s is not None)
    return {
        "sessions": len(records),
        **counts,
        "lost": len(lost),
        "lost_detail": lost[:20],
        "outcomes_by_fault": by_fault,
        "not_journaled_because": dict(sorted(refusals.items(), key=lambda kv: -kv[1])[:10]),
        "journals_not_matched": sum(len(v) for v in by_port.values()) - len(taken),
        "latency_p50_s": statistics.median(latencies) if latencies else None,
        "latency_p95_s": latencies[int(0.95 * (len(latencies) - 1))] if latencies else None,
    }


def rss_growth(lifetimes: list[list[tuple[float, int]]], warmup_s: float) -> list[dict[str, float]]:
    """Per server lifetime: RSS at the end of the warm-up, at the end, and the growth in %."""
    out = []
    for samples in lifetimes:
        if len(samples) < 3:
            continue
        t0 = samples[0][0]
        warm = [rss for t, rss in samples if t - t0 >= warmup_s]
        if len(warm) < 2:
            continue
        first, last = (
            statistics.median(warm[: max(1, len(warm) // 10)]),
            statistics.median(warm[-max(1, len(warm) // 10) :]),
        )
        out.append(
            {
                "duration_s": samples[-1][0] - t0,
                "rss_after_warmup_mb": first / 1e6,
                "rss_end_mb": last / 1e6,
                "max_mb": max(r for _, r in samples) / 1e6,
                "growth_percent": 100.0 * (last - first) / first,
            }
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scanners", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--restart-every-s", type=float, default=600.0, help="kill -9 and restart the server")
    parser.add_argument("--warmup-s", type=float, default=120.0, help="RSS warm-up after each (re)start")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    print("simulating 4 exams ...", flush=True)
    exams = [_exam_messages(seed) for seed in range(4)]
    records: list[SessionRecord] = []
    lock = threading.Lock()
    stop = threading.Event()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        journal = Path(tmp) / "journal"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = ServerProcess(journal, port, Path(tmp) / "serve.log")
        server.start()
        t_start = time.monotonic()

        def scanner(index: int) -> None:
            local = random.Random(args.seed * 1000 + index)
            while not stop.is_set():
                fault = local.choices(["none", "killed", "malformed", "slow"], weights=[80, 10, 5, 5])[0]
                record = SessionRecord(index, fault)
                with lock:
                    records.append(record)
                run_session(port, local.choice(exams), record, local)
                stop.wait(local.uniform(0.5, 3.0))

        threads = [threading.Thread(target=scanner, args=(k,), daemon=True) for k in range(args.scanners)]
        for thread in threads:
            thread.start()
        next_restart = t_start + args.restart_every_s
        while time.monotonic() - t_start < args.minutes * 60:
            time.sleep(5.0)
            now = time.monotonic()
            server.sample_rss(now - t_start)
            if now >= next_restart and now - t_start < args.minutes * 60 - 120:
                print(f"{(now - t_start) / 60:.1f} min: kill -9 and restart of the server", flush=True)
                server.kill_and_restart()
                next_restart = now + args.restart_every_s
            with lock:
                n = len(records)
            print(f"{(now - t_start) / 60:.1f} min: {n} sessions started", flush=True)
        stop.set()
        for thread in threads:
            thread.join(timeout=900)
        time.sleep(2.0)
        server.stop()
        result = audit(records, journal)
        result.update(
            scanners=args.scanners,
            minutes=args.minutes,
            server_restarts=server.n_restarts,
            faults={f: sum(r.fault == f for r in records) for f in ("none", "killed", "malformed", "slow")},
            rss=rss_growth(server.lifetimes, args.warmup_s),
        )
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if result["lost"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
