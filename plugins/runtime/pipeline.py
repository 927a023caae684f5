"""The concurrent pipeline: one thread per plugin stage, joined by bounded queues.

* Strict in-order delivery: each stage is a single thread reading one FIFO queue.
* Backpressure: every queue holds at most ``queue_size`` items, so a slow stage bounds the memory
  of all stages before it.
* Errors: the first exception in any stage (or in the input) stops every thread, the threads are
  joined (no orphans, no hang) and :class:`ChainError` is raised to the caller naming the stage,
  the plugin and the item being processed.
* Clean end of stream: each stage's ``finish()`` runs, so every stage flushes.
* Timing: per-stage :class:`StageStats` (items in/out, compute time, p50/p95 per output) after a run;
  time spent waiting on queues is excluded.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plugins.runtime.chain import ChainSpec
from plugins.runtime.items import describe_item
from plugins.runtime.plugin import ChainContext, Plugin

log = logging.getLogger("reconstream.pipeline")
_END = object()
_POLL_S = 0.05


class ChainError(RuntimeError):
    """A stage failed.  ``stage``, ``plugin`` and ``item`` say where; ``__cause__`` is the original error."""

    def __init__(self, message: str, stage: str, plugin: str, item: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.plugin = plugin
        self.item = item


class _Stopped(Exception):
    """Raised inside a stage thread when another stage has failed or the consumer went away."""


@dataclass
class StageStats:
    """Timing of one stage over a run (seconds; queue waits excluded).

    ``compute_s`` is wall time, so it includes waiting for a core or the GIL held by other stages;
    ``cpu_s`` is the CPU time of the stage's thread (what the stage itself costs)."""

    stage: str
    plugin: str
    n_inputs: int = 0
    n_outputs: int = 0
    compute_s: float = 0.0
    cpu_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)

    def percentile_s(self, q: float) -> float:
        """Per-output compute latency percentile ``q`` in [0, 100] (NaN when nothing was produced)."""
        return float(np.percentile(self.latencies_s, q)) if self.latencies_s else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "plugin": self.plugin,
            "n_inputs": self.n_inputs,
            "n_outputs": self.n_outputs,
            "total_s": self.compute_s,
            "cpu_s": self.cpu_s,
            "p50_s": self.percentile_s(50),
            "p95_s": self.percentile_s(95),
        }


class _Link:
    """A bounded queue with stop-aware blocking put/get that accumulate their wait time."""

    def __init__(self, size: int, stop: threading.Event) -> None:
        self.q: queue.Queue[Any] = queue.Queue(maxsize=size)
        self.stop = stop

    def put(self, item: Any) -> float:
        start = time.perf_counter()
        while True:
            try:
                self.q.put(item, timeout=_POLL_S)
                return time.perf_counter() - start
            except queue.Full:
                if self.stop.is_set():
                    raise _Stopped from None

    def get(self) -> tuple[Any, float]:
        start = time.perf_counter()
        while True:
            try:
                return self.q.get(timeout=_POLL_S), time.perf_counter() - start
            except queue.Empty:
                if self.stop.is_set():
                    raise _Stopped from None


class _StageInput(Iterator[Any]):
    """The iterator a plugin's ``run`` consumes; remembers the current item for error messages."""

    def __init__(self, link: _Link, stats: StageStats) -> None:
        self.link = link
        self.stats = stats
        self.current: str = "before the first item"
        self.waited_s = 0.0

    def __next__(self) -> Any:
        item, waited = self.link.get()
        self.waited_s += waited
        if item is _END:
            self.current = "end of stream (flush)"
            raise StopIteration
        self.stats.n_inputs += 1
        self.current = f"item #{self.stats.n_inputs} ({describe_item(item)})"
        return item

    def n_ready(self) -> int:
        """Items already waiting in this stage's input queue (taking that many never blocks); block-wise
        stages (:mod:`plugins.runtime.blocks`) end a block when it is 0 rather than wait."""
        return self.link.q.qsize()


def build_plugins(chain: ChainSpec, context: ChainContext) -> list[Plugin]:
    """Instantiate every stage's plugin with its validated config."""
    return [stage.plugin_class(stage.config, context) for stage in chain.stages]


