"""Parameter sweeps scored against the simulator's truth, with the Pareto front of quality versus latency.

``reconstream sweep --chain NAME --grid stage.key=v1,v2 [--grid ...] --data simulated[:KEY=V,...]|FILE
--out DIR [--jobs N]``:

* every grid key is a chain parameter (``stage.key``) or a simulator setting (``sim.key``, e.g.
  ``sim.acceleration=2,4``: the data are simulated once per distinct setting);
* every combination is validated (chain parameters by the plugins' configs, simulator settings by the
  exam config) **before** anything runs; a bad value is refused naming the key and what is allowed;
* each point runs the chain on its data into ``DIR/points/NNN`` and is scored with
  :func:`plugins.compare.score_run` against the truth written beside the data (``<stem>.truth.h5``);
  latency is the point's wall time in seconds;
* ``--executor ray`` runs the points as Ray tasks on a cluster (a point whose worker dies is retried);
* ``DIR/sweep.csv`` and ``DIR/sweep.json`` hold one row per point; ``pareto`` marks the points no other
  point beats in both quality (the primary metric, lower is better) and latency.

Primary quality metric: MR magnitude nRMSE (mean over series), else the absolute net-flow error (%), else
the mean absolute PET activity bias (%); for data without a truth (a scanner's file) the scores of
:mod:`plugins.quality_no_truth` (SNR, ghosting, sharpness) and 1/SNR as the primary metric.
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import math
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugins.runtime.chain import ChainConfigError, load_chain, split_override
from plugins.runtime.executor import ExecutorConfig

SIM_PREFIX = "sim."
log = logging.getLogger("reconstream.sweep")


@dataclass(frozen=True)
class GridAxis:
    """One swept parameter: ``key`` (``stage.key`` or ``sim.key``) and its values (TOML-typed)."""

    key: str
    values: tuple[Any, ...]


def parse_grid(spec: str) -> GridAxis:
    """``stage.key=v1,v2,...`` → :class:`GridAxis` (values read as TOML: ``4``, ``0.5``, ``"cs"``, ``[5,4]``)."""
    key, sep, raw = spec.partition("=")
    key = key.strip()
    if not sep or "." not in key or not raw.strip():
        raise ChainConfigError(f"--grid {spec!r}: expected STAGE.KEY=V1,V2,... (or sim.KEY=...)")
    values, depth, start = [], 0, 0
    for i, char in enumerate(raw + ","):
        depth += (char == "[") - (char == "]")
        if char == "," and depth == 0:
            values.append(split_override(f"{key}={raw[start:i].strip()}")[1])
            start = i + 1
    if len(values) != len(set(map(repr, values))):
        raise ChainConfigError(f"--grid {key}: a value is repeated ({raw})")
    return GridAxis(key, tuple(values))


def grid_points(axes: Sequence[GridAxis]) -> list[dict[str, Any]]:
    """Every combination of the axes, as ``{key: value}``, in row-major order."""
    keys = [a.key for a in axes]
    if len(set(keys)) != len(keys):
        raise ChainConfigError(f"--grid: a key is given twice ({', '.join(keys)})")
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(a.values for a in axes))]


def _split(point: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    chain = {k: v for k, v in point.items() if not k.startswith(SIM_PREFIX)}
    sim = {k.removeprefix(SIM_PREFIX): v for k, v in point.items() if k.startswith(SIM_PREFIX)}
    return chain, sim


def exam_config(base: dict[str, Any], sim: dict[str, Any]) -> Any:
    """The simulator's :class:`~hardware_sim.mr.MRExamConfig` for base options plus a point's ``sim.`` keys."""
    from pydantic import ValidationError

    from hardware_sim.mr import MRExamConfig

    try:
        return MRExamConfig(**{**base, **sim})
    except ValidationError as exc:
        problems = "; ".join(
            f"sim.{'.'.join(map(str, e['loc']))} = {e.get('input')!r}: {e['msg']}" for e in exc.errors()
        )
        raise ChainConfigError(f"simulated data: {problems}") from None
    except TypeError as exc:
        raise ChainConfigError(f"simulated data: {exc}") from None


def parse_data(spec: str, chain_name: str) -> tuple[str, dict[str, Any]]:
    """``simulated[:key=value,...]`` → ("simulated", options); a file path → ("file", {"path": ...})."""
    if spec == "simulated" or spec.startswith("simulated:"):
        options: dict[str, Any] = {"protocol": "flow" if chain_name.startswith("flow") else "cine"}
        for item in filter(None, spec.partition(":")[2].split(",")):
            key, value = split_override(item)
            options[key] = value
        return "simulated", options
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"--data {spec}: no such file (or use 'simulated[:KEY=VALUE,...]')")
    return "file", {"path": path}


def validate(chain_name: str, points: list[dict[str, Any]], data_kind: str, data: dict[str, Any]) -> None:
    """Refuse the sweep before any work when a point's chain parameters or simulator settings are invalid."""
    for point in points:
        chain_values, sim = _split(point)
        load_chain(chain_name, chain_values)
        if sim and data_kind != "simulated":
            raise ChainConfigError(f"--grid {', '.join('sim.' + k for k in sim)}: needs --data simulated")
        if data_kind == "simulated":
            exam_config(data, sim)


