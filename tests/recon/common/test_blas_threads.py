"""One-thread BLAS sections: effective from any thread, nested and overlapping, restored at the end."""

from __future__ import annotations

import threading

import numpy as np
from threadpoolctl import threadpool_info

from recon.common.blas_threads import single_thread_blas


def _blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_sections_from_any_thread_run_blas_on_one_thread_and_restore() -> None:
    before = _blas_threads()
    seen: dict[str, list[int]] = {}

    def worker(name: str) -> None:
        with single_thread_blas():
            seen[name] = _blas_threads()

    with single_thread_blas():  # the main thread enters first (it used to own the pool)...
        seen["main"] = _blas_threads()
    for name in ("first worker", "second worker"):  # ...then other threads, one after the other
        thread = threading.Thread(target=worker, args=(name,))
        thread.start()
        thread.join()
    assert all(counts == [1] * len(before) for counts in seen.values()), seen
    assert _blas_threads() == before


def test_overlapping_sections_keep_one_thread_until_the_last_leaves() -> None:
    before = _blas_threads()
    inside, leave, counts_after_first_left = threading.Event(), threading.Event(), []

    def long_section() -> None:
        with single_thread_blas():
            inside.set()
            leave.wait(10.0)
            counts_after_first_left.extend(_blas_threads())

    thread = threading.Thread(target=long_section)
    thread.start()
    inside.wait(10.0)
    with single_thread_blas():  # opened and closed while the other thread is still inside
        np.ones((64, 64)) @ np.ones((64, 64))
    leave.set()
    thread.join()
    assert counts_after_first_left == [1] * len(before)
    assert _blas_threads() == before
