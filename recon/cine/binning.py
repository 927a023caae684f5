"""Retrospective ECG binning of cine k-space lines, with arrhythmia rejection.

Every readout gets a cardiac-phase fraction ``f = (t − t_R) / RR`` from the time since the last R-wave
normalised by the R-R interval of its own beat.  Beats whose R-R deviates from the median R-R by more
than a tolerance are rejected (ectopic beats and the compensatory pauses after them).  For every k-space
line and every accepted beat that acquired it, the readouts are interpolated linearly (cyclically over
the cardiac cycle) to the output phase centres ``f_p = (p + centre_offset) / n_phases``; interpolated
lines of several beats are averaged.  Lines whose readouts are far apart in the cycle (sampling that
changes per frame) are assigned only to the phases they were acquired in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BeatTable:
    """Heart beats of one acquisition and which of them are used.

    Attributes:
        r_wave_times_s: ``(n_beats + 1,)`` float64, R-wave times in s, increasing; beat b spans
            ``[r_wave_times_s[b], r_wave_times_s[b + 1])``.
        rr_s: ``(n_beats,)`` float64, R-R interval of each beat in s.
        accepted: ``(n_beats,)`` bool, beats kept for binning.
        median_rr_s: median R-R interval in s (of all beats).
    """

    r_wave_times_s: torch.Tensor
    rr_s: torch.Tensor
    accepted: torch.Tensor
    median_rr_s: float

    def __post_init__(self) -> None:
        n = self.rr_s.shape[0]
        if self.r_wave_times_s.shape != (n + 1,) or self.accepted.shape != (n,):
            raise ValueError("r_wave_times_s must have one more entry than rr_s and accepted")
        if n and bool((self.rr_s <= 0).any()):
            raise ValueError("R-wave times must be strictly increasing")

    @property
    def n_rejected(self) -> int:
        """Number of rejected beats."""
        return int((~self.accepted).sum())


def build_beat_table(r_wave_times_s: torch.Tensor, rr_tolerance_percent: float) -> BeatTable:
    """Beats from R-wave times; reject beats whose R-R deviates from the median by more than the tolerance."""
    times = torch.unique(r_wave_times_s.to(torch.float64).flatten())
    if times.numel() < 2:
        raise ValueError(f"need at least two R-waves to form a beat, got {times.numel()}")
    rr = times[1:] - times[:-1]
    median = float(rr.median())
    accepted = (rr - median).abs() <= rr_tolerance_percent / 100.0 * median
    table = BeatTable(r_wave_times_s=times, rr_s=rr, accepted=accepted, median_rr_s=median)
    log.info("%d beats, median RR %.1f ms, %d rejected", rr.numel(), 1e3 * median, table.n_rejected)
    return table


def cardiac_phase_fraction(
    readout_times_s: torch.Tensor, beats: BeatTable
) -> tuple[torch.Tensor, torch.Tensor]:
    """Beat index and phase fraction in [0, 1) of each readout; beat index −1 outside every beat."""
    t = readout_times_s.to(torch.float64)
    beat = torch.searchsorted(beats.r_wave_times_s, t, right=True) - 1
    inside = (beat >= 0) & (beat < beats.rr_s.numel())
    safe = beat.clamp(0, max(beats.rr_s.numel() - 1, 0))
    fraction = (t - beats.r_wave_times_s[safe]) / beats.rr_s[safe]
    return torch.where(inside, beat, torch.full_like(beat, -1)), fraction.clamp(0.0, 1.0 - 1e-12)


@dataclass(frozen=True)
class BinnedKSpace:
    """Lines interpolated to the output cardiac phases.

    Attributes:
        kspace: ``(n_phases, coils, n_ky, n_kx)`` complex, zero where a line was never acquired.
        sampled: ``(n_phases, n_ky)`` bool, lines that received data in each phase.
        phase_fractions: ``(n_phases,)`` float64, phase centres as fractions of the R-R interval.
        n_rejected_beats: beats left out by arrhythmia rejection.
        n_fallback_lines: lines that had no accepted beat and were taken from rejected beats.
    """

    kspace: torch.Tensor
    sampled: torch.Tensor
    phase_fractions: torch.Tensor
    n_rejected_beats: int
    n_fallback_lines: int

    def __post_init__(self) -> None:
        if self.kspace.ndim != 4 or self.sampled.shape != (self.kspace.shape[0], self.kspace.shape[2]):
            raise ValueError("kspace must be (n_phases, coils, n_ky, n_kx) with sampled (n_phases, n_ky)")
        if self.phase_fractions.shape != (self.kspace.shape[0],):
            raise ValueError("phase_fractions must have one entry per phase")


def _readout_groups(
    ky_index: torch.Tensor, beat: torch.Tensor, fraction: torch.Tensor, use: torch.Tensor, n_beats: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sort the used readouts by (line, beat, fraction).

    Returns the readout indices in that order, their keys ``group + fraction``, and per group its
    first index, one-past-last index and k-space line.
    """
    idx = torch.nonzero(use).flatten()
    groups, gid = torch.unique(ky_index[idx] * n_beats + beat[idx], return_inverse=True)
    key = gid.to(torch.float64) + fraction[idx]
    order = torch.argsort(key)
    counts = torch.bincount(gid, minlength=groups.numel())
    end = torch.cumsum(counts, 0)
    return idx[order], key[order], end - counts, end, groups // n_beats