def _data_file(folder: Path, base: dict[str, Any], sim: dict[str, Any]) -> Path:
    """Simulate (once per distinct setting) into ``folder``; returns the raw file (truth beside it)."""
    from hardware_sim.mr import simulate_exam
    from plugins.io.ismrmrd_files import write_raw

    key = "_".join(f"{k}-{v}" for k, v in sorted(sim.items())) or "default"
    path = folder / f"raw_{key}.h5"
    if not path.is_file():
        exam = simulate_exam(exam_config(base, sim))
        write_raw(path, exam.header, exam.items())
        exam.write_truth(path.with_name(path.stem + ".truth.h5"))
    return path


def run_point(
    chain_name: str, chain_values: dict[str, Any], raw: Path, out: Path, device: str
) -> dict[str, Any]:
    """Run one point into ``out`` and score it; returns its latency and flattened metrics."""
    from plugins.compare import score_run
    from plugins.runtime.session import combined_inputs, run_to_folder

    chain = load_chain(chain_name, chain_values)
    header, extras, items = combined_inputs([raw])
    start = time.perf_counter()
    run_to_folder(chain, items, out, header=header, device=device, inputs=[raw], extras=extras)
    latency_s = time.perf_counter() - start
    truth = raw.with_name(raw.stem + ".truth.h5")
    if truth.is_file():
        scores = score_run(out, truth)
    else:  # real data: SNR, ghosting and sharpness instead
        from plugins.quality_no_truth import score_without_truth

        scores = {"no_truth": score_without_truth(out)}
    return {"latency_s": latency_s, "quality": primary_quality(scores), "scores": scores}


def primary_quality(scores: dict[str, Any]) -> float:
    """The point's quality number, lower is better (see the module docstring); NaN without truth."""
    mr = scores.get("mr") or {}
    nrmse = [s["nrmse"] for s in (mr.get("series") or {}).values() if isinstance(s, dict) and "nrmse" in s]
    if nrmse:
        return float(sum(nrmse) / len(nrmse))
    flow = mr.get("flow") or {}
    errors = [abs(v) for k, v in flow.items() if k.endswith("error_percent") and isinstance(v, int | float)]
    if errors:
        return float(sum(errors) / len(errors))
    pet = scores.get("pet") or {}
    bias = [abs(v) for v in _numbers(pet, "bias_percent")]
    if bias:
        return float(sum(bias) / len(bias))
    snr = [v for v in _numbers(scores.get("no_truth") or {}, "snr") if v > 0]
    return float(len(snr) / sum(snr)) if snr else math.nan


def _numbers(tree: Any, suffix: str) -> Iterable[float]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key.endswith(suffix) and isinstance(value, int | float):
                yield float(value)
            else:
                yield from _numbers(value, suffix)
    elif isinstance(tree, list):
        for value in tree:
            yield from _numbers(value, suffix)


def pareto_front(points: list[dict[str, Any]]) -> list[bool]:
    """For each point: True when no other point is at least as good in quality and latency and better in one."""
    flags = []
    for p in points:
        q, t = p["quality"], p["latency_s"]
        dominated = any(
            (o["quality"] <= q and o["latency_s"] <= t) and (o["quality"] < q or o["latency_s"] < t)
            for o in points
            if o is not p and not math.isnan(o["quality"])
        )
        flags.append(not math.isnan(q) and not dominated)
    return flags


