"""Independent random-number streams for the simulator's parallel numba kernels.

A ``numpy.random.Generator`` cannot be shared by the threads of a ``prange`` loop, so each kernel works
on a fixed number of *blocks* (independent of the thread count, so results do not depend on it) and each
block draws from its own xoshiro256** stream (Blackman & Vigna).  The streams' states are seeded from the
caller's ``Generator`` through SplitMix64, so a simulation stays reproducible from its seed.

``states`` is a ``(n_streams, 4)`` uint64 array; ``k`` selects the stream.  Deviates: uniform in
[0, 1) with 53 random bits; exponential (mean 1) and standard normal by the 256-layer ziggurat method
(Marsaglia & Tsang 2000), which needs one 64-bit draw in ≈ 99 % of the calls (numpy's own generators use
the same method; inversion with ``log`` would cost 3–8× more here).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numba
import numpy as np

#: Blocks (= random streams) per kernel call; more than any thread count the simulator runs with.
N_STREAMS = 64

_TWO_POW_MINUS_53 = 1.0 / 9007199254740992.0


@numba.njit(cache=True, inline="always")
def _rotl(x: np.uint64, k: int) -> np.uint64:
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@numba.njit(cache=True, inline="always")
def next_uint64(states: np.ndarray, k: int) -> np.uint64:
    """Next 64-bit output of stream ``k`` (xoshiro256**), advancing its state."""
    s0, s1, s2, s3 = states[k, 0], states[k, 1], states[k, 2], states[k, 3]
    result = _rotl(s1 * np.uint64(5), 7) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    states[k, 0], states[k, 1], states[k, 2], states[k, 3] = s0, s1, s2, s3
    return result


@numba.njit(cache=True, inline="always")
def uniform(states: np.ndarray, k: int) -> float:
    """Uniform deviate in [0, 1)."""
    return float(next_uint64(states, k) >> np.uint64(11)) * _TWO_POW_MINUS_53


def _ziggurat_edges(
    tail_start: float, layer_area: float, density: Callable[[float], float], inverse: Callable[[float], float]
) -> np.ndarray:
    """Right edges ``x[0..256]`` of the 256 equal-area layers under an unnormalised decreasing density;
    ``x[0]`` is the base layer's virtual width (area / density at the tail start), ``x[1]`` the tail start."""
    edges = np.zeros(257)
    edges[0], edges[1] = layer_area / density(tail_start), tail_start
    for i in range(1, 256):
        level = layer_area / edges[i] + density(edges[i])
        edges[i + 1] = inverse(level) if level < 1.0 else 0.0
    return edges


_NORMAL_TAIL = 3.6541528853610088
_NORMAL_X = _ziggurat_edges(
    _NORMAL_TAIL, 0.00492867323399, lambda x: math.exp(-0.5 * x * x), lambda y: math.sqrt(-2.0 * math.log(y))
)
_NORMAL_F = np.exp(-0.5 * _NORMAL_X**2)
_EXPONENTIAL_TAIL = 7.69711747013104972
_EXPONENTIAL_X = _ziggurat_edges(
    _EXPONENTIAL_TAIL, 0.0039496598225815571993, lambda x: math.exp(-x), lambda y: -math.log(y)
)
_EXPONENTIAL_F = np.exp(-_EXPONENTIAL_X)


@numba.njit(cache=True, inline="always")
def exponential(states: np.ndarray, k: int) -> float:
    """Exponential deviate with mean 1 (ziggurat; the tail beyond x[1] is x[1] + Exp(1))."""
    offset = 0.0
    while True:
        bits = next_uint64(states, k)
        i = int(bits & np.uint64(255))
        x = float(bits >> np.uint64(11)) * _TWO_POW_MINUS_53 * _EXPONENTIAL_X[i]
        if x < _EXPONENTIAL_X[i + 1]:
            return offset + x
        if i == 0:
            offset += _EXPONENTIAL_TAIL
            continue
        low, high = _EXPONENTIAL_F[i], _EXPONENTIAL_F[i + 1]
        if low + uniform(states, k) * (high - low) < math.exp(-x):
            return offset + x


@numba.njit(cache=True, inline="always")
def standard_normal(states: np.ndarray, k: int) -> float:
    """Standard normal deviate (ziggurat; Marsaglia's exact tail beyond x[1])."""
    while True:
        bits = next_uint64(states, k)
        i = int(bits & np.uint64(255))
        sign = 1.0 if (bits >> np.uint64(8)) & np.uint64(1) else -1.0
        x = float(bits >> np.uint64(11)) * _TWO_POW_MINUS_53 * _NORMAL_X[i]
        if x < _NORMAL_X[i + 1]:
            return sign * x
        if i == 0:
            while True:
                a = -math.log1p(-uniform(states, k)) / _NORMAL_TAIL
                if -2.0 * math.log1p(-uniform(states, k)) > a * a:
                    return sign * (_NORMAL_TAIL + a)
        low, high = _NORMAL_F[i], _NORMAL_F[i + 1]
        if low + uniform(states, k) * (high - low) < math.exp(-0.5 * x * x):
            return sign * x


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser of ``values`` (uint64): well-mixed, never all-zero states from distinct inputs."""
    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def spawn_streams(rng: np.random.Generator, n_streams: int = N_STREAMS) -> np.ndarray:
    """Fresh states ``(n_streams, 4)`` uint64 for ``n_streams`` independent streams, drawn from ``rng``."""
    seeds = rng.integers(0, np.iinfo(np.uint64).max, size=(n_streams, 4), dtype=np.uint64, endpoint=True)
    return np.ascontiguousarray(_splitmix64(seeds))