class Pipeline:
    """Runs a chain's plugins concurrently.  Use once: ``for out in Pipeline(chain, ctx).run(items)``."""

    def __init__(self, chain: ChainSpec, context: ChainContext, queue_size: int = 8) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be ≥ 1, got {queue_size}")
        self.chain = chain
        self.context = context
        self.plugins = build_plugins(chain, context)
        self.stats = [StageStats(s.name, s.plugin) for s in chain.stages]
        self._stop = threading.Event()
        self._links = [_Link(queue_size, self._stop) for _ in range(len(self.plugins) + 1)]
        self._error: ChainError | None = None
        self._error_lock = threading.Lock()

    @property
    def stopped(self) -> bool:
        """True once the run has ended, failed or been abandoned by its consumer."""
        return self._stop.is_set()

    def _fail(self, error: ChainError) -> None:
        with self._error_lock:
            if self._error is None:
                self._error = error
        self._stop.set()

    def _feed(self, items: Iterable[Any]) -> None:
        link = self._links[0]
        current = "before the first item"
        try:
            for n, item in enumerate(items, start=1):
                current = f"item #{n} ({describe_item(item)})"
                link.put(item)
            link.put(_END)
        except _Stopped:
            return
        except Exception as exc:
            err = ChainError(
                f"reading the input failed after {current}: {type(exc).__name__}: {exc}",
                "input",
                "input",
                current,
            )
            err.__cause__ = exc
            self._fail(err)

    def _stage(self, index: int) -> None:
        plugin, stats = self.plugins[index], self.stats[index]
        source = _StageInput(self._links[index], stats)
        out = self._links[index + 1]
        cpu_start = time.thread_time()
        try:
            mark = time.perf_counter()
            for result in plugin.run(source):
                now = time.perf_counter()
                latency = now - mark - source.waited_s
                stats.latencies_s.append(latency)
                stats.compute_s += latency
                stats.n_outputs += 1
                source.waited_s = 0.0
                out.put(result)
                mark = time.perf_counter()
            stats.compute_s += max(0.0, time.perf_counter() - mark - source.waited_s)
            stats.cpu_s = time.thread_time() - cpu_start
            out.put(_END)
        except _Stopped:
            return
        except Exception as exc:
            name = self.chain.stages[index].name
            err = ChainError(
                f"stage {name!r} (plugin {stats.plugin!r}) failed on {source.current}: {type(exc).__name__}: {exc}",
                name,
                stats.plugin,
                source.current,
            )
            err.__cause__ = exc
            log.error("%s", err)
            self._fail(err)

    @property
    def log_tag(self) -> str:
        """``context.extras["log_tag"]`` (a server session's peer and id), or ""."""
        return str(self.context.extras.get("log_tag", "")) if self.context.extras else ""

    def n_outputs_waiting(self) -> int:
        """Outputs already queued for :meth:`run` to yield (taking that many never blocks)."""
        return self._links[-1].q.qsize()

    def run(self, items: Iterable[Any]) -> Generator[Any, None, None]:
        """Yield the chain's outputs in order; raises :class:`ChainError` if any stage fails."""
        # A server session's tag (peer and session id) in the thread names lets its log lines say whose they are.
        tag = self.log_tag
        suffix = f" [{tag}]" if tag else ""
        threads = [
            threading.Thread(target=self._feed, args=(items,), name=f"reconstream-input{suffix}", daemon=True)
        ]
        threads += [
            threading.Thread(target=self._stage, args=(i,), name=f"reconstream-{s.name}{suffix}", daemon=True)
            for i, s in enumerate(self.chain.stages)
        ]
        for t in threads:
            t.start()
        try:
            while True:
                try:
                    item, _ = self._links[-1].get()
                except _Stopped:
                    break
                if item is _END:
                    break
                yield item
        finally:
            if self._error is None:
                self._stop.set()  # consumer left early, or clean end: release any waiting thread
            for t in threads:
                t.join()
        if self._error is not None:
            raise self._error


def run_chain(
    chain: ChainSpec, items: Iterable[Any], context: ChainContext, queue_size: int = 8
) -> list[Any]:
    """Run a chain to completion and return all its outputs in order."""
    return list(Pipeline(chain, context, queue_size).run(items))
