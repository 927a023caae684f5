"""Coincidence sorting of a time-ordered singles stream: prompt and delayed channels.

Prompt window: each single not yet used opens a window of ``window_ns / 2`` after itself; exactly one
other single in it makes a prompt coincidence (both are used), none leaves the single unpaired, two or
more make a multiple that is discarded with all its singles.  Pairs with ``|Δt| <= window_ns / 2`` are
therefore accepted and uncorrelated singles give a randoms rate ``R_ij ≈ window_ns · S_i · S_j``
(``2τ·S_i·S_j`` with ``2τ = window_ns``), lowered by the multiples and the used singles.

Delayed channel: an ideal randoms monitor.  A scanner's delayed window pairs each single with the singles
of a copy of the stream delayed far beyond the window, so that no pair in it can come from one decay; its
count is meant to equal the random prompts.  How well it does depends on how the delayed channel mimics
the prompt channel's opener, multiple and used-single rules.  Rules of that kind were measured here on
synthetic streams (S·τ 0.01–0.15, 10–30 % of the singles with their partner detected): asking both singles
to be alone within ±τ gave 0.73–0.94 of the random prompts; openers of the prompt channel with exactly
one delayed single gave 1.02–1.07; openers with an empty prompt window 0.88–1.03.  Each leaves a load-
and object-dependent bias that a randoms correction scaled to the delayeds passes on to the image (and the
scatter tail fit reads as scatter).  The simulator therefore models the delayed channel by its purpose:
the decays of the chunk get new, independent times (uniform over the chunk, so the decay process is again
Poisson at the same rate), each decay's singles keep their offsets (flight time, jitter), the prompt
sorter runs on that copy, and its random coincidences (singles of different decays) are the delayeds.
Their expected number, crystal pairs and TOF differences are those of the random prompts; their noise is
independent of the prompts'.  Only the pairs, their time stamps and time differences leave the sorter: a
reconstruction sees delayed coincidences as from a scanner.
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


def prompt_coincidences(times_ns: np.ndarray, window_ns: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(first, second)`` into the sorted ``times_ns`` (float64, ns) of prompt coincidences."""
    return _prompt_pairs(np.ascontiguousarray(times_ns, dtype=np.float64), window_ns / 2.0)


def delayed_coincidences(
    times_ns: np.ndarray, decay: np.ndarray, window_ns: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Delayed coincidences of one chunk of singles (module docstring).

    Args:
        times_ns: arrival times ``(m,)`` float64 ns, increasing.
        decay: decay index of each single ``(m,)`` int (singles of one decay share it).
        window_ns: coincidence window 2τ, ns.
        rng: the delayed channel's own generator (the prompts do not depend on it).

    Returns:
        ``(first, second, time_ns, dt_ns)``: indices into the singles of each delayed pair ``(k,)`` int64,
        its time stamp (ns, increasing, within the chunk) and the arrival-time difference
        ``t_first − t_second`` in ns that sets its TOF bin.
    """
    m = times_ns.shape[0]
    empty = np.zeros(0, np.int64)
    if m < 2:
        return empty, empty, np.zeros(0), np.zeros(0)
    decays, first_single, single_decay = np.unique(decay, return_index=True, return_inverse=True)
    new_decay_time = rng.uniform(times_ns[0], times_ns[-1], decays.shape[0])
    retimed = times_ns + (new_decay_time - times_ns[first_single])[single_decay]
    order = np.argsort(retimed, kind="stable")
    a, b = prompt_coincidences(retimed[order], window_ns)
    random = decay[order[a]] != decay[order[b]]
    first, second = order[a[random]], order[b[random]]
    return first, second, retimed[first], retimed[first] - retimed[second]
