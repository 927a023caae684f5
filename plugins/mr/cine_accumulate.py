"""Accumulate the readouts of each slice (with the ECG R-wave times) into one :class:`CineSliceRaw`.

R-waves come from the ECG waveform's trigger channel (ISMRMRD ``waveform_id`` 0, last channel nonzero
at a trigger) or, without ECG waveforms, from the readouts' ``physiology_time_stamp[0]`` (ticks since
the last R-wave).  A slice is emitted at its ``ACQ_LAST_IN_SLICE`` readout, when another slice starts,
or at the end of the stream.  When the stream ends with a
:class:`~plugins.runtime.items.StreamInterrupted` marker, the slice it cut is not reconstructed: an
:class:`~plugins.runtime.items.IncompleteUnit` names it and the phase-encoding lines that did not arrive.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import ismrmrd
import numpy as np
import torch
from pydantic import Field

from plugins.io.protocol import TICK_S
from plugins.mr.cine_header import cine_encoding
from plugins.mr.cine_items import CineSliceRaw
from plugins.runtime.config import PluginConfig
from plugins.runtime.items import IncompleteUnit, StreamInterrupted
from plugins.runtime.plugin import ChainContext, Plugin

ECG_WAVEFORM_ID = 0
_CALIBRATION = (ismrmrd.ACQ_IS_PARALLEL_CALIBRATION, ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING)


class CineAccumulateConfig(PluginConfig):
    """Parameters of the accumulation stage."""

    trigger_source: Literal["auto", "ecg_waveform", "physiology_time_stamp", "none"] = Field(
        "auto",
        description="where R-waves come from (auto: ECG trigger channel if present, else physiology stamps)",
    )


def _ranges(values: list[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` → ``"0-2, 5, 7-8"`` (``"none"`` when empty)."""
    if not values:
        return "none"
    runs: list[str] = []
    start = prev = values[0]
    for value in [*values[1:], None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        runs.append(f"{start}-{prev}" if prev > start else str(start))
        if value is not None:
            start = prev = value
    return ", ".join(runs)


def ecg_trigger_times_s(wave: ismrmrd.Waveform) -> list[float]:
    """Rising edges of the trigger channel (last channel) of an ECG waveform, in s."""
    data = np.asarray(wave.data)
    if data.ndim != 2 or data.shape[0] < 2:
        return []
    trigger = data[-1] != 0
    edges = np.flatnonzero(trigger & ~np.concatenate([[False], trigger[:-1]]))
    t0 = float(wave.time_stamp) * TICK_S
    return [t0 + float(i) * float(wave.sample_time_us) * 1e-6 for i in edges]


def _limit_maximum(header: Any, counter: str) -> int:
    """``encodingLimits.<counter>.maximum`` of the first encoding (0 when absent)."""
    try:
        value = getattr(header.encoding[0].encodingLimits, counter).maximum
    except (AttributeError, IndexError, TypeError):
        return 0
    return int(value) if value is not None else 0


def check_single_image_type(header: Any, check_sets: bool = True) -> None:
    """Refuse, before any work, a session whose header announces several echoes (``encodingLimits.contrast``)
    or several encodings (``encodingLimits.set``): one cine/Cartesian image per slice and frame would merge them
    (a Dixon exam's fat would cancel)."""
    n_contrasts = _limit_maximum(header, "contrast") + 1
    if n_contrasts > 1:
        raise ValueError(
            f"the data hold {n_contrasts} echoes (idx.contrast 0..{n_contrasts - 1}) and this chain makes one "
            "image per slice, which would merge them; use the petmr chain for Dixon water/fat images"
        )
    n_sets = _limit_maximum(header, "set") + 1
    if check_sets and n_sets > 1:
        raise ValueError(
            f"the data hold {n_sets} encodings (idx.set 0..{n_sets - 1}, e.g. phase-contrast reference and "
            "velocity-encoded) and this chain makes one image per slice, which would merge them; use the flow chain"
        )


class CineAccumulate(Plugin):
    """Collects each slice's readouts and the ECG R-wave times; emits one raw-slice item per slice."""

    Config = CineAccumulateConfig
    accepts = (ismrmrd.Acquisition, ismrmrd.Waveform, StreamInterrupted)

    def __init__(  # type: ignore[override]
        self, config: CineAccumulateConfig, context: ChainContext, set_index: int | None = None
    ) -> None:
        """``set_index``: the one ``idx.set`` this instance receives when a flow stage splits the sets
        (``None``: a cine/Cartesian chain, which refuses data with several sets or contrasts)."""
        super().__init__(config, context)
        self.cfg = config
        self.set_index = set_index
        check_single_image_type(context.header, check_sets=set_index is None)
        enc = cine_encoding(context.header)
        self.n_ky_header = enc.n_ky if enc else 0
        self._buffers: dict[int, list[ismrmrd.Acquisition]] = {}
        self._pending: list[int] = []  # finished slices waiting for the R-wave that closes their last beat
        self._ecg_triggers: list[float] = []
        self._complete: set[int] = set()  # slices whose end was seen (flag, or the next slice began)
        self.interrupted: StreamInterrupted | None = None

    def process(self, item: Any) -> Iterable[Any]:
        if isinstance(item, StreamInterrupted):
            self.interrupted = item
            return (item,)
        if isinstance(item, ismrmrd.Waveform):
            if int(item.waveform_id) == ECG_WAVEFORM_ID:
                self._ecg_triggers.extend(ecg_trigger_times_s(item))
            return self._emit_ready()
        acq: ismrmrd.Acquisition = item
        if acq.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT):
            return ()
        self._check_counters(acq)
        s = int(acq.idx.slice)
        for other in list(self._buffers):
            if other != s and other not in self._pending:
                self._pending.append(other)
                self._complete.add(other)
        self._buffers.setdefault(s, []).append(acq)
        if acq.is_flag_set(ismrmrd.ACQ_LAST_IN_SLICE):
            self._pending.append(s)
            self._complete.add(s)
        return self._emit_ready()

    def finish(self) -> Iterable[Any]:
        if self.interrupted is None:
            return [self._emit(s) for s in list(self._buffers)]
        complete = [self._emit(s) for s in list(self._buffers) if s in self._complete]
        cut = [self._incomplete(s) for s in list(self._buffers) if s not in self._complete]
        return [*complete, *cut]

    def _incomplete(self, slice_index: int) -> IncompleteUnit:
        """The slice the interruption cut: which phase-encoding lines never arrived."""
        acqs = self._buffers.pop(slice_index)
        received = {int(a.idx.kspace_encode_step_1) for a in acqs}
        n_ky = max(self.n_ky_header, max(received) + 1)
        missing = sorted(set(range(n_ky)) - received)
        self.log.warning(
            "slice %d: the stream was interrupted inside it (%d readouts); not reconstructed",
            slice_index,
            len(acqs),
        )
        return IncompleteUnit(
            stage="cine_accumulate" if self.set_index is None else f"flow_accumulate (set {self.set_index})",
            kind="slice",
            index=slice_index,
            readouts_received=len(acqs),
            missing=f"no end-of-slice readout; ky lines never received: {_ranges(missing)} "
            f"({len(missing)} of {n_ky}; accelerated scans skip some by design)",
        )

    def _check_counters(self, acq: ismrmrd.Acquisition) -> None:
        """Refuse readouts this stage would silently merge: other echoes, other encodings (``set``)."""
        contrast, set_index = int(acq.idx.contrast), int(acq.idx.set)
        if contrast != 0:
            raise ValueError(
                f"a readout has idx.contrast={contrast}: the data hold several echoes/contrasts, which this "
                "chain would merge into one image; use the petmr chain for Dixon echoes"
            )
        if set_index != (self.set_index or 0):
            raise ValueError(
                f"a readout has idx.set={set_index}: the data hold several encodings (e.g. phase-contrast "
                "reference and velocity-encoded), which this chain would merge; use the flow chain"
            )

    def _emit_ready(self) -> list[CineSliceRaw]:
        ready = [s for s in self._pending if self._beats_closed(self._buffers[s])]
        self._pending = [s for s in self._pending if s not in ready]
        return [self._emit(s) for s in ready]

    def _beats_closed(self, acqs: list[ismrmrd.Acquisition]) -> bool:
        """Whether the R-R interval of the slice's last beat is known (else wait for the next ECG trigger).

        With at least two R-waves the last beat can be closed with the median R-R; with fewer (a slice
        acquired within one beat) the slice waits for the trigger after its last readout.
        """
        if self.cfg.trigger_source not in ("auto", "ecg_waveform") or not self._ecg_triggers:
            return True
        last = max(int(a.acquisition_time_stamp) for a in acqs) * TICK_S
        r_waves = self._r_waves(acqs)
        return r_waves.numel() >= 2 or bool((r_waves > last).any())

    def _r_waves(self, acqs: list[ismrmrd.Acquisition]) -> torch.Tensor:
        source = self.cfg.trigger_source
        times = [int(a.acquisition_time_stamp) * TICK_S for a in acqs]
        window = (min(times) - 3.0, max(times) + 3.0)  # beats of this slice only (s)
        triggers = sorted({t for t in self._ecg_triggers if window[0] <= t <= window[1]})
        if source in ("auto", "ecg_waveform") and triggers:
            return torch.tensor(triggers, dtype=torch.float64)
        if source in ("auto", "physiology_time_stamp"):
            ticks = {int(a.acquisition_time_stamp) - int(a.physiology_time_stamp[0]) for a in acqs}
            if any(int(a.physiology_time_stamp[0]) for a in acqs):
                return torch.tensor(sorted(ticks), dtype=torch.float64) * TICK_S
        return torch.zeros(0, dtype=torch.float64)

    def _emit(self, slice_index: int) -> CineSliceRaw:
        acqs = self._buffers.pop(slice_index)
        ky = torch.tensor([int(a.idx.kspace_encode_step_1) for a in acqs], dtype=torch.int64)
        calib = torch.tensor([any(a.is_flag_set(f) for f in _CALIBRATION) for a in acqs])
        calib_only = torch.tensor([a.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION) for a in acqs])
        n_ky = max(self.n_ky_header, int(ky.max()) + 1)
        centre = int(torch.argmin((ky - n_ky // 2).abs()))
        lines = torch.from_numpy(np.stack([np.asarray(a.data, dtype=np.complex64) for a in acqs]))
        raw = CineSliceRaw(
            slice_index=slice_index,
            lines=lines,
            ky_index=ky,
            is_calibration=calib,
            is_imaging=~calib_only,
            readout_times_s=torch.tensor([int(a.acquisition_time_stamp) for a in acqs], dtype=torch.float64)
            * TICK_S,
            repetition=torch.tensor([int(a.idx.repetition) for a in acqs], dtype=torch.int64),
            r_wave_times_s=self._r_waves(acqs),
            n_ky=n_ky,
            reference=acqs[centre].getHead(),
        )
        self.log.info("slice %d: %d readouts, %d R-waves", slice_index, len(acqs), raw.r_wave_times_s.numel())
        return raw
