"""The Ray executor end to end on a local cluster, run as its own process (``test_ray_executor`` starts it,
inside ``unshare -n`` with only ``lo`` up where it can): ``python -m tests.plugins.runtime.ray_scenario OUT.json``.

Steps, each recorded in ``OUT.json`` for the test to check:

1. a 12-slice cine exam (simulator, small matrix) through the ``cine`` chain's stages up to binning, once;
2. the heavy stages (unfold → combine → image) on those slices with the default executor: the reference;
3. the same with ``ExecutorConfig(kind="ray", ray_address=<nothing listening>)``: must warn and run locally;
4. a Ray head started on 127.0.0.1 (``ray start --head``, 2 CPUs, small object store, no dashboard,
   a temporary session folder); the same stages with ``kind="ray"``, 2 workers — only the configuration
   differs from step 2;
5. again, SIGKILL-ing the busiest worker as the first image arrives: the run must still complete;
6. every worker SIGKILLed at once mid-run: the run completes in-process (warning); Ray restarts the workers
   and the next run uses them again;
7. slices without calibration lines, which the unfolding refuses: the error raised on a worker must reach
   the caller as the in-process run reports it (stage, plugin, cause);
8. a 2-plane flow exam from its binned series on: in-process and on the workers;
9. a 4-slice Dixon exam's MR stages in-process and on the workers (the volume is one unit);
9b. a 2-frame TOF PET cylinder scan through the ``pet-tof`` chain in-process and on the workers (each frame
   one unit);
10. a server (``ServerConfig.executor`` on the cluster) receives a 2-slice cine session from a client; the
   journaled session is replayed in-process and must give the same images;
11. a 2-point sweep as Ray tasks and in-process;
12. ``ray stop`` (the test's process namespace also ends every process the cluster left).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

EXAM = {
    "protocol": "cine",
    "n_slices": 12,
    "n_coils": 8,
    "n_readout": 64,
    "n_phase_encodes": 64,
    "n_phases": 8,
    "n_calibration_lines": 16,
    "heart_rate_bpm": 90.0,
}
N_HEAVY_FROM = 4  # the cine chain's stages from 'unfold' on (noise, oversampling, accumulate, bin before)


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pixels(outputs: list[Any]) -> list[tuple[tuple[int, int], np.ndarray]]:
    import ismrmrd

    return [
        ((int(o.slice), int(o.phase)), np.asarray(o.data).copy())
        for o in outputs
        if isinstance(o, ismrmrd.Image)
    ]


def _compare(a: list[Any], b: list[Any]) -> dict[str, Any]:
    """Same images in the same order?  Max absolute pixel difference (uint16 display units)."""
    pa, pb = _pixels(a), _pixels(b)
    same_order = [k for k, _ in pa] == [k for k, _ in pb]
    diff = max(
        (
            int(np.abs(x.astype(np.int64) - y.astype(np.int64)).max())
            for (_, x), (_, y) in zip(pa, pb, strict=False)
        ),
        default=-1,
    )
    identical = (
        same_order
        and len(pa) == len(pb)
        and all(np.array_equal(x, y) for (_, x), (_, y) in zip(pa, pb, strict=False))
    )
    return {
        "n_images": [len(pa), len(pb)],
        "same_order": same_order,
        "max_abs_diff": diff,
        "bit_identical": identical,
    }


def _start_head(temp_dir: str) -> str:
    port = _free_port()
    ray_cli = str(Path(sys.executable).with_name("ray"))
    subprocess.run(
        [ray_cli, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2",
         "--object-store-memory", str(200 * 1024 * 1024), "--include-dashboard", "false",
         "--temp-dir", temp_dir, "--disable-usage-stats"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return f"127.0.0.1:{port}"


def _server_session(address: str, work: Path) -> dict[str, Any]:
    """A 2-slice cine session through a server whose executor is the cluster at ``address``, then its
    replay from the journal (in-process): same images?"""
    from hardware_sim.mr import MRExamConfig, simulate_exam
    from plugins.runtime.executor import ExecutorConfig, shared_executor
    from plugins.server.client import send_session
    from plugins.server.config import ServerConfig
    from plugins.server.replay import find_session, replay_session
    from plugins.server.server import ReconServer

    exam = simulate_exam(MRExamConfig(**{**EXAM, "n_slices": 2}))
    executor = ExecutorConfig(kind="ray", ray_address=address, n_workers=2)
    journal = work / "journal"
    server = ReconServer(
        ServerConfig(host="127.0.0.1", port=0, journal_dir=journal, device="cpu", executor=executor)
    )
    server.start()
    try:
        reply = send_session(*server.address, "cine", exam.header, exam.items())
        ray_executor: Any = shared_executor(executor)
        n_units, name = getattr(ray_executor, "n_units", 0), ray_executor.name
    finally:
        server.shutdown(grace_s=10.0)
    session_id = server.manifests[-1]["session_id"]  # recorded when the session's thread has ended
    replayed = replay_session(find_session(str(session_id), journal), work / "replayed")
    return {
        "executor": name,
        "n_units": n_units,
        "n_images": len(reply.images),
        "errors": reply.errors,
        "replay_matches": replayed.matches_journal,
        "n_replayed": replayed.n_images,
    }


def _wait_until_all_back(executor: Any, timeout_s: float = 120.0) -> bool:
    """Wait until Ray has restarted every killed worker (it answers again); False on timeout."""
    deadline = time.monotonic() + timeout_s
    while executor._restarting and time.monotonic() < deadline:
        time.sleep(0.2)
    return not executor._restarting


def _kill_all(executor: Any, chain: Any, binned: list[Any], context: Any, local: list[Any]) -> dict[str, Any]:
    """Every worker SIGKILLed after the third slice went in: the rest of the run must complete here; once
    Ray has restarted the workers, the next run must use them again."""
    from plugins.runtime.pipeline import run_chain

    def items() -> Any:
        n_slices = 0
        for item in copy.deepcopy(binned):
            yield item
            n_slices += type(item).__name__ == "CineSliceBinned"
            if n_slices == 3:
                n_slices += 1
                for pid in executor.worker_pids:
                    os.kill(pid, signal.SIGKILL)

    _wait_until_all_back(executor)  # the worker killed in step 5 may still be restarting
    local_before = executor.n_local
    outputs = run_chain(chain, items(), context)
    n_local = executor.n_local - local_before
    back = _wait_until_all_back(executor)
    units_before = executor.n_units
    again = run_chain(chain, copy.deepcopy(binned), context)
    return {
        **_compare(local, outputs),
        "n_local": n_local,
        "back": back,
        "n_units_next_run": executor.n_units - units_before,
        "next_run_identical": _compare(local, again)["bit_identical"],
    }


def _error_of(chain: Any, items: list[Any], context: Any) -> dict[str, Any] | None:
    """How the run fails: stage, plugin, cause type and message (None when it does not)."""
    from plugins.runtime.pipeline import ChainError, run_chain

    try:
        run_chain(chain, copy.deepcopy(items), context)
    except ChainError as exc:
        return {
            "stage": exc.stage,
            "plugin": exc.plugin,
            "cause": type(exc.__cause__).__name__,
            "message": str(exc),
        }
    return None


def _dixon(executor: Any) -> dict[str, Any]:
    """A small 4-slice Dixon exam through the petmr chain's MR stages, in-process and on ``executor``."""
    from hardware_sim.mr import MRExamConfig, simulate_exam
    from plugins.mr.dixon_items import DixonVolume
    from plugins.runtime.chain import load_chain
    from plugins.runtime.pipeline import run_chain
    from plugins.runtime.plugin import ChainContext

    exam = simulate_exam(
        MRExamConfig(protocol="dixon", n_slices=4, n_coils=8, n_readout=64, n_phase_encodes=48)
    )
    chain = load_chain("petmr")
    mr = replace(chain, stages=chain.stages[:3])  # noise, oversampling, dixon
    context = ChainContext(chain.name, device=torch.device("cpu"), header=exam.header)
    local = run_chain(mr, exam.items(), context)  # fresh readouts each time: stages write into their inputs
    remote = run_chain(mr, exam.items(), replace(context, executor=executor))
    volumes = [[o for o in out if isinstance(o, DixonVolume)] for out in (local, remote)]
    same_volume = len(volumes[0]) == len(volumes[1]) == 1 and all(
        np.array_equal(getattr(volumes[0][0].result, name), getattr(volumes[1][0].result, name))
        for name in ("water", "fat", "field_map_hz")
    )
    return {**_compare(local, remote), "same_volume": same_volume, "n_outputs": [len(local), len(remote)]}


