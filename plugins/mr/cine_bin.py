"""Retrospective ECG binning of a slice's readouts to N cardiac phases (ungated data: one frame per repetition)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import torch
from pydantic import Field

from plugins.mr.cine_header import cine_encoding
from plugins.mr.cine_items import CineSliceBinned, CineSliceRaw
from plugins.runtime.config import PluginConfig
from plugins.runtime.items import Report
from plugins.runtime.plugin import ChainContext, Plugin
from recon.cine.binning import BeatTable, BinnedKSpace, bin_lines, build_beat_table


class CineBinConfig(PluginConfig):
    """Parameters of the binning stage."""

    n_phases: int = Field(
        0, ge=0, le=200, description="output cardiac phases (0 = from the header's phase limit, else 25)"
    )
    rr_tolerance_percent: float = Field(
        20.0,
        gt=0.0,
        le=100.0,
        description="reject beats whose R-R deviates from the median by more than this, %",
    )
    phase_centre_offset: float = Field(
        0.5,
        ge=0.0,
        lt=1.0,
        description="output phase p is centred at (p + offset)/n_phases of the R-R interval",
    )
    max_gap_phases: float = Field(
        2.0,
        gt=0.0,
        le=25.0,
        description="interpolate a line between readouts at most this many phase widths apart",
    )
    interpolate_across_r_wave: bool = Field(
        True,
        description="interpolate a line cyclically across the R-wave (True) or hold the beat's first/last "
        "readout (False: no early-systolic data in the last frames, for phase contrast)",
    )
    write_report: bool = Field(
        True, description="emit a JSON report of the beats (rejected count, median RR)"
    )


def _extend_last_beat(r_waves: torch.Tensor, last_readout_s: float, median_rr_s: float) -> torch.Tensor:
    """Close the final beat at last R + median R-R when readouts follow the last known R-wave."""
    if r_waves.numel() >= 1 and last_readout_s >= float(r_waves[-1]):
        return torch.cat([r_waves, r_waves[-1:] + median_rr_s])
    return r_waves


def _slice_r_waves(r_waves: torch.Tensor, first_s: float, last_s: float) -> torch.Tensor:
    """The R-waves that bound the slice's readouts: from the last one at or before ``first_s`` to the first
    one at or after ``last_s`` (beats without readouts are neither binned nor counted as rejected)."""
    start = int(torch.searchsorted(r_waves, torch.tensor([first_s], dtype=r_waves.dtype), right=True)) - 1
    stop = int(torch.searchsorted(r_waves, torch.tensor([last_s], dtype=r_waves.dtype), right=False)) + 1
    return r_waves[max(start, 0) : stop]


def ungated_frames(raw: CineSliceRaw) -> tuple[torch.Tensor, torch.Tensor]:
    """One frame per repetition (lines acquired twice are averaged): k-space and (frames, n_ky) mask."""
    reps = torch.unique(raw.repetition)
    n_coils, n_kx = raw.lines.shape[1:]
    kspace = torch.zeros((reps.numel(), n_coils, raw.n_ky, n_kx), dtype=raw.lines.dtype)
    counts = torch.zeros((reps.numel(), raw.n_ky), dtype=torch.float32)
    frame = torch.searchsorted(reps, raw.repetition)
    kspace.permute(0, 2, 1, 3).index_put_((frame, raw.ky_index), raw.lines, accumulate=True)
    counts.index_put_((frame, raw.ky_index), torch.ones(frame.numel()), accumulate=True)
    kspace /= counts.clamp_min(1)[:, None, :, None].to(kspace.real.dtype)
    return kspace, counts > 0


class CineBin(Plugin):
    """Assigns readouts to cardiac phases by time since the R-wave / R-R, rejects arrhythmic beats, interpolates lines."""

    Config = CineBinConfig
    accepts = (CineSliceRaw,)

    def __init__(self, config: CineBinConfig, context: ChainContext) -> None:  # type: ignore[override]
        super().__init__(config, context)
        self.cfg = config
        enc = cine_encoding(context.header)
        self.n_phases = config.n_phases or (enc.n_phases if enc and enc.n_phases > 1 else 25)
        self.header_phases = enc.n_phases if enc else 0

    def _log_ungated(self, raw: CineSliceRaw, n_frames: int) -> None:
        """Without R-waves every repetition is one frame: expected for ungated data, a warning for a gated
        (cine) acquisition, whose cardiac phases are then averaged into each frame."""
        if self.header_phases > 1:
            self.log.warning(
                "slice %d: no R-wave times are used (trigger_source 'none', or no ECG in the data), so the "
                "%d cardiac phases the header announces are averaged into %d frame(s), one per repetition; "
                "use a cine chain for gated images",
                raw.slice_index,
                self.header_phases,
                n_frames,
            )
        else:
            self.log.info("slice %d: ungated, %d frame(s), one per repetition", raw.slice_index, n_frames)

    def process(self, item: Any) -> Iterable[Any]:
        raw: CineSliceRaw = item
        imaging, calibration = _line_masks(raw)
        if raw.r_wave_times_s.numel() < 2:
            kspace, sampled = ungated_frames(raw)
            self._log_ungated(raw, kspace.shape[0])
            trig = torch.zeros(kspace.shape[0], dtype=torch.float64)
            yield CineSliceBinned(
                raw.slice_index, kspace, sampled, imaging, calibration, trig, 0, raw.reference
            )
            return
        first_s, last_s = float(raw.readout_times_s.min()), float(raw.readout_times_s.max())
        all_r = raw.r_wave_times_s
        median_rr_s = float(
            (all_r[1:] - all_r[:-1]).median()
        )  # over every R-wave known, not only this slice's
        r_waves = _extend_last_beat(_slice_r_waves(all_r, first_s, last_s), last_s, median_rr_s)
        beats = build_beat_table(r_waves, self.cfg.rr_tolerance_percent)
        binned = bin_lines(
            raw.lines, raw.ky_index, raw.readout_times_s, beats, self.n_phases, raw.n_ky,
            centre_offset=self.cfg.phase_centre_offset, max_gap_phases=self.cfg.max_gap_phases,
            across_r_wave=self.cfg.interpolate_across_r_wave,
        )  # fmt: skip
        trig = binned.phase_fractions * beats.median_rr_s * 1e3
        yield CineSliceBinned(
            raw.slice_index, binned.kspace, binned.sampled, imaging, calibration, trig,
            binned.n_rejected_beats, raw.reference,
        )  # fmt: skip
        if self.cfg.write_report:
            yield _beat_report(raw.slice_index, _set_of(raw.reference), beats, binned)


def _line_masks(raw: CineSliceRaw) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n_ky,)`` masks of the imaging-pattern lines and of the calibration lines."""
    calibration = torch.zeros(raw.n_ky, dtype=torch.bool)
    calibration[raw.ky_index[raw.is_calibration]] = True
    imaging = torch.zeros(raw.n_ky, dtype=torch.bool)
    imaging[raw.ky_index[raw.is_imaging]] = True
    return imaging, calibration


