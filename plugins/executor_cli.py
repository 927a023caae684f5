"""``--executor``/``--ray-*`` options shared by ``run``, ``serve`` and ``sweep`` (see :mod:`plugins.runtime.executor`)."""

from __future__ import annotations

import argparse

from plugins.runtime.executor import ExecutorConfig


def add_executor_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="where the heavy units (cine slices, flow series, Dixon volumes, PET frames, sweep points) run: "
        "in this process, or on a Ray cluster (pip install reconstream[ray])",
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        metavar="HOST:PORT",
        help="Ray cluster to join (its head's address, or 'auto'); default: a private Ray instance here",
    )
    parser.add_argument("--ray-workers", type=int, default=2, help="long-lived Ray workers (actors)")
    parser.add_argument(
        "--ray-gpus-per-worker", type=float, default=0.0, help="GPUs per Ray worker (> 0: workers use CUDA)"
    )


def executor_config(args: argparse.Namespace) -> ExecutorConfig | None:
    """The :class:`ExecutorConfig` of the options (``None`` for the default in-process executor)."""
    if args.executor == "local":
        given = [
            name
            for name, value, default in (
                ("--ray-address", args.ray_address, None),
                ("--ray-workers", args.ray_workers, 2),
                ("--ray-gpus-per-worker", args.ray_gpus_per_worker, 0.0),
            )
            if value != default
        ]
        if given:
            raise ValueError(f"{', '.join(given)} given without --executor ray")
        return None
    return ExecutorConfig(
        kind="ray",
        ray_address=args.ray_address,
        n_workers=args.ray_workers,
        num_gpus_per_worker=args.ray_gpus_per_worker,
    )
