"""Sampling patterns and the acquisition schedule (which ky at which time) of each slice.

* Regular (parallel imaging): ky lines with ``(ky - n_pe//2) % R == 0`` plus ``n_calibration_lines``
  fully sampled around the centre (ACS); partial Fourier omits the first lines.
* Variable density (compressed sensing): one pseudo-random mask per cardiac frame (different seeds),
  ``round(n_acquired / R)`` lines, a fully sampled core of a quarter of them, the rest drawn without
  replacement with density ∝ (1 - |k|/k_max)².
* Cine (retrospective, segmented): at each R-wave the sequence moves to the next segment of
  ``views_per_segment`` lines and cycles through it TR by TR until the next R-wave.  Variable density
  instead gives each beat's window ``[p, p+1)·RR/n_phases`` the lines of frame p's mask.
* Flow: the same with each line as a pair (set 0 reference, then set 1 velocity encoded, one TR each).
* Dixon: not gated; one line per TR, the echoes at TR start + TE_e; slices one after another.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hardware_sim.mr.config import MRExamConfig
from hardware_sim.mr.physiology import Rhythm
from hardware_sim.mr.tissue_sequences import TISSUE_PROTOCOLS, SliceTiming, plan_segmented, plan_single_shot

IntArray = npt.NDArray[np.int64]
FIRST_SLICE_START_S = 0.5
"""The imaging starts at the first R-wave after this time (the noise prescan comes before)."""


@dataclass(frozen=True)
class SliceSchedule:
    """Readouts of one slice in time order (all arrays (n_readouts,)).

    ``times_s`` float64 (s, centre of the echo), ``ky`` int64 (0..n_pe-1), ``contrast`` int64 (flow:
    set; dixon: echo; cine: 0), ``calibration`` bool (inside the ACS region), ``imaging`` bool (part of
    the undersampled imaging pattern).
    """

    times_s: npt.NDArray[np.float64]
    ky: IntArray
    contrast: IntArray
    calibration: npt.NDArray[np.bool_]
    imaging: npt.NDArray[np.bool_]
    timing: SliceTiming | None = None
    """Tissue-characterisation protocols: the slice's event train (preparations, readouts)."""

    def __post_init__(self) -> None:
        n = self.times_s.shape[0]
        if any(a.shape != (n,) for a in (self.ky, self.contrast, self.calibration, self.imaging)) or n == 0:
            raise ValueError("schedule arrays must be non-empty and of one length")
        if np.any(np.diff(self.times_s) < 0):
            raise ValueError("readout times must not decrease")


def first_acquired_line(config: MRExamConfig) -> int:
    """First ky line acquired (partial Fourier omits the lines before it)."""
    n_pe = config.n_phase_encodes
    return n_pe - round(config.partial_fourier * n_pe)


def calibration_region(config: MRExamConfig) -> npt.NDArray[np.bool_]:
    """(n_pe,) bool: lines inside the fully sampled ACS region."""
    n_pe, c = config.n_phase_encodes, config.n_phase_encodes // 2
    ky = np.arange(n_pe)
    half = config.n_calibration_lines // 2
    return (ky >= c - half) & (ky < c - half + config.n_calibration_lines)


def regular_pattern(config: MRExamConfig) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    """Acquired lines (sorted) and whether each is an imaging line (else calibration only)."""
    n_pe, c = config.n_phase_encodes, config.n_phase_encodes // 2
    ky = np.arange(first_acquired_line(config), n_pe)
    imaging = (ky - c) % config.acceleration == 0
    keep = imaging | calibration_region(config)[ky]
    return ky[keep].astype(np.int64), imaging[keep]