def _flow(executor: Any) -> dict[str, Any]:
    """A small 2-plane flow exam: binned once, then the flow chain from ``unfold`` on (each (slice, encoding)
    series one unit) in-process and on ``executor``."""
    from hardware_sim.mr import MRExamConfig, simulate_exam
    from plugins.runtime.chain import load_chain
    from plugins.runtime.pipeline import run_chain
    from plugins.runtime.plugin import ChainContext

    exam = simulate_exam(MRExamConfig(**{**EXAM, "protocol": "flow", "n_slices": 2}))
    chain = load_chain("flow")
    context = ChainContext(chain.name, device=torch.device("cpu"), header=exam.header)
    binned = run_chain(replace(chain, stages=chain.stages[:N_HEAVY_FROM]), exam.items(), context)
    heavy = replace(chain, stages=chain.stages[N_HEAVY_FROM:])
    local = run_chain(heavy, copy.deepcopy(binned), context)
    remote = run_chain(heavy, copy.deepcopy(binned), replace(context, executor=executor))
    return {**_compare(local, remote), "n_series": sum(type(b).__name__ == "CineSliceBinned" for b in binned)}


def _pet(executor: Any, work: Path) -> dict[str, Any]:
    """A 2-frame TOF PET scan through the shipped ``pet-tof`` chain, each frame one unit: in-process and on
    ``executor``.  The frames are one simulated cylinder scan (``small`` scanner, 60 k prompts) sent twice,
    the second time as frame 1."""
    from dataclasses import replace as replace_batch

    from plugins.cli import main as cli_main
    from plugins.runtime.chain import load_chain
    from plugins.runtime.pipeline import run_chain
    from plugins.runtime.plugin import ChainContext
    from plugins.runtime.session import combined_inputs
    from recon.tof.listmode import ListModeBatch

    scan = work / "pet_cylinder.petsird"
    simulate = ["simulate", "pet", "--phantom", "cylinder", "--scanner", "small", "--counts", "60000"]
    assert cli_main([*simulate, "--voxel-mm", "4", "--out", str(scan)]) == 0
    chain = load_chain("pet-tof")
    outputs = []
    for run_executor in (None, executor):
        header, extras, items = combined_inputs([scan])
        first = list(items)
        second = [replace_batch(b, frame_index=1) for b in first if isinstance(b, ListModeBatch)]
        context = ChainContext(chain.name, device=torch.device("cpu"), header=header, extras=extras)
        if run_executor is not None:
            context = replace(context, executor=run_executor)
        outputs.append(run_chain(chain, [*first, *second], context))
    n_images = [sum(type(o).__name__ == "Image" for o in out) for out in outputs]
    return {**_compare(*outputs), "n_frame_images": n_images}


