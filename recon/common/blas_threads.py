"""One-thread sections for numpy's BLAS, safe to enter from several threads at once.

OpenBLAS's thread count is a process-wide setting, and its results depend on it: the same complex64
product on one and on two threads differs in the last bit (measured: 2·10⁻⁸ on an 8 × 8 by 8 × 131 072
product).  Two uses need one thread:

* small products in streaming stages (whitening, the simulator's k-space box), where extra threads only
  add wake-up cost on a busy host;
* anything whose output must be bit-for-bit reproducible for a seed (the simulator's noise and k-space),
  whatever else runs in the process.

A plain ``threadpoolctl`` limit per call is not enough there, for two reasons.  When two threads overlap,
the first one to leave restores the old count while the other is still inside.  And threadpoolctl ≥ 3.8
lets only one Python thread (the first to set a limit) change the size of OpenBLAS's shared pthreads pool,
silently ignoring every other thread: a limit set in a producer thread did nothing (found when the
simulator's noise, drawn in its own thread, differed in the last bit from run to run).
:func:`single_thread_blas` therefore counts the sections open in the process under one lock: the first
one sets one thread, the last one to leave restores the count found before, and whichever thread does so
takes control of the pool first.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import threadpoolctl
from threadpoolctl import ThreadpoolController

_lock = threading.Lock()
_open_sections = 0
_limiter: Any = None  # threadpoolctl's limiter of the outermost open section


@functools.cache
def _blas() -> ThreadpoolController:
    """The process's BLAS thread pools (found on first use, never at import)."""
    return ThreadpoolController()


def _clear_pool_owner() -> None:
    """Leave OpenBLAS's pool without an owning thread, so the next thread to set its size may (threadpoolctl
    ≥ 3.8; older ones have no owner).  Safe here: every change is made under ``_lock``."""
    clear = getattr(threadpoolctl.OpenBLASController, "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


@contextmanager
def single_thread_blas() -> Iterator[None]:
    """numpy's BLAS runs on one thread while any thread is inside such a block (≈ 11 µs for the first
    to enter and the last to leave; nested and concurrent blocks cost a lock)."""
    global _open_sections, _limiter
    with _lock:
        if _open_sections == 0:
            _clear_pool_owner()
            _limiter = _blas().limit(limits=1, user_api="blas")
        _open_sections += 1
    try:
        yield
    finally:
        with _lock:
            _open_sections -= 1
            if _open_sections == 0:
                _clear_pool_owner()
                _limiter.restore_original_limits()
                _clear_pool_owner()  # as threadpoolctl's own context manager leaves it
                _limiter = None
