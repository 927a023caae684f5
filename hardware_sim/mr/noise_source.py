"""Correlated receiver noise generated ahead of use in a background thread.

Drawing complex Gaussian noise is a large share of the simulator's work; numpy's random fills and BLAS
release the GIL, so a producer thread overlaps it with the k-space synthesis.  Blocks of a fixed number
of readouts are drawn in order from one generator, so the noise of an exam is the same whatever the
consumer's grouping: deterministic for a seed.
"""

from __future__ import annotations

import queue
import threading

import numpy as np
import numpy.typing as npt

from hardware_sim.mr.coils import correlated_noise, noise_mixing_matrix

Complex = npt.NDArray[np.complex64]


class NoiseSource:
    """Readouts of noise ``(n_coils, n_samples)`` in order; call :meth:`close` when done."""

    def __init__(
        self,
        covariance: npt.NDArray[np.complex128],
        n_samples: int,
        rng: np.random.Generator,
        block_readouts: int = 256,
        depth: int = 4,
    ) -> None:
        self.n_coils, self.n_samples, self.block = covariance.shape[0], n_samples, block_readouts
        self._silent = not np.any(covariance)
        self._covariance = covariance
        self._mixing = None if self._silent else noise_mixing_matrix(covariance)
        self._rng = rng
        self._queue: queue.Queue[Complex] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._current: Complex = np.zeros((self.n_coils, 0, n_samples), np.complex64)
        self._thread: threading.Thread | None = None
        if not self._silent:
            self._thread = threading.Thread(target=self._produce, name="mr-sim-noise", daemon=True)
            self._thread.start()

    def _produce(self) -> None:
        while not self._stop.is_set():
            block = correlated_noise(self._covariance, (self.block, self.n_samples), self._rng, self._mixing)
            while not self._stop.is_set():
                try:
                    self._queue.put(block, timeout=0.1)
                    break
                except queue.Full:
                    continue

    def take(self, n_readouts: int) -> Complex:
        """The next ``n_readouts`` readouts of noise, ``(n_coils, n_readouts, n_samples)``."""
        if self._silent:
            return np.zeros((self.n_coils, n_readouts, self.n_samples), np.complex64)
        parts = []
        needed = n_readouts
        while needed > 0:
            if self._current.shape[1] == 0:
                self._current = self._queue.get()
            part = self._current[:, :needed]
            self._current = self._current[:, part.shape[1] :]
            parts.append(part)
            needed -= part.shape[1]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def close(self) -> None:
        """Stop the producer thread (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