def _job(args: tuple[str, dict[str, Any], Path, Path, str]) -> dict[str, Any]:
    return run_point(*args)


def _collect(
    finished: Iterable[tuple[int, dict[str, Any]]], points: list[dict[str, Any]], progress: Any
) -> list[dict[str, Any]]:
    """Results of the points in point order, from ``(index, result)`` pairs in the order they finish."""
    done: dict[int, dict[str, Any]] = {}
    for index, result in finished:
        done[index] = result
        progress(f"point {len(done)}/{len(points)} done: {points[index]} → quality {result['quality']:.4g}")
    return [done[index] for index in range(len(points))]


def _ray_results(
    executor: ExecutorConfig,
    work: list[tuple[str, dict[str, Any], Path, Path, str]],
    points: list[Any],
    progress: Any,
) -> list[dict[str, Any]] | None:
    """The points as Ray tasks (:func:`plugins.runtime.ray_cluster.map_points`); None — after a warning —
    when Ray is not installed or its cluster cannot be reached (the sweep then runs here)."""
    if executor.kind != "ray":
        return None
    try:
        from plugins.runtime.ray_cluster import map_points

        return _collect(map_points(executor, _job, work), points, progress)
    except (ImportError, ConnectionError) as exc:
        message = f"warning: executor 'ray' unavailable ({type(exc).__name__}: {exc}); running the sweep here"
        log.warning("%s", message)
        progress(message)
        return None


def run_sweep(
    chain_name: str,
    axes: Sequence[GridAxis],
    data_spec: str,
    out: Path,
    jobs: int = 1,
    device: str = "cpu",
    progress: Any = print,
    executor: ExecutorConfig | None = None,
) -> list[dict[str, Any]]:
    """Validate, simulate, run and score every point; write ``sweep.csv``/``sweep.json``; returns the rows.
    Points run ``jobs`` at a time in processes here, or as Ray tasks with ``executor.kind == "ray"`` (every
    point's folder must then be reachable from the workers: one machine, or a shared file system)."""
    points = grid_points(axes)
    data_kind, data = parse_data(data_spec, chain_name)
    validate(chain_name, points, data_kind, data)
    out = Path(out)
    (out / "points").mkdir(parents=True, exist_ok=True)
    work: list[tuple[str, dict[str, Any], Path, Path, str]] = []
    for index, point in enumerate(points):
        chain_values, sim = _split(point)
        raw = _data_file(out / "data", data, sim) if data_kind == "simulated" else data["path"]
        work.append((chain_name, chain_values, raw, out / "points" / f"{index:03d}", device))
    where = "on Ray" if executor is not None and executor.kind == "ray" else f"{jobs} at a time"
    progress(f"sweep {chain_name}: {len(points)} points, {where}")
    rows: list[dict[str, Any]] = []
    results = _ray_results(executor, work, points, progress) if executor is not None else None
    if results is not None:
        pass  # ran on Ray
    elif jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(_job, item): index for index, item in enumerate(work)}
            results = _collect(((futures[f], f.result()) for f in as_completed(futures)), points, progress)
    else:
        results = _collect(((i, _job(item)) for i, item in enumerate(work)), points, progress)
    for index, (point, result) in enumerate(zip(points, results, strict=True)):
        rows.append({"point": index, **point, "quality": result["quality"], "latency_s": result["latency_s"]})
    for row, flag in zip(rows, pareto_front(rows), strict=True):
        row["pareto"] = flag
    _write(out, chain_name, axes, data_spec, rows, results)
    return rows


def _write(
    out: Path,
    chain_name: str,
    axes: Sequence[GridAxis],
    data_spec: str,
    rows: list[dict[str, Any]],
    results: list[dict[str, Any]],
) -> None:
    columns = list(rows[0]) if rows else []
    with (out / "sweep.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in row.items()})
    document = {
        "chain": chain_name,
        "grid": {a.key: list(a.values) for a in axes},
        "data": data_spec,
        "quality_metric": "lower is better (see plugins/sweep.py)",
        "points": [{**row, "scores": result["scores"]} for row, result in zip(rows, results, strict=True)],
    }
    (out / "sweep.json").write_text(json.dumps(document, indent=2, default=str), encoding="utf-8")
