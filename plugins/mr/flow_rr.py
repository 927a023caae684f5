"""The R–R interval that the cardiac phases of a flow series tile (needed for volumes per beat).

Sources, in order: the configured heart rate; the ``rr_ms`` meta attribute that the velocity stage
derives from the cine binning's trigger times (median over images); R-wave triggers of the ECG waveforms (ISMRMRD
``waveform_id`` 0, last channel = trigger, time stamps in 2.5 ms ticks) that pass the report plugin.
Beats whose R–R deviates from the median by more than ``rr_tolerance_percent`` (ectopic beats and their
compensatory pauses) are left out, as the binning leaves them out; the mean of the others is used.
"""

from __future__ import annotations

import ismrmrd
import numpy as np

from plugins.mr.cine_accumulate import ECG_WAVEFORM_ID, ecg_trigger_times_s


def mean_rr_s(r_wave_times_s: np.ndarray, rr_tolerance_percent: float = 20.0) -> float:
    """Mean R–R (s) of the beats within ``rr_tolerance_percent`` of the median R–R."""
    times = np.unique(np.asarray(r_wave_times_s, dtype=np.float64))
    if times.size < 2:
        raise ValueError(f"need at least two R waves to measure the heart rate, got {times.size}")
    rr = np.diff(times)
    median = float(np.median(rr))
    kept = rr[np.abs(rr - median) <= rr_tolerance_percent / 100.0 * median]
    return float(kept.mean())


class RRSource:
    """Collects what is needed to know the R–R interval; :meth:`rr_s` answers at the end of the stream."""

    def __init__(self, heart_rate_bpm: float | None, rr_tolerance_percent: float = 20.0) -> None:
        self.heart_rate_bpm = heart_rate_bpm
        self.rr_tolerance_percent = rr_tolerance_percent
        self._triggers: list[np.ndarray] = []
        self._rr_ms: list[float] = []

    def add_waveform(self, waveform: ismrmrd.Waveform) -> None:
        if int(waveform.waveform_id) == ECG_WAVEFORM_ID:
            self._triggers.append(np.asarray(ecg_trigger_times_s(waveform), dtype=np.float64))

    def add_rr_ms(self, rr_ms: float) -> None:
        """An R–R interval (ms) reported by an upstream stage (image meta ``rr_ms``)."""
        if not rr_ms > 0:
            raise ValueError(f"rr_ms must be positive, got {rr_ms}")
        self._rr_ms.append(rr_ms)

    def rr_s(self) -> tuple[float, str]:
        """``(rr_s, source)``; raises when neither a heart rate nor two R waves are known."""
        if self.heart_rate_bpm is not None:
            return 60.0 / self.heart_rate_bpm, "config heart_rate_bpm"
        if self._rr_ms:
            return float(np.median(self._rr_ms)) / 1000.0, "cine binning trigger times (image meta rr_ms)"
        times = np.concatenate(self._triggers) if self._triggers else np.zeros(0)
        if times.size < 2:
            raise ValueError(
                "flow report needs the R-R interval: no image meta rr_ms and no ECG triggers reached it; set heart_rate_bpm"
            )
        return mean_rr_s(times, self.rr_tolerance_percent), f"ECG triggers ({times.size} R waves)"
