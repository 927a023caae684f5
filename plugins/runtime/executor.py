"""Executors: where the heavy, independent units of a chain run.

A *unit* is the heavy work a plugin does for one independent piece of a session — one cine slice (or one
flow series: a (slice, encoding) pair goes through the same unfolding), one Dixon volume, one PET frame.
A plugin that has units sets ``unit_kind`` and, instead of computing a unit inside ``process``/``finish``,
yields a :class:`UnitJob` naming one of its methods and that method's arguments.  The method must depend
only on its arguments and on the plugin's config and context (never on state earlier items left behind),
so that a warm copy of the plugin built elsewhere from the same config computes the same outputs.

The chain's executor (``ChainContext.executor``) turns each job into outputs, in order:

* :class:`LocalExecutor` (the default): calls the method right there, in the stage's thread — exactly what
  the plugin did before it had units.
* :class:`plugins.runtime.ray_executor.RayExecutor` (``kind = "ray"``, optional extra ``reconstream[ray]``):
  sends jobs to long-lived Ray actors that keep the plugin (and its caches, compiled kernels, FFT plans)
  warm, several at a time, and yields the outputs in the order of the jobs as they finish.

Which executor a run uses is configuration only (:class:`ExecutorConfig`: ``run``/``serve``/``sweep``
``--executor``); the chain and the plugins are the same either way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from plugins.runtime.plugin import Plugin

log = logging.getLogger("reconstream.executor")


@dataclass(frozen=True)
class UnitJob:
    """One heavy, independent unit of a plugin's work.

    Attributes:
        kind: what the unit is, for logs and errors (``"cine slice"``, ``"Dixon volume"``, ``"PET frame"``).
        index: its number within the session (slice index, frame number, ...).
        method: name of the plugin method that computes it: ``method(*args) -> Iterable[output items]``.
        args: the method's arguments (they travel to a worker; the method must not modify them).
    """

    kind: str
    index: int
    method: str
    args: tuple[Any, ...]


def compute_unit(plugin: Plugin, job: UnitJob) -> list[Any]:
    """The outputs of ``job`` computed by ``plugin`` (a list, in order)."""
    return list(getattr(plugin, job.method)(*job.args))


class Executor(Protocol):
    """Runs the units of a plugin's output stream; yields every output in stream order."""

    name: str

    def run_units(self, plugin: Plugin, entries: Iterable[Any]) -> Iterator[Any]:
        """``entries``: the plugin's outputs and :class:`UnitJob`s, in order; yields outputs in that order."""
        ...

    def close(self) -> None:
        """Release workers (a no-op for the local executor)."""
        ...


class LocalExecutor:
    """Computes each unit where it is met, in the calling thread (the default; no overhead)."""

    name = "local"

    def run_units(self, plugin: Plugin, entries: Iterable[Any]) -> Iterator[Any]:
        for entry in entries:
            if isinstance(entry, UnitJob):
                yield from compute_unit(plugin, entry)
            else:
                yield entry

    def close(self) -> None:
        return None


LOCAL = LocalExecutor()
"""The shared default executor (stateless)."""


class ExecutorConfig(BaseModel):
    """Where a chain's units run (``--executor``/``--ray-*`` options of run, serve and sweep)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["local", "ray"] = Field(
        "local", description="local: in the process, as they come; ray: on long-lived Ray actors"
    )
    ray_address: str | None = Field(
        None,
        description="Ray cluster to join (HOST:PORT of its head, or 'auto'); None starts a private Ray "
        "instance inside this process with n_workers CPUs",
    )
    n_workers: int = Field(2, ge=1, le=1024, description="long-lived Ray actors (warm workers)")
    num_cpus_per_worker: float = Field(1.0, ge=0.0, le=256.0, description="CPUs Ray reserves per worker")
    num_gpus_per_worker: float = Field(
        0.0,
        ge=0.0,
        le=16.0,
        description="GPUs Ray reserves per worker (fractions share one GPU); > 0: workers compute on CUDA",
    )
    max_units_in_flight: int = Field(
        0, ge=0, le=4096, description="units of one stage sent before the first comes back (0: 2 per worker)"
    )
    max_retries: int = Field(
        2, ge=0, le=10, description="times a unit whose worker died is sent again to another worker"
    )
    object_store_mb: int = Field(
        300, ge=75, le=1 << 20, description="object store of a private Ray instance, MB (ray_address None)"
    )
    temp_dir: str | None = Field(
        None, description="Ray's session folder of a private instance (None: Ray's default /tmp/ray)"
    )

    @property
    def units_in_flight(self) -> int:
        """Units of one stage outstanding at once."""
        return self.max_units_in_flight or 2 * self.n_workers


def open_executor(config: ExecutorConfig | None) -> Executor:
    """The executor ``config`` asks for.  When a Ray cluster cannot be reached (or Ray is not installed)
    this warns — naming the address and the reason — and returns the local executor."""
    if config is None or config.kind == "local":
        return LOCAL
    try:
        from plugins.runtime.ray_executor import RayExecutor
    except ImportError as exc:
        log.warning(
            "executor 'ray': Ray is not installed (%s; pip install reconstream[ray]); running locally", exc
        )
        return LOCAL
    try:
        return RayExecutor(config)
    except Exception as exc:  # any failure to join the cluster: the session must still run
        where = config.ray_address or "a private local instance"
        log.warning("executor 'ray': cannot use %s (%s: %s); running locally", where, type(exc).__name__, exc)
        return LOCAL


_shared: dict[ExecutorConfig, Executor] = {}
_shared_lock = threading.Lock()


def shared_executor(config: ExecutorConfig | None) -> Executor:
    """One executor per configuration for the whole process (a server's sessions share its warm workers);
    opened on first use (:func:`open_executor`), closed by :func:`close_shared_executors`."""
    if config is None or config.kind == "local":
        return LOCAL
    with _shared_lock:
        if config not in _shared:
            _shared[config] = open_executor(config)
        return _shared[config]


def close_shared_executors() -> None:
    """Close every executor :func:`shared_executor` opened (Ray workers stopped, a private Ray shut down)."""
    with _shared_lock:
        executors = list(_shared.values())
        _shared.clear()
    for executor in executors:
        executor.close()
