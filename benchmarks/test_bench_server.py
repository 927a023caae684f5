"""The reconstruction server (issue 9): protocol overhead per acquisition, and 8 concurrent scanners.

* parse: decoding one ACQUISITION message (16 coils × 512 samples, complex64, 64 KiB) with the
  defensive parser; reference = a memory copy of the same bytes (floor ≈ 27 GB/s → ≈ 2.5 µs).
* server round trip: acquisitions streamed through a server session (socket, journal, parse, queue,
  pass-through chain, encode, socket back) per acquisition; reference = the same chain in-process.
* load: 8 simulated cine scanners stream at scanner pace (time stamps, 2.5 ms ticks) into one server at
  once; latency = last image received − last readout sent, per scanner, p50/p95 in ``extra_info``; every
  session must complete with all its images and a journal holding every byte sent (nothing lost).
"""

from __future__ import annotations

import io
import tempfile
import threading
from pathlib import Path
from typing import Any

import ismrmrd
import numpy as np
import pytest

from benchmarks.conftest import bench_profile, record_ratio
from plugins.io.protocol import Close, ConfigFile, ConfigText, MessageReader, encode_message, exact_reader
from plugins.runtime.chain import load_chain, parse_chain
from plugins.runtime.pipeline import run_chain
from plugins.runtime.plugin import ChainContext
from plugins.server.client import ClientResult, send_session
from plugins.server.config import ServerConfig
from plugins.server.journal import read_manifest
from plugins.server.server import ReconServer

PASSTHROUGH_TOML = 'description = "bench"\n[[stage]]\nplugin = "passthrough"\n'
N_SCANNERS = 8
N_ACQ = 200 if bench_profile() == "quick" else 2000


def _acquisitions(n: int, n_coils: int = 16, n_samples: int = 512) -> list[ismrmrd.Acquisition]:
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((n_coils, n_samples)) + 1j * rng.standard_normal((n_coils, n_samples)))
    out = []
    for i in range(n):
        acq = ismrmrd.Acquisition.from_array(data.astype(np.complex64))
        acq.scan_counter = i
        acq.idx.kspace_encode_step_1 = i % 256
        out.append(acq)
    return out


def _header() -> Any:
    from tests.plugins.server.helpers import make_header

    return make_header()


def test_parse_acquisition(benchmark: Any) -> None:
    raw = b"".join(encode_message(a) for a in _acquisitions(N_ACQ))

    def parse_all() -> int:
        reader = MessageReader(exact_reader(io.BytesIO(raw).read))
        for _ in range(N_ACQ):
            reader.next_message()
        return N_ACQ

    assert benchmark.pedantic(parse_all, rounds=5, warmup_rounds=1) == N_ACQ
    benchmark.extra_info["per_acquisition_us"] = benchmark.stats.stats.median / N_ACQ * 1e6
    record_ratio(benchmark, lambda: bytearray(raw), "memory copy of the same bytes")


def test_server_round_trip_per_acquisition(benchmark: Any) -> None:
    header, acqs = _header(), _acquisitions(N_ACQ)
    chain = parse_chain(PASSTHROUGH_TOML, name="bench", source="bench")
    with tempfile.TemporaryDirectory() as tmp, ReconServer(
        ServerConfig(port=0, journal_dir=Path(tmp), device="cpu", fsync_interval_s=1.0)
    ) as server:

        def session() -> int:
            result = send_session(*server.address, ConfigText(PASSTHROUGH_TOML), header, acqs)
            assert result.closed and len(result.other) == N_ACQ
            return len(result.other)

        benchmark.pedantic(session, rounds=5, warmup_rounds=1)
    benchmark.extra_info["per_acquisition_us"] = benchmark.stats.stats.median / N_ACQ * 1e6
    record_ratio(benchmark, lambda: run_chain(chain, acqs, ChainContext("bench")), "same chain in-process", rounds=5)


def _exam_items(seed: int) -> tuple[Any, list[Any]]:
    from hardware_sim.mr import MRExamConfig, simulate_exam

    if bench_profile() == "quick":
        size = dict(n_readout=48, n_phase_encodes=48, n_phases=6, acceleration=1, n_calibration_lines=0,
                    heart_rate_bpm=120)
    else:
        size = dict(n_readout=192, n_phase_encodes=156, n_phases=25, acceleration=2, n_calibration_lines=24,
                    heart_rate_bpm=60)
    exam = simulate_exam(MRExamConfig(n_slices=1, n_coils=8 if bench_profile() == "quick" else 16,
                                      views_per_segment=16, inter_slice_pause_s=0, seed=seed, **size))
    return exam.header, list(exam.items())


def test_eight_concurrent_scanners(benchmark: Any) -> None:
    pytest.importorskip("hardware_sim.mr.exam")
    exams = [_exam_items(seed) for seed in range(N_SCANNERS)]
    n_images_expected = [sum(isinstance(o, ismrmrd.Image) for o in run_chain(
        load_chain("cine"), items, ChainContext("cine", header=header))) for header, items in exams[:1]][0]
    latencies: list[float] = []
    lost: list[str] = []

    def load_round() -> None:
        with tempfile.TemporaryDirectory() as tmp, ReconServer(
            ServerConfig(port=0, journal_dir=Path(tmp), device="cpu", max_connections=N_SCANNERS)
        ) as server:
            results: dict[int, ClientResult] = {}

            def scanner(i: int) -> None:
                header, items = exams[i]
                results[i] = send_session(*server.address, ConfigFile("cine"), header, items, realtime=True)

            threads = [threading.Thread(target=scanner, args=(i,)) for i in range(N_SCANNERS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            server.shutdown()
            lost.extend(_check_nothing_lost(Path(tmp), exams, results, n_images_expected))
            latencies.extend(r.last_output_s - r.last_item_sent_s for r in results.values())

    benchmark.pedantic(load_round, rounds=2 if bench_profile() == "quick" else 1, warmup_rounds=0)
    assert not lost, lost
    benchmark.extra_info["latency_p50_s"] = float(np.percentile(latencies, 50))
    benchmark.extra_info["latency_p95_s"] = float(np.percentile(latencies, 95))
    benchmark.extra_info["n_sessions"] = len(latencies)
    benchmark.extra_info["n_lost"] = len(lost)


def _check_nothing_lost(journal: Path, exams: list[tuple[Any, list[Any]]], results: dict[int, ClientResult],
                        n_images: int) -> list[str]:
    problems = [f"scanner {i}: {len(r.images)} images, errors {r.errors}" for i, r in results.items()
                if not r.closed or r.errors or len(r.images) != n_images]
    expected_bytes = sorted(len(encode_message(ConfigFile("cine"))) + len(encode_message(h))
                            + sum(len(encode_message(x)) for x in items) + len(encode_message(Close()))
                            for h, items in exams)
    manifests = [read_manifest(p) for p in journal.iterdir() if p.is_dir()]
    if sorted(m["input"]["bytes"] for m in manifests) != expected_bytes:
        problems.append("journaled byte counts differ from the bytes sent")
    problems += [f"session {m['session_id']}: {m['outcome']}" for m in manifests if m["outcome"] != "completed"]
    return problems