def variable_density_masks(config: MRExamConfig, n_frames: int, rng: np.random.Generator) -> list[IntArray]:
    """One sorted set of ky lines per cardiac frame (pseudo-random, different per frame)."""
    n_pe, c = config.n_phase_encodes, config.n_phase_encodes // 2
    candidates = np.arange(first_acquired_line(config), n_pe)
    n_lines = max(4, round(candidates.size / config.acceleration))
    n_core = max(2, n_lines // 4)
    core = candidates[np.abs(candidates - c + 0.5) <= n_core / 2.0][:n_core]
    rest = np.setdiff1d(candidates, core)
    density = (1.0 - np.abs(rest - c) / (n_pe / 2.0 + 1.0)) ** 2
    masks = []
    for _ in range(n_frames):
        drawn = rng.choice(
            rest, size=min(n_lines - core.size, rest.size), replace=False, p=density / density.sum()
        )
        masks.append(np.sort(np.concatenate([core, drawn])).astype(np.int64))
    return masks


def _beat_times(start: float, stop: float, tr_s: float) -> npt.NDArray[np.float64]:
    n = int(np.floor((stop - start) / tr_s + 1e-9))
    return (start + np.arange(n) * tr_s).astype(np.float64)


def _next_beat(rhythm: Rhythm, t_s: float) -> int:
    idx = int(np.searchsorted(rhythm.r_wave_times_s, t_s, side="left"))
    if idx >= rhythm.ectopic.shape[0]:
        raise RuntimeError("the simulated rhythm is too short for the schedule")
    return idx


def _segmented(config: MRExamConfig, rhythm: Rhythm, start_s: float, pairs: bool) -> tuple[list, int]:
    """Retrospective segmented acquisition; returns (times, ky, contrast) lists and the next beat."""
    lines, _ = regular_pattern(config)
    tr_s = config.effective_tr_ms * 1e-3
    step = 2 if pairs else 1
    beat = _next_beat(rhythm, start_s)
    out: list[tuple[float, int, int]] = []
    seg_size = config.effective_views_per_segment
    for s0 in range(0, lines.size, seg_size):
        segment = lines[s0 : s0 + seg_size]
        r0, r1 = rhythm.r_wave_times_s[beat], rhythm.r_wave_times_s[beat + 1]
        times = _beat_times(r0, r1 - (step - 1) * tr_s, step * tr_s)
        for n, t in enumerate(times):
            ky = int(segment[n % segment.size])
            out.extend((t + k * tr_s, ky, k) for k in range(step))
        beat += 1
    return out, beat


def _variable_density(config: MRExamConfig, rhythm: Rhythm, start_s: float, masks: list[IntArray]) -> list:
    tr_s = config.effective_tr_ms * 1e-3
    beat = _next_beat(rhythm, start_s)
    pointers = [0] * len(masks)
    out: list[tuple[float, int, int]] = []
    while min(p - m.size for p, m in zip(pointers, masks, strict=True)) < 0:
        r0, rr = rhythm.r_wave_times_s[beat], rhythm.rr_s[beat]
        for p, mask in enumerate(masks):
            w0 = r0 + p * rr / len(masks)
            for t in _beat_times(w0, w0 + rr / len(masks), tr_s):
                out.append((t, int(mask[pointers[p] % mask.size]), 0))
                pointers[p] += 1
        beat += 1
        if beat >= rhythm.ectopic.shape[0]:
            raise RuntimeError("the simulated rhythm is too short for the schedule")
    return out


def _dixon(config: MRExamConfig, start_s: float) -> list:
    lines, _ = regular_pattern(config)
    tr_s = config.effective_tr_ms * 1e-3
    out = []
    for n, ky in enumerate(lines):
        for e, te in enumerate(config.effective_echo_times_ms):
            out.append((start_s + n * tr_s + te * 1e-3, int(ky), e))
    return out


def _tissue_characterisation(
    config: MRExamConfig, rhythm: Rhythm, start_s: float
) -> tuple[list, SliceTiming]:
    """Rows and event train of one lge / molli / t2map / t2star slice (:mod:`hardware_sim.mr.tissue_sequences`)."""
    lines, _ = regular_pattern(config)
    centre = config.n_phase_encodes // 2
    beat = _next_beat(rhythm, start_s)
    nominal = 60.0 / config.heart_rate_bpm
    if config.protocol in ("molli", "t2map"):
        timing, rows, end_beat = plan_single_shot(
            config.protocol, lines, centre, rhythm.r_wave_times_s, beat, nominal
        )
    else:
        timing, rows, end_beat = plan_segmented(
            config.protocol,
            lines,
            centre,
            rhythm.r_wave_times_s,
            beat,
            nominal,
            config.effective_inversion_time_ms,
        )
    if end_beat >= rhythm.ectopic.shape[0]:
        raise RuntimeError("the simulated rhythm is too short for the schedule")
    return sorted(rows), timing


def build_schedules(config: MRExamConfig, rhythm: Rhythm, rng: np.random.Generator) -> list[SliceSchedule]:
    """The readouts of every slice, in exam order."""
    calib = calibration_region(config)
    _, imaging_flags = regular_pattern(config)
    imaging_lines = set(regular_pattern(config)[0][imaging_flags].tolist())
    masks = (
        variable_density_masks(config, config.n_phases, rng)
        if config.undersampling == "variable_density"
        else []
    )
    t = FIRST_SLICE_START_S
    schedules = []
    for _ in range(config.n_slices):
        timing = None
        if config.protocol in TISSUE_PROTOCOLS:
            rows, timing = _tissue_characterisation(config, rhythm, t)
        elif config.protocol == "dixon":
            rows = _dixon(config, t)
        elif masks and config.protocol == "cine":
            rows = _variable_density(config, rhythm, t, masks)
        else:
            rows, _ = _segmented(config, rhythm, t, pairs=config.protocol == "flow")
        times = np.array([r[0] for r in rows])
        ky = np.array([r[1] for r in rows], dtype=np.int64)
        imaging = np.ones(ky.size, bool) if masks else np.array([k in imaging_lines for k in ky.tolist()])
        schedules.append(
            SliceSchedule(
                times, ky, np.array([r[2] for r in rows], dtype=np.int64), calib[ky], imaging, timing
            )
        )
        t = float(times[-1]) + config.inter_slice_pause_s
    return schedules


def estimated_duration_s(config: MRExamConfig) -> float:
    """Generous upper bound of the exam duration, s (to size the simulated rhythm)."""
    lines, _ = regular_pattern(config)
    rr = 60.0 / config.heart_rate_bpm
    if config.protocol == "dixon":
        per_slice = lines.size * config.effective_tr_ms * 1e-3
    elif config.protocol in TISSUE_PROTOCOLS:
        segments = np.ceil(lines.size / config.effective_views_per_segment)
        beats = {"lge": 2 * (segments + 2), "molli": 11, "t2map": 17, "t2star": segments}[config.protocol]
        per_slice = rr * 1.8 * (beats + 2)
    elif config.undersampling == "variable_density" and config.protocol == "cine":
        n_window = max(1, int(0.6 * rr / config.n_phases / (config.effective_tr_ms * 1e-3)))
        n_lines = max(4, round(lines.size / config.acceleration))
        per_slice = rr * 1.8 * (np.ceil(n_lines / n_window) + 2)
    else:
        per_slice = rr * 1.8 * (np.ceil(lines.size / config.effective_views_per_segment) + 2)
    return FIRST_SLICE_START_S + config.n_slices * (per_slice + config.inter_slice_pause_s + 2 * rr) + 5.0