def _bracket(
    key: torch.Tensor,
    first: torch.Tensor,
    end: torch.Tensor,
    g: torch.Tensor,
    t: float,
    max_gap: float,
    max_distance: float,
    across_r_wave: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """For target fraction ``t`` in every group: left/right readout positions (cyclic within the group),
    the weight of the right one and whether the group has data for ``t`` (see :func:`bin_lines`)."""
    right = torch.searchsorted(key, g + t, right=True)
    r_in, l_in = right < end, right - 1 >= first
    r_idx, l_idx = torch.where(r_in, right, first), torch.where(l_in, right - 1, end - 1)
    f_right = key[r_idx] - g + (~r_in).to(torch.float64)
    f_left = key[l_idx] - g - (~l_in).to(torch.float64)
    gap, to_left, to_right = f_right - f_left, t - f_left, f_right - t
    interpolate = gap <= max_gap
    w = torch.where(interpolate, to_left / gap.clamp_min(1e-12), (to_right < to_left).to(torch.float64))
    valid = interpolate | (torch.minimum(to_left, to_right) < max_distance)
    if not across_r_wave:  # hold the beat's first / last readout instead of wrapping to the other end
        wraps = ~(r_in & l_in)
        w = torch.where(wraps, r_in.to(torch.float64), w)
        valid = torch.where(wraps, torch.where(r_in, to_right, to_left) <= max_gap, valid)
    return l_idx, r_idx, w, valid


def bin_lines(
    lines: torch.Tensor,
    ky_index: torch.Tensor,
    readout_times_s: torch.Tensor,
    beats: BeatTable,
    n_phases: int,
    n_ky: int,
    centre_offset: float = 0.5,
    max_gap_phases: float = 2.0,
    across_r_wave: bool = True,
) -> BinnedKSpace:
    """Interpolate readouts ``lines (n_readouts, coils, n_kx)`` with line indices ``ky_index`` to phases.

    For every (line, beat) the readouts are interpolated cyclically over the beat: linearly between the
    bracketing readouts when they are at most ``max_gap_phases`` phase widths apart (segmented
    retrospective cine samples every line throughout the beat), else from the nearest readout if it lies
    within half a phase width, else not at all (sampling that changes from frame to frame, e.g.
    variable-density CS schedules).  Beats are averaged.  Lines with no accepted beat fall back to the
    rejected beats (counted).  Vectorised over lines and beats; one pass per output phase.

    With ``across_r_wave`` False a target before the beat's first readout of a line, or after its last,
    takes that readout (when it is at most ``max_gap_phases`` away) instead of interpolating cyclically
    towards the other end of the beat: the late-diastolic frames then hold no early-systolic data.  Phase
    contrast needs this: ejection starts within ≈ 50 ms of the R-wave, and mixing the bright, fast
    systolic blood into the last frame biases its velocity upwards (the phase of a sum is
    magnitude-weighted).
    """
    if lines.ndim != 3 or ky_index.shape != (lines.shape[0],) or readout_times_s.shape != ky_index.shape:
        raise ValueError("lines must be (n_readouts, coils, n_kx) with one ky index and time per readout")
    beat, fraction = cardiac_phase_fraction(readout_times_s, beats)
    inside = beat >= 0
    accepted = inside & beats.accepted[beat.clamp_min(0)]
    line_accepted = torch.zeros(n_ky, dtype=torch.bool)
    line_accepted[ky_index[accepted]] = True
    use = inside & (accepted | ~line_accepted[ky_index])
    n_fallback = int(torch.unique(ky_index[use & ~line_accepted[ky_index]]).numel())
    targets = (torch.arange(n_phases, dtype=torch.float64) + centre_offset) / n_phases
    out = torch.zeros(
        (n_phases, lines.shape[1], n_ky, lines.shape[2]), dtype=lines.dtype, device=lines.device
    )
    count = torch.zeros((n_phases, n_ky), dtype=torch.float64)
    if bool(use.any()):
        src, key, first, end, group_ky = _readout_groups(
            ky_index, beat, fraction, use, max(beats.rr_s.numel(), 1)
        )
        g = torch.arange(first.numel(), dtype=torch.float64)
        ky_dev = group_ky.to(lines.device)
        for p, t in enumerate(targets.tolist()):
            l_idx, r_idx, w, valid = _bracket(
                key, first, end, g, t, max_gap_phases / n_phases, 0.5 / n_phases, across_r_wave
            )
            wd = (w * valid).to(device=lines.device, dtype=lines.real.dtype)[:, None, None]
            vd = valid.to(device=lines.device, dtype=lines.real.dtype)[:, None, None]
            values = lines[src[l_idx].to(lines.device)] * (vd - wd) + lines[src[r_idx].to(lines.device)] * wd
            out[p].index_add_(1, ky_dev, values.permute(1, 0, 2))
            count[p].index_add_(0, group_ky, valid.to(torch.float64))
    out /= count.clamp_min(1).to(device=lines.device, dtype=lines.real.dtype)[:, None, :, None]
    if n_fallback:
        log.warning("%d k-space lines had no accepted beat; taken from rejected beats", n_fallback)
    return BinnedKSpace(out, count > 0, targets, beats.n_rejected, n_fallback)