def _sweep(address: str, work: Path) -> dict[str, Any]:
    """Two sweep points (GRAPPA regularisation) on a 1-slice exam: Ray tasks versus in-process."""
    from hardware_sim.mr import MRExamConfig, simulate_exam
    from plugins.io.ismrmrd_files import write_raw
    from plugins.runtime.executor import ExecutorConfig
    from plugins.sweep import parse_grid, run_sweep

    exam = simulate_exam(MRExamConfig(**{**EXAM, "n_slices": 1}))
    raw = work / "sweep_raw.h5"
    write_raw(raw, exam.header, exam.items())
    exam.write_truth(raw.with_name(raw.stem + ".truth.h5"))
    axes = [parse_grid("unfold.grappa_regularization=5,10")]
    lines: list[str] = []
    config = ExecutorConfig(kind="ray", ray_address=address, n_workers=2)
    remote = run_sweep("cine", axes, str(raw), work / "sweep_ray", progress=lines.append, executor=config)
    local = run_sweep("cine", axes, str(raw), work / "sweep_local", progress=lambda _line: None)
    return {
        "progress": lines,
        "quality_ray": [row["quality"] for row in remote],
        "quality_local": [row["quality"] for row in local],
    }


def main(out_json: Path) -> None:
    from hardware_sim.mr import MRExamConfig, simulate_exam
    from plugins.runtime.chain import load_chain
    from plugins.runtime.executor import ExecutorConfig, open_executor
    from plugins.runtime.pipeline import Pipeline, run_chain
    from plugins.runtime.plugin import ChainContext

    # Only loopback exists in the test's network namespace: Ray's token authentication is turned off for the
    # head and this driver alike (a real cluster keeps it on; its clients need the token, see the README).
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    result: dict[str, Any] = {"timings_s": {}}
    timings = result["timings_s"]
    warnings = _Warnings()
    logging.getLogger("reconstream").addHandler(warnings)
    start = time.perf_counter()
    exam = simulate_exam(MRExamConfig(**EXAM))
    chain = load_chain("cine")
    heavy = replace(chain, stages=chain.stages[N_HEAVY_FROM:])
    context = ChainContext(chain.name, device=torch.device("cpu"), header=exam.header)
    binned = run_chain(replace(chain, stages=chain.stages[:N_HEAVY_FROM]), exam.items(), context)
    timings["simulate_and_bin"] = time.perf_counter() - start
    result["n_slices_binned"] = sum(type(b).__name__ == "CineSliceBinned" for b in binned)

    start = time.perf_counter()
    local = run_chain(heavy, copy.deepcopy(binned), context)
    timings["local"] = time.perf_counter() - start

    start = time.perf_counter()
    absent = ExecutorConfig(kind="ray", ray_address=f"127.0.0.1:{_free_port()}", n_workers=2)
    fallback = open_executor(absent)
    outputs = run_chain(heavy, copy.deepcopy(binned), replace(context, executor=fallback))
    result["fallback"] = {
        "executor": fallback.name,
        "warnings": list(warnings.lines),
        **_compare(local, outputs),
    }
    timings["fallback"] = time.perf_counter() - start

    temp_dir = tempfile.mkdtemp(prefix="reconstream-ray-")
    ray_cli = str(Path(sys.executable).with_name("ray"))
    try:
        start = time.perf_counter()
        address = _start_head(temp_dir)
        timings["ray_start"] = time.perf_counter() - start
        start = time.perf_counter()
        executor: Any = open_executor(ExecutorConfig(kind="ray", ray_address=address, n_workers=2))
        timings["workers_ready"] = time.perf_counter() - start
        result["executor"] = executor.name
        start = time.perf_counter()
        outputs = run_chain(heavy, copy.deepcopy(binned), replace(context, executor=executor))
        timings["ray_first_run"] = time.perf_counter() - start
        result["ray"] = {**_compare(local, outputs), "n_units": executor.n_units, "n_local": executor.n_local}

        start = time.perf_counter()
        killed: list[int] = []
        outputs = []
        pipeline = Pipeline(heavy, replace(context, executor=executor))
        for output in pipeline.run(copy.deepcopy(binned)):
            outputs.append(output)
            if not killed:
                busiest = max(range(len(executor.workers)), key=lambda i: executor._load[i])
                result["load_at_kill"] = list(executor._load)
                killed.append(executor.worker_pids[busiest])
                os.kill(killed[0], signal.SIGKILL)
        timings["ray_run_with_kill"] = time.perf_counter() - start
        result["kill"] = {
            **_compare(local, outputs),
            "killed_pid": killed[0],
            "n_retried": executor.n_retried,
            "n_local": executor.n_local,
        }
        start = time.perf_counter()
        result["all_killed"] = _kill_all(executor, heavy, binned, replace(context, executor=executor), local)
        timings["all_workers_killed_and_back"] = time.perf_counter() - start
        no_calibration = [
            replace(b, calibration=torch.zeros_like(b.calibration))
            if type(b).__name__ == "CineSliceBinned"
            else b
            for b in binned
        ]
        result["worker_error"] = _error_of(heavy, no_calibration, replace(context, executor=executor))
        result["local_error"] = _error_of(heavy, no_calibration, context)
        n_units = executor.n_units
        start = time.perf_counter()
        result["flow"] = {**_flow(executor), "n_units": executor.n_units - n_units}
        timings["flow_local_and_ray"] = time.perf_counter() - start
        start = time.perf_counter()
        result["dixon"] = _dixon(executor)
        timings["dixon_local_and_ray"] = time.perf_counter() - start
        n_units = executor.n_units
        start = time.perf_counter()
        result["pet"] = {**_pet(executor, Path(temp_dir)), "n_units": executor.n_units - n_units}
        timings["pet_local_and_ray"] = time.perf_counter() - start
        executor.close()  # (disconnects this driver too: the server below joins the cluster again)
        start = time.perf_counter()
        result["server"] = _server_session(address, Path(temp_dir))
        timings["server_session_and_replay"] = time.perf_counter() - start
        start = time.perf_counter()
        result["sweep"] = _sweep(address, Path(temp_dir))
        timings["sweep_ray_and_local"] = time.perf_counter() - start
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, timeout=120)
        shutil.rmtree(
            temp_dir, ignore_errors=True
        )  # Ray's session folder (logs, sockets), the journal, the sweep
    result["warnings"] = list(warnings.lines)
    out_json.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
