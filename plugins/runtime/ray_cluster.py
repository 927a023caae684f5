"""Joining a Ray cluster and moving data through it (used by :mod:`plugins.runtime.ray_executor` and sweeps).

* :func:`connect` joins the cluster of an :class:`~plugins.runtime.executor.ExecutorConfig` (or starts a private
  Ray instance on 127.0.0.1), after :func:`check_reachable` has made sure something listens there;
* :func:`register_tensor_transport` sends torch tensors through the object store as numpy arrays (read without
  pickling) and hands them back in writable memory of their own; :func:`writable` does the same for numpy
  arguments of a unit;
* :func:`map_points` runs independent functions (sweep points) as Ray tasks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import ray
import ray.util

from plugins.runtime.executor import ExecutorConfig, UnitJob


def _tensor_to_wire(tensor: Any) -> tuple[str, Any]:
    """A torch tensor as a numpy array, which Ray's object store holds without pickling (zero-copy reads);
    dtypes numpy lacks (bfloat16, ...) travel as torch's own pickle."""
    import pickle

    import torch

    tensor = tensor.detach().resolve_conj().resolve_neg()
    if tensor.dtype in (torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2) or tensor.is_quantized:
        return "pickle", pickle.dumps(tensor.cpu())
    return "numpy", tensor.cpu().numpy()


def _tensor_from_wire(wire: tuple[str, Any]) -> Any:
    """The tensor back, in writable memory of its own: arrays read from the object store are read-only
    and shared, and stages may write into their inputs (a retried unit must see the original)."""
    import pickle

    import numpy as np
    import torch

    kind, payload = wire
    if kind == "pickle":
        return pickle.loads(payload)
    return torch.from_numpy(np.array(payload, copy=True))


def writable(job: UnitJob) -> UnitJob:
    """``job`` with its read-only numpy arguments (as read from the object store) copied: a stage may
    write into its inputs, and the stored original must stay intact for a retry."""
    import numpy as np

    args = tuple(np.array(a) if isinstance(a, np.ndarray) and not a.flags.writeable else a for a in job.args)
    return replace(job, args=args)


def register_tensor_transport() -> None:
    """Send torch tensors through Ray as numpy arrays (:func:`_tensor_to_wire`) — in every process that
    sends or receives them (the driver and each worker): torch's default pickle copies each tensor's
    bytes through ``torch.save``, 0.3 s per 96 MB slice here."""
    import torch

    ray.util.register_serializer(torch.Tensor, serializer=_tensor_to_wire, deserializer=_tensor_from_wire)


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Raise ``ConnectionError`` within ``timeout_s`` when nothing listens at ``HOST:PORT`` (``ray.init``
    itself retries an absent cluster for minutes); ``auto`` is left to Ray."""
    import socket

    host, sep, port = address.rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConnectionError(f"no Ray cluster answers at {address}: {exc.strerror or exc}") from None


def connect(config: ExecutorConfig) -> bool:
    """Join the cluster of ``config`` (or start a private Ray instance on 127.0.0.1) unless this process is
    connected already; True when this call connected (the caller then disconnects with ``ray.shutdown``)."""
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"log_to_driver": False}
    if config.ray_address is None:
        kwargs.update(
            include_dashboard=False,
            num_cpus=max(1, round(config.n_workers * config.num_cpus_per_worker)),
            object_store_memory=config.object_store_mb * 1024 * 1024,
            _node_ip_address="127.0.0.1",
        )
        if config.temp_dir:
            kwargs["_temp_dir"] = config.temp_dir
    else:
        check_reachable(config.ray_address)
        kwargs["address"] = config.ray_address
    ray.init(**kwargs)
    return True


def map_points(config: ExecutorConfig, function: Any, arguments: list[Any]) -> Iterator[tuple[int, Any]]:
    """``function(arguments[i])`` for every ``i`` as Ray tasks (``num_cpus``/``num_gpus`` per task as per
    worker; a task whose worker dies is retried by Ray, up to ``max_retries``); yields ``(i, result)`` as
    they finish.  Used for sweep points, which share nothing warm."""
    started = connect(config)
    try:
        task = ray.remote(
            num_cpus=config.num_cpus_per_worker,
            num_gpus=config.num_gpus_per_worker,
            max_retries=config.max_retries,
        )(function)
        index = {task.remote(a): i for i, a in enumerate(arguments)}
        pending = list(index)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield index[done[0]], ray.get(done[0])
    finally:
        if started:
            ray.shutdown()
