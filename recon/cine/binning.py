"""Retrospective ECG binning of cine k-space lines, with arrhythmia rejection.

Every readout gets a cardiac-phase fraction ``f = (t − t_R) / RR`` from the time since the last R-wave
normalised by the R-R interval of its own beat.  Beats whose R-R deviates from the median R-R by more
than a tolerance are rejected (ectopic beats and the compensatory pauses after them).  For every k-space
line and every accepted beat that acquired it, the readouts are interpolated linearly (cyclically over
the cardiac cycle) to the output phase centres ``f_p = (p + centre_offset) / n_phases``; interpolated
lines of several beats are averaged.
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
        sampled: ``(n_ky,)`` bool, lines that received data.
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
        if self.kspace.ndim != 4 or self.sampled.shape != (self.kspace.shape[2],):
            raise ValueError("kspace must be (n_phases, coils, n_ky, n_kx) with sampled (n_ky,)")
        if self.phase_fractions.shape != (self.kspace.shape[0],):
            raise ValueError("phase_fractions must have one entry per phase")


def _cyclic_interpolate(fraction: torch.Tensor, lines: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Linear interpolation over a periodic [0, 1) axis: ``lines (m, ...)`` at ``fraction (m,)`` → ``targets``."""
    order = torch.argsort(fraction)
    f, y = fraction[order], lines[order]
    if f.numel() == 1:
        return y.expand(targets.numel(), *y.shape[1:]).clone()
    f_ext = torch.cat([f[-1:] - 1.0, f, f[:1] + 1.0])
    y_ext = torch.cat([y[-1:], y, y[:1]])
    right = torch.searchsorted(f_ext, targets, right=True).clamp(1, f_ext.numel() - 1)
    left = right - 1
    span = (f_ext[right] - f_ext[left]).clamp_min(1e-12)
    w = ((targets - f_ext[left]) / span).to(device=y.device, dtype=y.real.dtype)
    left, right = left.to(y.device), right.to(y.device)
    shape = (-1,) + (1,) * (y.ndim - 1)
    return y_ext[left] * (1 - w).reshape(shape) + y_ext[right] * w.reshape(shape)


def bin_lines(
    lines: torch.Tensor,
    ky_index: torch.Tensor,
    readout_times_s: torch.Tensor,
    beats: BeatTable,
    n_phases: int,
    n_ky: int,
    centre_offset: float = 0.5,
) -> BinnedKSpace:
    """Interpolate readouts ``lines (n_readouts, coils, n_kx)`` with line indices ``ky_index`` to phases."""
    if lines.ndim != 3 or ky_index.shape != (lines.shape[0],) or readout_times_s.shape != ky_index.shape:
        raise ValueError("lines must be (n_readouts, coils, n_kx) with one ky index and time per readout")
    beat, fraction = cardiac_phase_fraction(readout_times_s, beats)
    targets = (torch.arange(n_phases, dtype=torch.float64) + centre_offset) / n_phases
    out = torch.zeros(
        (n_phases, *lines.shape[1:2], n_ky, lines.shape[2]), dtype=lines.dtype, device=lines.device
    )
    sampled = torch.zeros(n_ky, dtype=torch.bool)
    accepted = beats.accepted[beat.clamp_min(0)] & (beat >= 0)
    n_fallback = 0
    for ky in torch.unique(ky_index).tolist():
        on_line = ky_index == ky
        use = on_line & accepted
        if not bool(use.any()):
            use = on_line & (beat >= 0)
            n_fallback += 1
            if not bool(use.any()):
                continue
        per_beat = []
        for b in torch.unique(beat[use]).tolist():
            sel = use & (beat == b)
            per_beat.append(_cyclic_interpolate(fraction[sel], lines[sel.to(lines.device)], targets))
        out[:, :, ky, :] = torch.stack(per_beat).mean(dim=0)
        sampled[ky] = True
    if n_fallback:
        log.warning("%d k-space lines had no accepted beat; taken from rejected beats", n_fallback)
    return BinnedKSpace(out, sampled, targets, beats.n_rejected, n_fallback)