def _set_of(reference: Any) -> int:
    """``idx.set`` of a slice's reference readout (0 when unknown)."""
    try:
        return int(reference.idx.set)
    except (AttributeError, TypeError, ValueError):
        return 0


def beat_report_name(slice_index: int, set_index: int) -> str:
    """``cine_beats_slice000.json``; a second encoding of the slice (phase contrast's ``set`` 1, binned by
    its own stage instance) gets ``cine_beats_slice000_set1.json`` so that no report overwrites another."""
    suffix = f"_set{set_index}" if set_index else ""
    return f"cine_beats_slice{slice_index:03d}{suffix}.json"


def _beat_report(slice_index: int, set_index: int, beats: BeatTable, binned: BinnedKSpace) -> Report:
    """JSON side output: beats, rejected beats (arrhythmia) and lines that needed a fallback."""
    report = {
        "slice": slice_index,
        "set": set_index,
        "n_beats": int(beats.rr_s.numel()),
        "n_rejected_beats": beats.n_rejected,
        "rejected_beat_rr_ms": [round(1e3 * float(v), 1) for v in beats.rr_s[~beats.accepted]],
        "median_rr_ms": round(1e3 * beats.median_rr_s, 2),
        "n_fallback_lines": binned.n_fallback_lines,
    }
    return Report(
        beat_report_name(slice_index, set_index), json.dumps(report).encode(), "application/json", "cine_bin"
    )
