"""Cine slices per second through the chain's heavy stages: in-process versus Ray with 1 and 2 workers.

``python -m benchmarks.ray_executor_scaling [--slices N] [--repeats R] --out FILE.json`` (a script, not part of
``make bench``: it starts a private Ray instance on 127.0.0.1 — run it inside ``unshare -n`` to keep every
byte on loopback — and takes ≈ 2 min on 2 cores).

Data: ``N`` binned slices of the benchmark phantom of ``test_bench_cine`` (R = 2, 24 calibration lines), at two
sizes: ``clinical`` (192 × 156, 16 coils, 25 phases: 96 MB of complex64 k-space per slice) and ``small`` (8
coils, 8 phases, 48 readout samples: 3.8 MB) — the overhead of the Ray path has a fixed part per unit and a
part per byte moved.  Work timed: the ``cine``
chain's stages from ``unfold`` on (GRAPPA unfolding, combination, display images) over the ``N`` slices, the
same items for every variant, in one process, after one warm-up pass (workers' imports and first calls):

* ``local_2_threads``: the default executor, torch with 2 threads (what ``run`` does by default here);
* ``local_1_thread``: the default executor, torch with 1 thread (what one Ray worker gets: Ray sets
  ``OMP_NUM_THREADS`` to its ``num_cpus`` = 1);
* ``ray_1_worker`` / ``ray_2_workers``: the Ray executor (object store, actors on this machine).

Per-unit overhead of the Ray path = (``ray_1_worker`` − ``local_1_thread``) / N: the same single-threaded
compute, the Ray path adding the object-store put of the inputs, the actor call and the return of the outputs.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import ismrmrd
import torch

N_HEAVY_FROM = 4  # the cine chain's stages from 'unfold' on


def binned_slices(n_slices: int, size: str) -> list[Any]:
    """``n_slices`` copies (distinct slice indices) of the benchmark slice, binned: ``clinical`` as it is
    (96 MB of k-space), ``small`` its first 8 coils and 8 phases, central 48 readout samples (3.8 MB)."""
    from benchmarks.test_bench_cine import N_PHASES, SHAPE, raw_slice
    from plugins.mr.cine_items import CineSliceBinned
    from recon.cine.binning import bin_lines, build_beat_table

    raw = raw_slice(2)
    beats = build_beat_table(raw["r_waves"], 20.0)
    binned = bin_lines(raw["lines"], raw["ky"], raw["times"], beats, N_PHASES, SHAPE[0])
    kspace, sampled = binned.kspace, binned.sampled
    trigger_ms = (torch.arange(N_PHASES, dtype=torch.float64) + 0.5) * 1000.0 / N_PHASES
    if size == "small":
        kspace, sampled, trigger_ms = kspace[:8, :8, :, 72:120].clone(), sampled[:8], trigger_ms[:8]
    return [
        CineSliceBinned(
            s, kspace, sampled, raw["imaging"], raw["calibration"], trigger_ms, 0, ismrmrd.AcquisitionHeader()
        )
        for s in range(n_slices)
    ]


def _run_once(chain: Any, context: Any, items: list[Any], n_threads: int) -> float:
    from plugins.runtime.pipeline import run_chain

    before = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        start = time.perf_counter()
        outputs = run_chain(chain, copy.copy(items), context)
        elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(before)
    assert sum(isinstance(o, ismrmrd.Image) for o in outputs) == sum(b.kspace.shape[0] for b in items)
    return elapsed


def _interleaved(
    chain: Any, variants: dict[str, tuple[Any, int]], items: list[Any], repeats: int
) -> dict[str, list[float]]:
    """Wall times of every variant (context, torch threads), one warm-up each, then ``repeats`` rounds in
    which the variants take turns (a load change on the shared machine hits all of them alike)."""
    for context, n_threads in variants.values():
        _run_once(chain, context, items, n_threads)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, (context, n_threads) in variants.items():
            times[name].append(_run_once(chain, context, items, n_threads))
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private instance on loopback only
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import tempfile

    import ray

    from plugins.runtime.chain import load_chain
    from plugins.runtime.executor import ExecutorConfig
    from plugins.runtime.plugin import ChainContext
    from plugins.runtime.ray_executor import RayExecutor

    chain = load_chain("cine")
    heavy = replace(chain, stages=chain.stages[N_HEAVY_FROM:])
    context = ChainContext(chain.name, device=torch.device("cpu"))
    data = {size: binned_slices(args.slices, size) for size in ("small", "clinical")}
    threads = torch.get_num_threads()
    temp_dir = tempfile.mkdtemp(prefix="reconstream-ray-bench-")
    # 3 logical CPUs: the 1-worker and the 2-worker pools live side by side (idle actors cost nothing); 2 cores
    ray.init(
        num_cpus=3,
        object_store_memory=1 << 30,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
        _temp_dir=temp_dir,
    )
    executors = [RayExecutor(ExecutorConfig(kind="ray", n_workers=n)) for n in (1, 2)]
    variants = {
        "local_2_threads": (context, threads),
        "local_1_thread": (context, 1),
        "ray_1_worker": (replace(context, executor=executors[0]), threads),
        "ray_2_workers": (replace(context, executor=executors[1]), threads),
    }
    try:
        results = {size: _interleaved(heavy, variants, items, args.repeats) for size, items in data.items()}
    finally:
        for executor in executors:
            executor.close()
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
    document: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, ray {ray.__version__}",
        "load_average_at_end": os.getloadavg(),
        "n_slices": args.slices,
        "work": "cine chain unfold (GRAPPA R = 2) -> combine -> image, per slice",
    }
    for size, timings in results.items():
        best = {k: min(v) for k, v in timings.items()}
        document[size] = {
            "slice_mb": data[size][0].kspace.numel() * 8 / 1e6,
            "wall_s": timings,
            "slices_per_s_best": {k: args.slices / v for k, v in best.items()},
            "slices_per_s_median": {k: args.slices / statistics.median(v) for k, v in timings.items()},
            "ray_overhead_ms_per_slice_best": 1e3
            * (best["ray_1_worker"] - best["local_1_thread"])
            / args.slices,
            "ray_overhead_ms_per_slice_median": 1e3
            * (statistics.median(timings["ray_1_worker"]) - statistics.median(timings["local_1_thread"]))
            / args.slices,
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2), encoding="utf-8")
    print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
