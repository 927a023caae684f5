"""The exam as a lazily generated, time-ordered stream of ``ismrmrd.Acquisition`` / ``Waveform``.

Order: noise prescan (``ACQ_IS_NOISE_MEASUREMENT``), then each slice's readouts; ECG waveform chunks
(id 0, 100 ms = 40 samples of 2.5 ms, channels: 4 leads + a trigger channel that is 1 at the sample
of each R-wave) are inserted as soon as their last sample lies before the next readout.
Within a slice the moving part of k-space is evaluated at motion samples ``motion_sampling_ms`` apart
and linearly interpolated to each readout's own time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeAlias

import ismrmrd
import numpy as np
import numpy.typing as npt

from hardware_sim.mr.coils import correlated_noise
from hardware_sim.mr.header import ECG_WAVEFORM_ID
from hardware_sim.mr.model import EXAM_START_TICKS, TICK_S, ExamModel
from hardware_sim.mr.noise_model import noise_rng
from hardware_sim.mr.noise_source import NoiseSource
from hardware_sim.mr.physiology import ecg_mv

N_NOISE_READOUTS = 8
ECG_CHUNK_SAMPLES = 40
ECG_CHANNELS = 5
ECG_LEAD_GAINS = (0.6, 1.0, 0.8, -0.4)
Item: TypeAlias = ismrmrd.Acquisition | ismrmrd.Waveform


def ticks(t_s: float) -> int:
    """Exam time (s) → acquisition_time_stamp (2.5 ms ticks)."""
    return EXAM_START_TICKS + round(t_s / TICK_S)


def ticks_floor(t_s: float) -> int:
    """Tick of the ECG sample in which an event at ``t_s`` falls (R-wave triggers)."""
    return EXAM_START_TICKS + int(np.floor(t_s / TICK_S + 1e-9))


class EcgStream:
    """ECG chunks covering the exam from t = 0, emitted in order."""

    def __init__(self, model: ExamModel) -> None:
        self.model = model
        self.next_chunk = 0
        self.chunk_s = ECG_CHUNK_SAMPLES * TICK_S

    def until(self, t_s: float) -> Iterator[ismrmrd.Waveform]:
        """Chunks whose last sample lies before ``t_s``."""
        while (self.next_chunk + 1) * self.chunk_s <= t_s:
            yield self._chunk(self.next_chunk)
            self.next_chunk += 1

    def _chunk(self, k: int) -> ismrmrd.Waveform:
        t = ((k * ECG_CHUNK_SAMPLES + np.arange(ECG_CHUNK_SAMPLES)) * TICK_S).astype(np.float64)
        lead2 = ecg_mv(self.model.rhythm, t)
        data = np.zeros((ECG_CHANNELS, ECG_CHUNK_SAMPLES), np.uint32)
        for ch, gain in enumerate(ECG_LEAD_GAINS):
            data[ch] = np.clip(np.round(2048.0 + 800.0 * gain * lead2), 0, 4095).astype(np.uint32)
        r = self.model.rhythm.r_wave_times_s
        inside = r[(r >= t[0]) & (r < t[0] + self.chunk_s)]
        data[ECG_CHANNELS - 1, [ticks_floor(float(r_s)) - ticks(float(t[0])) for r_s in inside]] = 1
        return ismrmrd.Waveform.from_array(
            data,
            time_stamp=ticks(float(t[0])),
            sample_time_us=TICK_S * 1e6,
            waveform_id=ECG_WAVEFORM_ID,
            measurement_uid=self.model.config.seed,
            scan_counter=k,
        )


def _template(model: ExamModel, slice_index: int) -> ismrmrd.AcquisitionHeader:
    cfg = model.config
    head = ismrmrd.AcquisitionHeader()
    head.version = 1
    head.measurement_uid = cfg.seed
    head.number_of_samples = cfg.readout_oversampling * cfg.n_readout
    head.available_channels = head.active_channels = cfg.n_coils
    for c in range(cfg.n_coils):
        head.channel_mask[c // 64] |= 1 << (c % 64)
    head.center_sample = cfg.readout_oversampling * cfg.n_readout // 2
    head.sample_time_us = cfg.dwell_time_us
    if slice_index >= 0:
        g = model.geometries[slice_index]
        for i in range(3):
            head.position[i], head.read_dir[i] = g.centre_mm[i], g.read_dir[i]
            head.phase_dir[i], head.slice_dir[i] = g.phase_dir[i], g.slice_dir[i]
        head.idx.slice = slice_index
    return head


def _noise(model: ExamModel, rng: np.random.Generator) -> Iterator[ismrmrd.Acquisition]:
    cfg = model.config
    n_os = cfg.readout_oversampling * cfg.n_readout
    noise = correlated_noise(model.coils.noise_covariance, (N_NOISE_READOUTS, n_os), rng)
    for k in range(N_NOISE_READOUTS):
        head = _template(model, -1)
        head.flags = 0
        head.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
        head.scan_counter = k
        head.acquisition_time_stamp = ticks(0.01 + k * 0.002)
        yield ismrmrd.Acquisition(head, np.ascontiguousarray(noise[:, k]))


def _noise_free_lines(
    model: ExamModel, s: int
) -> Iterator[tuple[npt.NDArray[np.int64], npt.NDArray[np.complex64]]]:
    """(readout indices, data (n, coils, n_os)) of slice s in time order, noise free."""
    synth, sched = model.synthesizer(s), model.schedules[s]
    if model.frozen_heart or not synth.has_box:
        contraction, flows = model.state(float(sched.times_s[0]))
        k = synth.full_kspace(contraction, flows)
        yield np.arange(sched.ky.size), np.moveaxis(k[sched.contrast, :, sched.ky], 0, 0)
        return
    dt = model.config.motion_sampling_ms * 1e-3
    pos = (sched.times_s - sched.times_s[0]) / dt
    i0 = np.floor(pos).astype(np.int64)
    w = (pos - i0).astype(np.float32)
    bounds = np.searchsorted(i0, np.arange(int(i0[-1]) + 2))
    previous: dict[int, npt.NDArray[np.complex64]] = {}
    for i in range(int(i0[-1]) + 2):
        done = np.arange(bounds[i - 1], bounds[i]) if i > 0 else np.arange(0)
        nxt = np.arange(bounds[i], bounds[i + 1]) if i + 1 < bounds.size else np.arange(0)
        kys = np.unique(np.concatenate([sched.ky[done], sched.ky[nxt]]))
        if kys.size == 0:
            continue
        contraction, flows = model.state(float(sched.times_s[0] + i * dt))
        lines = synth.box_lines(synth.box_image(contraction, flows), kys)
        column = {int(k): j for j, k in enumerate(kys)}
        if done.size:
            cols = np.array([column[int(k)] for k in sched.ky[done]])
            contrast, ky = sched.contrast[done], sched.ky[done]
            before = np.stack([previous[int(k)][c] for k, c in zip(ky, contrast, strict=True)])
            now = lines[contrast, :, cols]
            weight = w[done][:, None, None]
            yield done, (1.0 - weight) * before + weight * now + synth.k_static[contrast, :, ky]
        previous = {int(k): lines[:, :, column[int(k)]] for k in sched.ky[nxt]}


def _flags(model: ExamModel, s: int, r: int) -> int:
    sched = model.schedules[s]
    head = ismrmrd.AcquisitionHeader()
    if r == 0:
        head.set_flag(ismrmrd.ACQ_FIRST_IN_SLICE)
    if r == sched.ky.size - 1:
        head.set_flag(ismrmrd.ACQ_LAST_IN_SLICE)
        if s == len(model.schedules) - 1:
            head.set_flag(ismrmrd.ACQ_LAST_IN_MEASUREMENT)
    if model.config.acceleration > 1 and sched.calibration[r]:
        flag = (
            ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING
            if sched.imaging[r]
            else ismrmrd.ACQ_IS_PARALLEL_CALIBRATION
        )
        head.set_flag(flag)
    return int(head.flags)


def stream_items(model: ExamModel) -> Iterator[Item]:
    """All items of the exam in scanner order (deterministic for the config's seed)."""
    rng = noise_rng(model.config)
    ecg = EcgStream(model)
    yield from _noise(model, rng)
    n_os = model.config.readout_oversampling * model.config.n_readout
    source = NoiseSource(model.coils.noise_covariance, n_os, rng)
    try:
        yield from _imaging_items(model, ecg, source)
    finally:
        source.close()
    end = float(model.schedules[-1].times_s[-1]) + ECG_CHUNK_SAMPLES * TICK_S
    yield from ecg.until(end + 1e-9)


def _imaging_items(model: ExamModel, ecg: EcgStream, source: NoiseSource) -> Iterator[Item]:
    counter = N_NOISE_READOUTS
    rhythm = model.rhythm
    for s, sched in enumerate(model.schedules):
        model.prefetch(s + 1)  # the next slice's static k-space is built while this one streams
        template = _template(model, s)
        for indices, data in _noise_free_lines(model, s):
            noise = source.take(indices.size)
            for n, r in enumerate(indices):
                t = float(sched.times_s[r])
                yield from ecg.until(t)
                head = ismrmrd.AcquisitionHeader.from_buffer_copy(template)
                head.flags = _flags(model, s, int(r))
                head.scan_counter = counter
                head.acquisition_time_stamp = ticks(t)
                last_r = rhythm.r_wave_times_s[np.searchsorted(rhythm.r_wave_times_s, t, side="right") - 1]
                # ticks since the trigger sample of the last R-wave (as the scanner counts them)
                head.physiology_time_stamp[0] = head.acquisition_time_stamp - ticks_floor(last_r)
                head.idx.kspace_encode_step_1 = int(sched.ky[r])
                if model.config.protocol == "flow":
                    head.idx.set = int(sched.contrast[r])
                elif model.config.protocol != "cine":  # dixon echo, tissue-characterisation image
                    head.idx.contrast = int(sched.contrast[r])
                counter += 1
                yield ismrmrd.Acquisition(head, np.ascontiguousarray(data[n] + noise[:, n]))
