"""Event trains of the tissue-characterisation sequences and their Bloch simulation per tissue.

Each slice of an ``lge``, ``molli``, ``t2map`` or ``t2star`` exam is planned as a list of preparations
(inversion, T2 preparation) and readouts at real times from the simulated ECG (:func:`plan_slice`); the
same plan gives the k-space schedule (which ky at which time) and, through :func:`centre_signals`, the
signal of every tissue at the k-space centre line of every image.  Physics, never a fit model:

* free relaxation ``Mz → 1 + (Mz - 1)·exp(-t/T1)``, ``Mxy → Mxy·exp(-t/T2)`` between events;
* ideal adiabatic inversion ``Mz → -Mz``; ideal T2 preparation of duration τ (90° – refocusing train –
  -90°, then a spoiler): ``Mz → Mz·exp(-τ/T2)`` (no T1 regrowth: the magnetisation is transverse);
* spoiled GRE (LGE, T2*): perfect spoiling, the echo of a pulse is ``Mz⁻·sin α`` (T2* and the B0 phase are
  applied per echo time by :class:`hardware_sim.mr.scene.SignalModel`), then ``Mz → Mz·cos α``;
* balanced SSFP (MOLLI, T2-prep): isochromats over one period of off-resonance, an α/2 start-up pulse TR/2
  before the first of the alternating ±α pulses, rotations, precession and relaxation TR/2 by TR/2, the
  echo at TE = TR/2 demodulated with the RF phase; the transverse magnetisation is spoiled after the
  readout.

Simplifications (documented, not hidden): one signal per tissue and image, the one at the k-space centre
line; the transient signal change along the readout (k-space filtering, blurring) is not modelled; slice
profile and inversion efficiency are ideal; successive slices start fully relaxed (separate breath holds).

Sequence parameters (typical clinical 1.5 T / 3 T protocols):

* LGE: segmented IR FLASH, TR 8 ms, TE 3.3 ms, flip 25°, ``views_per_segment`` 24 lines interleaved over
  k-space (k-space centre at the middle of the window, which is at TI after the inversion), an inversion
  every other beat and the PSIR reference readout (flip 5°) in the beat between, two dummy cycles;
* MOLLI 5(3)3: single-shot bSSFP, TR 2.7 ms, flip 35°, linear ordering, first TIs 130 and 210 ms after (the 90-line linear readout reaches its centre 123 ms in)
  the two inversions, 5 images, 3 recovery beats, 3 images;
* T2 map: T2-prepared single-shot bSSFP, TR 2.7 ms, flip 70°, centric (low–high) ordering so the centre
  line comes right after the preparation, T2 preparations 0, 25, 45, 65 ms, one dummy readout and three
  recovery beats before each image (every image starts from the same history);
* T2*: ECG-gated segmented multi-echo GRE, 8 echoes, TE 1.3 + 2.3·e ms, TR 20 ms, flip 20°, 12 lines per
  beat interleaved over k-space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

TISSUE_PROTOCOLS = ("lge", "molli", "t2map", "t2star")
MOLLI_BLOCKS = ((130.0, 5), (210.0, 3))
"""MOLLI 5(3)3: (TI of the first image after the inversion in ms, images) per inversion block."""
MOLLI_RECOVERY_BEATS = 3
T2_PREPARATIONS_MS = (0.0, 25.0, 45.0, 65.0)
T2_RECOVERY_BEATS = 3
T2STAR_ECHO_TIMES_MS = tuple(round(1.3 + 2.3 * e, 3) for e in range(8))
LGE_REFERENCE_FLIP_DEG = 5.0
LGE_DUMMY_CYCLES = 2
WINDOW_END_BEFORE_R_S = 0.12
"""The acquisition window ends this long before the nominal next R-wave (diastasis)."""
MIN_TRIGGER_DELAY_S = 0.3
N_ISOCHROMATS = 256

N_CONTRASTS = {"lge": 2, "molli": sum(n for _, n in MOLLI_BLOCKS), "t2map": len(T2_PREPARATIONS_MS),
               "t2star": len(T2STAR_ECHO_TIMES_MS)}  # fmt: skip
"""Images per slice (ISMRMRD ``idx.contrast`` counter) of each protocol."""
SEQUENCE_TYPES = {
    "lge": "IR_FLASH_PSIR",
    "molli": "MOLLI_bSSFP",
    "t2map": "T2prep_bSSFP",
    "t2star": "GRE_multiecho_T2star",
}
TR_MS = {"lge": 8.0, "molli": 2.7, "t2map": 2.7, "t2star": 20.0}
FLIP_DEG = {"lge": 25.0, "molli": 35.0, "t2map": 70.0, "t2star": 20.0}
ECHO_TIME_MS = {"lge": 3.3, "molli": 1.35, "t2map": 1.35}
VIEWS_PER_SEGMENT = {"lge": 24, "t2star": 12}
PIXEL_BANDWIDTH_HZ = {"lge": 250.0, "molli": 1085.0, "t2map": 1000.0, "t2star": 900.0}


@dataclass(frozen=True)
class Readout:
    """One readout train: ``n_pulses`` pulses ``tr_s`` apart starting at ``start_s`` (time of pulse 0, s).

    ``kind``: ``bssfp`` or ``gre``; ``flip_deg``; ``contrast``: image index whose k-space centre line is
    pulse ``centre_pulse`` of this train, or -1 (dummy or a segment without the centre line).
    """

    start_s: float
    n_pulses: int
    tr_s: float
    flip_deg: float
    kind: Literal["bssfp", "gre"]
    contrast: int = -1
    centre_pulse: int = 0


@dataclass(frozen=True)
class Preparation:
    """A magnetisation preparation ending at ``time_s``: ``inversion`` or ``t2prep`` of ``duration_s``."""

    time_s: float
    kind: Literal["inversion", "t2prep"]
    duration_s: float = 0.0


@dataclass(frozen=True)
class SliceTiming:
    """The event train of one slice: preparations and readouts, each in time order."""

    preparations: tuple[Preparation, ...]
    readouts: tuple[Readout, ...]
    n_contrasts: int


Rows = list[tuple[float, int, int]]
"""Schedule rows (echo time s, ky, contrast)."""


def _window_start_s(n_pulses: int, tr_s: float, nominal_rr_s: float) -> float:
    """Trigger delay of a readout window of ``n_pulses`` that ends in diastasis."""
    return max(MIN_TRIGGER_DELAY_S, nominal_rr_s - WINDOW_END_BEFORE_R_S - n_pulses * tr_s)


def linear_order(lines: npt.NDArray[np.int64], centre: int) -> tuple[npt.NDArray[np.int64], int]:
    """Lines in increasing ky and the position of the centre line."""
    return lines, int(np.flatnonzero(lines == centre)[0])


def centric_order(lines: npt.NDArray[np.int64], centre: int) -> tuple[npt.NDArray[np.int64], int]:
    """Low–high order (|ky - centre| increasing, the centre line first)."""
    order = np.lexsort((lines, np.abs(lines - centre)))
    return lines[order], 0


def interleaved_segments(lines: npt.NDArray[np.int64], per_segment: int) -> list[npt.NDArray[np.int64]]:
    """Segment j takes every n-th line from j: each segment sweeps k-space, its middle near the centre."""
    n_segments = int(np.ceil(lines.size / per_segment))
    return [lines[j::n_segments] for j in range(n_segments)]


def _readout_rows(
    readout: Readout, kys: npt.NDArray[np.int64], contrast: int, te_s: tuple[float, ...]
) -> Rows:
    rows: Rows = []
    for n, ky in enumerate(kys.tolist()):
        for e, te in enumerate(te_s):
            rows.append((readout.start_s + n * readout.tr_s + te, int(ky), contrast + e))
    return rows


def echo_time_s(protocol: str) -> float:
    """Echo time of the single-echo protocols, s."""
    return ECHO_TIME_MS[protocol] * 1e-3


def plan_single_shot(
    protocol: str,
    lines: npt.NDArray[np.int64],
    centre: int,
    r_waves_s: npt.NDArray[np.float64],
    first_beat: int,
    nominal_rr_s: float,
) -> tuple[SliceTiming, Rows, int]:
    """MOLLI or T2-prep bSSFP: one image per beat; returns the timing, rows and the next free beat."""
    tr = TR_MS[protocol] * 1e-3
    ordered, centre_pulse = (linear_order if protocol == "molli" else centric_order)(lines, centre)
    delay = _window_start_s(ordered.size, tr, nominal_rr_s)
    te = (echo_time_s(protocol),)
    preps: list[Preparation] = []
    readouts: list[Readout] = []
    rows: Rows = []

    def image(beat: int, contrast: int) -> Readout:
        ro = Readout(
            float(r_waves_s[beat]) + delay,
            ordered.size,
            tr,
            FLIP_DEG[protocol],
            "bssfp",
            contrast,
            centre_pulse,
        )
        readouts.append(ro)
        if contrast >= 0:
            rows.extend(_readout_rows(ro, ordered, contrast, te))
        return ro

    def centre_time(ro: Readout) -> float:
        return ro.start_s + ro.centre_pulse * ro.tr_s + te[0]

    beat, contrast = first_beat, 0
    if protocol == "molli":
        for ti_ms, n_images in MOLLI_BLOCKS:
            first = Readout(float(r_waves_s[beat]) + delay, ordered.size, tr, 0.0, "bssfp", 0, centre_pulse)
            preps.append(Preparation(centre_time(first) - ti_ms * 1e-3, "inversion"))
            for _ in range(n_images):
                image(beat, contrast)
                beat, contrast = beat + 1, contrast + 1
            beat += MOLLI_RECOVERY_BEATS
        beat -= MOLLI_RECOVERY_BEATS
    else:
        image(beat, -1)  # dummy: every image then follows one readout and the same recovery
        for tau_ms in T2_PREPARATIONS_MS:
            beat += T2_RECOVERY_BEATS + 1
            ro = image(beat, contrast)
            if tau_ms > 0:
                preps.append(Preparation(ro.start_s - 0.5 * tr - 5e-3, "t2prep", tau_ms * 1e-3))
            contrast += 1
        beat += 1
    timing = SliceTiming(tuple(preps), tuple(readouts), contrast)
    return timing, rows, beat


def plan_segmented(
    protocol: str,
    lines: npt.NDArray[np.int64],
    centre: int,
    r_waves_s: npt.NDArray[np.float64],
    first_beat: int,
    nominal_rr_s: float,
    inversion_time_ms: float,
) -> tuple[SliceTiming, Rows, int]:
    """LGE (IR + PSIR reference in alternate beats) or gated multi-echo GRE (T2*)."""
    tr = TR_MS[protocol] * 1e-3
    segments = interleaved_segments(lines, VIEWS_PER_SEGMENT[protocol])
    n_pulses = max(s.size for s in segments)
    centre_segment = next(j for j, s in enumerate(segments) if centre in s.tolist())
    centre_pulse = int(np.flatnonzero(segments[centre_segment] == centre)[0])
    te_s = tuple(t * 1e-3 for t in T2STAR_ECHO_TIMES_MS) if protocol == "t2star" else (echo_time_s(protocol),)
    preps: list[Preparation] = []
    readouts: list[Readout] = []
    rows: Rows = []
    beat = first_beat
    if protocol == "t2star":
        delay = _window_start_s(n_pulses, tr, nominal_rr_s)
        for j, kys in enumerate(segments):
            ro = Readout(float(r_waves_s[beat]) + delay, kys.size, tr, FLIP_DEG[protocol], "gre",
                         0 if j == centre_segment else -1, centre_pulse)  # fmt: skip
            readouts.append(ro)
            rows.extend(_readout_rows(ro, kys, 0, te_s))
            beat += 1
        return SliceTiming((), tuple(readouts), len(te_s)), rows, beat
    # LGE: the centre line of each IR window at TI after its inversion
    middle = centre_pulse
    delay = max(
        inversion_time_ms * 1e-3 - middle * tr - te_s[0] + 0.02, _window_start_s(n_pulses, tr, nominal_rr_s)
    )
    for j in range(-LGE_DUMMY_CYCLES, len(segments)):
        kys = segments[max(j, 0)]
        start = float(r_waves_s[beat]) + delay
        preps.append(Preparation(start + middle * tr + te_s[0] - inversion_time_ms * 1e-3, "inversion"))
        is_centre = j == centre_segment
        ir = Readout(start, kys.size, tr, FLIP_DEG["lge"], "gre", 0 if is_centre else -1, centre_pulse)
        ref = Readout(float(r_waves_s[beat + 1]) + delay, kys.size, tr, LGE_REFERENCE_FLIP_DEG, "gre",
                      1 if is_centre else -1, centre_pulse)  # fmt: skip
        readouts.extend((ir, ref))
        if j >= 0:
            rows.extend(_readout_rows(ir, kys, 0, te_s))
            rows.extend(_readout_rows(ref, kys, 1, te_s))
        beat += 2
    return SliceTiming(tuple(preps), tuple(readouts), 2), rows, beat


def _events(timing: SliceTiming) -> list[tuple[float, object]]:
    events: list[tuple[float, object]] = [(p.time_s - p.duration_s, p) for p in timing.preparations]
    for ro in timing.readouts:
        events.append((ro.start_s - (0.5 * ro.tr_s if ro.kind == "bssfp" else 0.0), ro))
    return sorted(events, key=lambda e: e[0])


def _relax(m: npt.NDArray[np.float64], dt_s: float, t1_ms: float, t2_ms: float) -> None:
    e2 = np.exp(-dt_s * 1e3 / t2_ms)
    m[0] *= e2
    m[1] *= e2
    m[2] = 1.0 + (m[2] - 1.0) * np.exp(-dt_s * 1e3 / t1_ms)


def _rotate_x(m: npt.NDArray[np.float64], angle_rad: float) -> None:
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    my, mz = m[1].copy(), m[2].copy()
    m[1] = c * my + s * mz
    m[2] = -s * my + c * mz


def _free(m: npt.NDArray[np.float64], cos_p: npt.NDArray[np.float64], sin_p: npt.NDArray[np.float64],
          e1: float, e2: float) -> None:  # fmt: skip
    mx, my = m[0].copy(), m[1]
    m[0] = e2 * (cos_p * mx - sin_p * my)
    m[1] = e2 * (sin_p * mx + cos_p * my)
    m[2] = 1.0 + (m[2] - 1.0) * e1


def _bssfp(
    m: npt.NDArray[np.float64], ro: Readout, t1_ms: float, t2_ms: float, off_hz: npt.NDArray[np.float64]
) -> complex | npt.NDArray[np.complex128]:
    """Play an α/2 start-up and ``n_pulses`` alternating pulses; the centre echo (per isochromat)."""
    half_ms = 0.5 * ro.tr_s * 1e3
    phase = 2.0 * np.pi * off_hz * half_ms * 1e-3
    cos_p, sin_p = np.cos(phase), np.sin(phase)
    e1, e2 = float(np.exp(-half_ms / t1_ms)), float(np.exp(-half_ms / t2_ms))
    alpha = np.deg2rad(ro.flip_deg)
    _rotate_x(m, -0.5 * alpha)
    _free(m, cos_p, sin_p, e1, e2)
    echo: npt.NDArray[np.complex128] = np.zeros(off_hz.shape, np.complex128)
    for k in range(ro.n_pulses):
        sign = 1.0 if k % 2 == 0 else -1.0
        _rotate_x(m, sign * alpha)
        _free(m, cos_p, sin_p, e1, e2)
        if k == ro.centre_pulse:
            echo = sign * (m[1] - 1j * m[0])  # RF-phase demodulated; +Mz gives a positive real signal
        _free(m, cos_p, sin_p, e1, e2)
    m[0] = 0.0
    m[1] = 0.0
    return echo


def _gre(m: npt.NDArray[np.float64], ro: Readout, t1_ms: float) -> float:
    alpha = np.deg2rad(ro.flip_deg)
    e1 = float(np.exp(-ro.tr_s * 1e3 / t1_ms))
    echo = 0.0
    for k in range(ro.n_pulses):
        if k == ro.centre_pulse:
            echo = float(m[2].mean() * np.sin(alpha))
        m[2] = 1.0 + (m[2] * np.cos(alpha) - 1.0) * e1
    m[0] = 0.0
    m[1] = 0.0
    return echo


def centre_signals(
    timing: SliceTiming, t1_ms: float, t2_ms: float, off_resonance_hz: npt.NDArray[np.float64]
) -> npt.NDArray[np.complex128]:
    """Signal at the k-space centre line of every image, per unit M0: ``(n_contrasts, n_off)`` complex.

    bSSFP: per isochromat of ``off_resonance_hz``; GRE: ``Mz⁻·sin α`` (the same for every off-resonance,
    echo-time factors are applied by the caller).  Starts fully relaxed before the first event.
    """
    off = np.asarray(off_resonance_hz, dtype=np.float64)
    m = np.zeros((3, off.size))
    m[2] = 1.0
    out = np.zeros((timing.n_contrasts, off.size), np.complex128)
    clock: float | None = None
    for t, event in _events(timing):
        if clock is not None and t > clock:
            _relax(m, t - clock, t1_ms, t2_ms)
        if isinstance(event, Preparation):
            if event.kind == "inversion":
                m[2] *= -1.0
            else:
                m[2] *= np.exp(-event.duration_s * 1e3 / t2_ms)
            m[0] = 0.0
            m[1] = 0.0
            clock = event.time_s
            continue
        assert isinstance(event, Readout)
        if event.kind == "bssfp":
            echo = _bssfp(m, event, t1_ms, t2_ms, off)
        else:
            echo = _gre(m, event, t1_ms)
        clock = event.start_s + event.n_pulses * event.tr_s
        if event.contrast >= 0:
            out[event.contrast] = echo
    return out
