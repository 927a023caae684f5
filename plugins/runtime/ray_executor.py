"""The Ray executor: a chain's units on long-lived Ray actors, outputs streamed back in order.

* **Warm workers.**  ``n_workers`` actors (:class:`UnitWorker`) live as long as the executor (a server's
  lifetime).  Each keeps the plugins it was asked to compute for (built once per session from the plugin's
  class, config and context, least recently used dropped beyond ``_PLUGINS_PER_WORKER``), so per-session
  state (coil maps, sensitivity images) and per-process state (numba kernels, FFT plans) stay warm.
  ``num_gpus_per_worker`` > 0 makes Ray place workers on GPUs and the workers compute on CUDA.
* **By reference.**  A unit's arguments are put into Ray's object store once (``ray.put``); the worker
  receives the reference, a retry sends the same reference again (nothing is pickled twice), and the
  plugin description travels once per (session, worker).  Outputs come back once.
* **In order, as they finish.**  A feeder thread walks the plugin's stream and submits units (at most
  ``units_in_flight`` outstanding); the stage yields each output as soon as it and everything before it
  is done.
* **Faults.**  A unit whose worker died (``RayActorError``) is sent again — same inputs from the object
  store, which are immutable — to another live worker, at most ``max_retries`` times; the dead actor is
  restarted by Ray (``max_restarts=-1``).  Each unit yields its outputs exactly once.  When no worker can be
  reached any more (cluster lost) the remaining units are computed in this process, with a warning.  An
  exception raised by the plugin itself is re-raised here unchanged, so the chain's error names the plugin
  and item as a local run would.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import ray
import ray.exceptions

from plugins.runtime.executor import LOCAL, ExecutorConfig, UnitJob, compute_unit
from plugins.runtime.plugin import Plugin
from plugins.runtime.ray_cluster import connect, register_tensor_transport, writable

log = logging.getLogger("reconstream.executor.ray")
_PLUGINS_PER_WORKER = 8
#: a worker Ray restarts is asked whether it is back this often, this many times (10 min)
_PING_INTERVAL_S, _PING_ATTEMPTS = 1.0, 600
_POLL_S = 0.05
#: worker errors after which a unit is sent elsewhere (the worker process or its node went away)
_WORKER_LOST = (
    ray.exceptions.RayActorError,
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.ObjectLostError,
)


@dataclass(frozen=True)
class PluginSpec:
    """What a worker needs to build a warm copy of a plugin: its class, config and a worker context
    (the driver's context without its executor and output folder; the device is the worker's)."""

    plugin_class: type[Plugin]
    config: Any
    context: Any


def worker_copy(plugin: Plugin, device: str) -> PluginSpec:
    """The :class:`PluginSpec` of ``plugin`` for workers computing on ``device`` (``cpu`` or ``cuda``)."""
    import torch

    extras = {k: v for k, v in (plugin.context.extras or {}).items() if k != "log_tag"}
    context = replace(
        plugin.context, device=torch.device(device), out_dir=None, extras=extras, executor=LOCAL
    )
    return PluginSpec(type(plugin), plugin.config, context)


class UnitWorker:
    """A Ray actor computing units for any plugin; keeps the plugins it built (warm) keyed by session."""

    def __init__(self) -> None:
        register_tensor_transport()
        self._plugins: OrderedDict[str, Plugin] = OrderedDict()

    def pid(self) -> int:
        import os

        return os.getpid()

    def compute(self, key: str, spec_box: list[Any], job: UnitJob) -> list[Any]:
        """Outputs of ``job`` for the plugin ``key`` (built from ``spec_box[0]``, an object ref, on first use)."""
        plugin = self._plugins.get(key)
        if plugin is None:
            spec: PluginSpec = ray.get(spec_box[0])
            plugin = spec.plugin_class(spec.config, spec.context)
            self._plugins[key] = plugin
            while len(self._plugins) > _PLUGINS_PER_WORKER:
                self._plugins.popitem(last=False)
        self._plugins.move_to_end(key)
        return compute_unit(plugin, writable(job))


class RayExecutor:
    """Units on a pool of long-lived Ray actors (see the module docstring)."""

    name = "ray"

    def __init__(self, config: ExecutorConfig) -> None:
        self.config = config
        self._started_ray = connect(config)
        register_tensor_transport()
        self._options: dict[str, Any] = {
            "num_cpus": config.num_cpus_per_worker,
            "num_gpus": config.num_gpus_per_worker,
            "max_restarts": -1,
            "max_task_retries": 0,
        }
        self._actor_class: Any = ray.remote(UnitWorker)
        self.workers: list[Any] = [
            self._actor_class.options(**self._options).remote() for _ in range(config.n_workers)
        ]
        self.device = "cuda" if config.num_gpus_per_worker > 0 else "cpu"
        self._lock = threading.Lock()
        self._load = [0] * len(self.workers)
        self._restarting: set[int] = set()
        self.n_units = 0  # units computed on workers
        self.n_retried = 0  # units sent again after their worker died
        self.n_local = 0  # units computed in this process after the cluster was lost
        self.worker_pids = ray.get([w.pid.remote() for w in self.workers], timeout=300)
        log.info("executor 'ray': %d workers ready (pids %s)", len(self.workers), self.worker_pids)

    def pick_worker(self, avoid: int | None = None) -> int:
        """Index of the least loaded live worker (not ``avoid`` when there is another; a worker being
        restarted after it died only when no other is left)."""
        with self._lock:
            order = sorted(
                range(len(self.workers)), key=lambda i: (i in self._restarting, i == avoid, self._load[i])
            )
            self._load[order[0]] += 1
            return order[0]

    def worker_lost(self, index: int) -> None:
        """Worker ``index`` died: skip it until Ray has restarted it (it answers its pid again)."""
        with self._lock:
            if index in self._restarting:
                return
            self._restarting.add(index)
        self._ping(index, 0)

    def _ping(self, index: int, attempt: int) -> None:
        if not self.workers:  # closed
            return
        try:
            ping = self.workers[index].pid.remote().future()
        except Exception as exc:  # this process has lost the cluster
            log.warning("executor 'ray': worker %d cannot be reached (%s)", index, type(exc).__name__)
            return
        ping.add_done_callback(lambda f, i=index, a=attempt: self._restarted(i, a, f))

    def available(self) -> bool:
        """True while some worker is not known to be down."""
        with self._lock:
            return len(self._restarting) < len(self.workers)

    def _restarted(self, index: int, attempt: int, ping: Any) -> None:
        """A worker Ray is restarting answers once it is back; until then ask again every
        ``_PING_INTERVAL_S`` (for at most ``_PING_ATTEMPTS``); a worker Ray gave up on stays skipped."""
        try:
            pid = int(ping.result())
        except ray.exceptions.ActorDiedError as exc:
            log.warning("executor 'ray': worker %d will not come back (%s)", index, exc)
            return
        except Exception as exc:
            if attempt + 1 >= _PING_ATTEMPTS:
                log.warning("executor 'ray': worker %d did not come back (%s)", index, type(exc).__name__)
                return
            timer = threading.Timer(_PING_INTERVAL_S, self._ping, (index, attempt + 1))
            timer.daemon = True
            timer.start()
            return
        with self._lock:
            self.worker_pids[index] = pid
            self._restarting.discard(index)
        log.info("executor 'ray': worker %d is back (pid %d)", index, pid)

    def done(self, index: int) -> None:
        with self._lock:
            self._load[index] -= 1

    def count(self, name: str) -> None:
        """Add one to the counter ``name`` (``n_units``, ``n_retried`` or ``n_local``)."""
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def run_units(self, plugin: Plugin, entries: Iterable[Any]) -> Iterator[Any]:
        return _OrderedRun(self, plugin).outputs(entries)

    def close(self) -> None:
        for worker in self.workers:
            ray.kill(worker, no_restart=True)
        self.workers = []
        if self._started_ray:
            ray.shutdown()


class _Unit:
    """A submitted unit: its job, the object ref of its arguments, the worker and attempt in use."""

    def __init__(self, job: UnitJob, job_ref: Any) -> None:
        self.job = job
        self.job_ref = job_ref
        self.worker = -1
        self.attempts = 0
        self.future: Any = None


class _OrderedRun:
    """One stage's run through the Ray executor: a feeder thread submits, the caller yields in order."""

    def __init__(self, executor: RayExecutor, plugin: Plugin) -> None:
        self.ex = executor
        self.plugin = plugin
        self.key = uuid.uuid4().hex
        self.spec_box: list[Any] | None = None
        self.events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.slots = threading.Semaphore(executor.config.units_in_flight)
        self.stop = threading.Event()
        self.local_plugin: Plugin | None = None
        self.lost = False

    def _submit(self, seq: int, unit: _Unit, avoid: int | None = None) -> None:
        if self.spec_box is None:
            self.spec_box = [ray.put(worker_copy(self.plugin, self.ex.device))]
        unit.worker = self.ex.pick_worker(avoid)
        unit.attempts += 1
        actor = self.ex.workers[unit.worker]
        unit.future = actor.compute.remote(self.key, self.spec_box, unit.job_ref).future()
        unit.future.add_done_callback(lambda _f, s=seq, a=unit.attempts: self.events.put(("done", s, a)))

    def _feed(self, entries: Iterable[Any]) -> None:
        seq = 0
        try:
            for entry in entries:
                if isinstance(entry, UnitJob):
                    while not self.slots.acquire(timeout=_POLL_S):
                        if self.stop.is_set():
                            return
                    unit = _Unit(entry, None)
                    self.events.put(("unit", seq, unit))
                    if not self.lost and not self.ex.available():
                        self._lose(RuntimeError("no worker is up"))
                    if not self.lost:
                        try:
                            unit.job_ref = ray.put(entry)
                            self._submit(seq, unit)
                        except Exception as exc:  # the cluster went away: compute here
                            self._lose(exc)
                            self.events.put(("local", seq, 0))
                    else:
                        self.events.put(("local", seq, 0))
                else:
                    self.events.put(("ready", seq, [entry]))
                seq += 1
                if self.stop.is_set():
                    return
            self.events.put(("end", seq, 0))
        except BaseException as exc:
            self.events.put(("error", seq, exc))

    def _lose(self, exc: BaseException) -> None:
        if not self.lost:
            self.lost = True
            log.warning(
                "executor 'ray': no worker can be reached (%s: %s); computing the remaining %s units locally",
                type(exc).__name__,
                exc,
                self.plugin.unit_kind,
            )

    def _local(self, unit: _Unit) -> list[Any]:
        if self.local_plugin is None:
            spec = worker_copy(self.plugin, str(self.plugin.context.device))
            self.local_plugin = spec.plugin_class(spec.config, spec.context)
        self.ex.count("n_local")
        return compute_unit(self.local_plugin, unit.job)

    def _finished(self, seq: int, unit: _Unit) -> list[Any] | None:
        """The unit's outputs, or None when it was sent again (its worker died)."""
        self.ex.done(unit.worker)
        try:
            outputs = list(unit.future.result())
            self.ex.count("n_units")
            return outputs
        except ray.exceptions.RayTaskError as exc:  # the plugin raised: re-raise its own error
            cause = exc.cause if isinstance(exc.cause, BaseException) else exc
            raise cause from None
        except _WORKER_LOST as exc:
            self.ex.worker_lost(unit.worker)
            if not self.ex.available():  # every worker down: the cluster is lost, not this unit's fault
                self._lose(exc)
                return self._local(unit)
            if unit.attempts > self.ex.config.max_retries:  # it killed live workers again and again
                raise RuntimeError(
                    f"{unit.job.kind} {unit.job.index}: its worker died {unit.attempts} times ({exc})"
                ) from None
            log.warning(
                "executor 'ray': the worker of %s %d died (%s); sending it to another worker",
                unit.job.kind,
                unit.job.index,
                type(exc).__name__,
            )
            try:
                self._submit(seq, unit, avoid=unit.worker)
                self.ex.count("n_retried")
                return None
            except Exception as lost:
                self._lose(lost)
                return self._local(unit)

    def outputs(self, entries: Iterable[Any]) -> Iterator[Any]:
        feeder = threading.Thread(
            target=self._feed, args=(entries,), name="reconstream-ray-feed", daemon=True
        )
        feeder.start()
        units: dict[int, _Unit] = {}
        results: dict[int, list[Any]] = {}
        next_seq, end = 0, -1
        try:
            while end < 0 or next_seq < end:
                kind, seq, value = self.events.get()
                if kind == "error":
                    raise value
                if kind == "end":
                    end = seq
                elif kind == "ready":
                    results[seq] = value
                elif kind == "unit":
                    units[seq] = value
                elif kind == "local":
                    results[seq] = self._local(units[seq])
                elif kind == "done" and value == units[seq].attempts:
                    outputs = self._finished(seq, units[seq])
                    if outputs is not None:
                        results[seq] = outputs
                while next_seq in results:
                    if units.pop(next_seq, None) is not None:
                        self.slots.release()
                    yield from results.pop(next_seq)
                    next_seq += 1
        finally:
            self.stop.set()
            if end >= 0:  # a clean end: the feeder has finished; otherwise it stops at its next item
                feeder.join()
