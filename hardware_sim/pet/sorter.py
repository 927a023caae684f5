"""Coincidence sorting of a time-ordered singles stream: prompt and delayed windows.

Prompt window: each single not yet used opens a window of ``window_ns / 2`` after itself; exactly one
other single in it makes a prompt coincidence (both are used), none leaves the single unpaired, two or
more make a multiple that is discarded with all its singles.  Pairs with ``|Δt| <= window_ns / 2`` are
therefore accepted and uncorrelated singles give a randoms rate ``R_ij = window_ns · S_i · S_j``
(``2τ·S_i·S_j`` with ``2τ = window_ns``).  Delayed window: each single opens the same window shifted by
``delay_ns`` (much longer than the window and the time of flight); exactly one single in it makes a
delayed coincidence, which can only be random.  As in the prompt channel, singles that have another
single within the window in the undelayed stream (true pairs, multiples) take no part, so the delayed
rate estimates the prompt randoms rate ``window · S'_i · S'_j`` of uncorrelated singles ``S'``.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _prompt_pairs(times_ns: np.ndarray, half_window_ns: float) -> tuple[np.ndarray, np.ndarray]:
    n = times_ns.shape[0]
    first = np.empty(n // 2 + 1, np.int64)
    second = np.empty(n // 2 + 1, np.int64)
    n_pairs = 0
    i = 0
    while i < n - 1:
        end = i + 1
        limit = times_ns[i] + half_window_ns
        while end < n and times_ns[end] <= limit:
            end += 1
        n_inside = end - i - 1
        if n_inside == 1:
            first[n_pairs] = i
            second[n_pairs] = i + 1
            n_pairs += 1
            i += 2
        elif n_inside == 0:
            i += 1
        else:
            i = end
    return first[:n_pairs], second[:n_pairs]


@numba.njit(cache=True, nogil=True)
def _delayed_pairs(
    times_ns: np.ndarray, half_window_ns: float, delay_ns: float
) -> tuple[np.ndarray, np.ndarray]:
    n = times_ns.shape[0]
    first = np.empty(n, np.int64)
    second = np.empty(n, np.int64)
    isolated = np.ones(n, np.bool_)  # no other single within ±half window in the undelayed stream
    for i in range(n - 1):
        if times_ns[i + 1] - times_ns[i] <= half_window_ns:
            isolated[i] = False
            isolated[i + 1] = False
    n_pairs = 0
    start = 0
    for i in range(n):
        if not isolated[i]:
            continue
        low = times_ns[i] + delay_ns
        while start < n and times_ns[start] < low:
            start += 1
        end = start
        while end < n and times_ns[end] <= low + half_window_ns and end - start < 2:
            end += 1
        if end - start == 1 and isolated[start]:
            first[n_pairs] = i
            second[n_pairs] = start
            n_pairs += 1
    return first[:n_pairs], second[:n_pairs]


def prompt_coincidences(times_ns: np.ndarray, window_ns: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(first, second)`` into the sorted ``times_ns`` (float64, ns) of prompt coincidences."""
    return _prompt_pairs(np.ascontiguousarray(times_ns, dtype=np.float64), window_ns / 2.0)


def delayed_coincidences(
    times_ns: np.ndarray, window_ns: float, delay_ns: float
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(first, second)`` into the sorted ``times_ns`` of delayed-window coincidences."""
    if delay_ns <= window_ns:
        raise ValueError(f"delay_ns {delay_ns} must exceed the coincidence window {window_ns} ns")
    return _delayed_pairs(np.ascontiguousarray(times_ns, dtype=np.float64), window_ns / 2.0, delay_ns)
