"""Retrospective binning: known trigger times, arrhythmia rejection, exact interpolation of smooth signals."""

from __future__ import annotations

import math

import pytest
import torch

from recon.cine.binning import bin_lines, build_beat_table, cardiac_phase_fraction


def _r_waves(rr_s: list[float]) -> torch.Tensor:
    return torch.tensor(
        [0.0, *torch.tensor(rr_s, dtype=torch.float64).cumsum(0).tolist()], dtype=torch.float64
    )


def test_ectopic_beat_and_compensatory_pause_are_rejected() -> None:
    rr = [1.0, 1.02, 0.98, 0.55, 1.45, 1.0, 0.99]
    table = build_beat_table(_r_waves(rr), rr_tolerance_percent=20.0)
    assert table.accepted.tolist() == [True, True, True, False, False, True, True]
    assert table.n_rejected == 2
    assert table.median_rr_s == pytest.approx(1.0)


def test_phase_fraction_reproduces_known_trigger_times() -> None:
    table = build_beat_table(_r_waves([0.8, 1.0, 1.2]), rr_tolerance_percent=50.0)
    times = torch.tensor([0.0, 0.4, 0.8 + 0.25, 1.8 + 0.9, 3.5, -0.1], dtype=torch.float64)
    beat, fraction = cardiac_phase_fraction(times, table)
    assert beat.tolist() == [0, 0, 1, 2, -1, -1]
    assert fraction[:4].tolist() == pytest.approx([0.0, 0.5, 0.25, 0.75])


def test_binning_interpolates_a_smooth_periodic_signal() -> None:
    """Each line's value follows exp(2πi f) in the cardiac phase f; binned values must match at the phase centres."""
    rr = [0.9, 1.1, 1.0, 0.95, 0.5, 1.05]  # beat 4 is ectopic and carries corrupted data
    table = build_beat_table(_r_waves(rr), rr_tolerance_percent=25.0)
    n_ky, n_kx, n_coils, tr_s = 4, 3, 2, 0.01
    times, ky, values = [], [], []
    for b, (t0, length) in enumerate(zip(table.r_wave_times_s[:-1].tolist(), rr, strict=True)):
        n = int(length / tr_s)
        for i in range(n):
            f = i / n
            times.append(t0 + i * tr_s)
            ky.append(b % n_ky)
            corrupt = 100.0 if b == 4 else 0.0
            values.append(complex(math.cos(2 * math.pi * f), math.sin(2 * math.pi * f)) + corrupt)
    lines = torch.tensor(values, dtype=torch.complex128)[:, None, None].expand(-1, n_coils, n_kx).contiguous()
    binned = bin_lines(
        lines, torch.tensor(ky), torch.tensor(times, dtype=torch.float64), table, n_phases=10, n_ky=n_ky
    )
    assert binned.sampled.all()
    assert binned.n_rejected_beats == 1
    expected = torch.exp(2j * math.pi * binned.phase_fractions)
    for line in range(n_ky):
        # linear interpolation of a unit circle sampled every ~1/100 of the cycle: error ≤ (2π/100)²/8
        assert torch.allclose(binned.kspace[:, 0, line, 0], expected, atol=6e-3)


def test_lines_without_accepted_beats_fall_back_and_are_counted() -> None:
    table = build_beat_table(_r_waves([1.0, 1.0, 0.4, 1.0]), rr_tolerance_percent=10.0)
    times = torch.tensor([0.1, 0.6, 2.1, 2.3, 3.0], dtype=torch.float64)
    ky = torch.tensor([0, 0, 1, 1, 0])
    lines = torch.ones(5, 1, 2, dtype=torch.complex64)
    binned = bin_lines(lines, ky, times, table, n_phases=4, n_ky=3, max_gap_phases=4.0)
    assert binned.sampled.any(dim=0).tolist() == [True, True, False]
    assert binned.n_fallback_lines == 1
    assert torch.allclose(binned.kspace[:, :, 1], torch.ones(4, 1, 2, dtype=torch.complex64))


def test_lines_acquired_in_one_window_are_assigned_to_that_phase_only() -> None:
    """Variable-density style: line k is read only during phase window k of every beat."""
    n_phases = 5
    table = build_beat_table(_r_waves([1.0] * 4), rr_tolerance_percent=10.0)
    times, ky = [], []
    for b in range(4):
        for line in range(n_phases):
            for i in range(10):  # 10 readouts inside window `line`
                times.append(b + (line + (i + 0.5) / 10) / n_phases)
                ky.append(line)
    lines = (
        torch.ones(len(ky), 1, 2, dtype=torch.complex64)
        * torch.tensor(ky, dtype=torch.complex64)[:, None, None]
    )
    binned = bin_lines(
        lines, torch.tensor(ky), torch.tensor(times, dtype=torch.float64), table, n_phases, n_ky=n_phases
    )
    assert torch.equal(binned.sampled, torch.eye(n_phases, dtype=torch.bool))
    for p in range(n_phases):
        assert torch.allclose(binned.kspace[p, 0, p], torch.full((2,), float(p), dtype=torch.complex64))


@pytest.mark.parametrize("across_r_wave", [True, False])
def test_end_frames_interpolate_across_the_r_wave_only_when_asked(across_r_wave: bool) -> None:
    """A line read every 40 ms at 10, 50, …, 970 ms of a 1 s beat: value 1 in its first 100 ms (early
    systole), 0 after.  A frame at 980 ms lies between the readouts at 970 ms and (cyclically) 1010 ms:
    cyclic interpolation gives ¼, holding the beat's last readout 0; a frame at 5 ms lies between 970 ms
    (cyclically −30 ms) and 10 ms: cyclic ⅞, holding the first readout 1."""
    table = build_beat_table(_r_waves([1.0] * 3), rr_tolerance_percent=10.0)
    offsets = torch.arange(0.01, 1.0, 0.04, dtype=torch.float64)
    times = torch.cat([b + offsets for b in range(3)])
    values = (torch.remainder(times, 1.0) < 0.1).to(torch.complex64)
    lines = values[:, None, None].expand(-1, 1, 2).contiguous()
    ky = torch.zeros(times.numel(), dtype=torch.long)
    late = bin_lines(lines, ky, times, table, n_phases=25, n_ky=1, across_r_wave=across_r_wave)
    early = bin_lines(
        lines, ky, times, table, n_phases=25, n_ky=1, centre_offset=0.125, across_r_wave=across_r_wave
    )
    assert late.sampled.all() and early.sampled.all()
    assert float(late.kspace[-1, 0, 0, 0].real) == pytest.approx(0.25 if across_r_wave else 0.0, abs=1e-6)
    assert float(early.kspace[0, 0, 0, 0].real) == pytest.approx(0.875 if across_r_wave else 1.0, abs=1e-6)
