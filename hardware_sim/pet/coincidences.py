"""From sorted singles and coincidence pairs to list-mode events (numba; one pass, no temporaries).

The sorter (:mod:`hardware_sim.pet.sorter`) returns index pairs into the time-ordered singles stream:
prompts ``(p1, p2)`` in increasing order of their first single, and delayed pairs ``(d1, d2)`` with their
own time stamps and arrival-time differences in increasing time.  :func:`build_events` turns them into
events in time order (the two lists merged by time; prompts first on equal times), keeps the pairs of
different crystals whose LOR passes inside the transaxial field of view, orders each pair's crystals
(lower id first), bins the TOF difference ``d = c·(t1 - t2)/2`` of that order and labels each event TRUE,
SCATTER, RANDOM or DELAYED.  :func:`count_singles` tallies singles per crystal.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from hardware_sim.pet.config import DELAYED, RANDOM, SCATTER, TRUE

#: Speed of light, mm per ns.
SPEED_OF_LIGHT_MM_PER_NS = 299.792458


@numba.njit(cache=True, nogil=True)
def _accepted(crystal_a: int, crystal_b: int, n_per_ring: int, max_cos_half_angle: float) -> bool:
    half_angle = math.pi * ((crystal_a % n_per_ring) - (crystal_b % n_per_ring)) / n_per_ring
    return crystal_a != crystal_b and abs(math.cos(half_angle)) <= max_cos_half_angle


@numba.njit(cache=True, nogil=True)
def build_events(time_ns: np.ndarray, crystal: np.ndarray, decay: np.ndarray, scattered: np.ndarray, p1: np.ndarray, p2: np.ndarray, d1: np.ndarray, d2: np.ndarray, delayed_time_ns: np.ndarray, delayed_dt_ns: np.ndarray, n_per_ring: int, max_cos_half_angle: float, tof_bin_mm: float, max_tof_bin: int, annihilation_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Events of one chunk in time order.

    Args:
        time_ns, crystal, decay, scattered: the time-ordered singles ``(m,)``.
        p1, p2: prompt pairs (indices into the singles), increasing ``p1``.
        d1, d2: delayed pairs (indices into the singles).
        delayed_time_ns, delayed_dt_ns: their time stamps (increasing) and arrival-time differences
            ``t(d1) − t(d2)``, ns (:func:`hardware_sim.pet.sorter.delayed_coincidences`).
        n_per_ring: crystals per ring; ``max_cos_half_angle``: FOV acceptance of a pair.
        tof_bin_mm: TOF bin width in mm of ``d``, ``<= 0`` for a non-TOF scanner; ``max_tof_bin``: clip.
        annihilation_mm: ``(n_decays, 3)`` annihilation points, or ``(0, 3)`` when not kept.

    Returns:
        ``(crystal_id_1 int32, crystal_id_2 int32, tof_bin int16, is_prompt bool, time_ns float64,
        event_type int8, annihilation_mm float32 (n, 3))``.
    """
    n_total = p1.shape[0] + d1.shape[0]
    c1 = np.empty(n_total, np.int32)
    c2 = np.empty(n_total, np.int32)
    tof = np.zeros(n_total, np.int16)
    prompt = np.empty(n_total, np.bool_)
    times = np.empty(n_total, np.float64)
    kind = np.empty(n_total, np.int8)
    point = np.full((n_total, 3), np.nan, np.float32)
    keep_truth = annihilation_mm.shape[0] > 0
    i = j = n = 0
    while i < p1.shape[0] or j < d1.shape[0]:
        is_prompt = j >= d1.shape[0] or (i < p1.shape[0] and time_ns[p1[i]] <= delayed_time_ns[j])
        if is_prompt:
            first, second = p1[i], p2[i]
            stamp, dt_ns = time_ns[first], time_ns[first] - time_ns[second]
            i += 1
        else:
            first, second = d1[j], d2[j]
            stamp, dt_ns = delayed_time_ns[j], delayed_dt_ns[j]
            j += 1
        crystal_a, crystal_b = crystal[first], crystal[second]
        if not _accepted(crystal_a, crystal_b, n_per_ring, max_cos_half_angle):
            continue
        if crystal_a > crystal_b:
            crystal_a, crystal_b, dt_ns = crystal_b, crystal_a, -dt_ns
        c1[n], c2[n], prompt[n], times[n] = crystal_a, crystal_b, is_prompt, stamp
        if tof_bin_mm > 0.0:
            distance_mm = SPEED_OF_LIGHT_MM_PER_NS * dt_ns / 2.0
            tof[n] = min(max(np.rint(distance_mm / tof_bin_mm), -max_tof_bin), max_tof_bin)
        same_decay = is_prompt and decay[first] == decay[second]
        if not is_prompt:
            kind[n] = DELAYED
        elif not same_decay:
            kind[n] = RANDOM
        elif scattered[first] or scattered[second]:
            kind[n] = SCATTER
        else:
            kind[n] = TRUE
        if same_decay and keep_truth:
            for axis in range(3):
                point[n, axis] = annihilation_mm[decay[first], axis]
        n += 1
    return c1[:n], c2[:n], tof[:n], prompt[:n], times[:n], kind[:n], point[:n]


@numba.njit(cache=True, nogil=True)
def count_singles(time_ns: np.ndarray, crystal: np.ndarray, correlated: np.ndarray, stop_ns: float, n_crystals: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Singles up to ``stop_ns`` per crystal: all of them, and those without a detected partner."""
    every = np.zeros(n_crystals, np.int64)
    uncorrelated = np.zeros(n_crystals, np.int64)
    for i in range(time_ns.shape[0]):
        if time_ns[i] <= stop_ns:
            every[crystal[i]] += 1
            if not correlated[i]:
                uncorrelated[crystal[i]] += 1
    return every, uncorrelated
