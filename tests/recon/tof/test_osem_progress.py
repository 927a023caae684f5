"""Long OSEM runs show progress on a terminal, saying what they count (issue 23: petmr ran 20 min silently)."""

from __future__ import annotations

import sys

import pytest

from recon.tof.osem import OSEMSettings, _progress


def test_progress_bar_on_a_terminal_names_what_it_counts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    tick = _progress(3, True, "lung μ trial 2 (0.0180 /cm)")
    for _ in range(3):
        tick()
    assert "lung μ trial 2 (0.0180 /cm)" in capsys.readouterr().err


def test_no_progress_bar_when_stderr_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    tick = _progress(3, True, "OSEM subsets")
    tick()
    assert capsys.readouterr().err == ""
    assert OSEMSettings().progress_label == "OSEM subsets"
