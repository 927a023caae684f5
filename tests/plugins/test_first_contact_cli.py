"""Issue 25, command line: simulator option errors name the flag, help states ranges and defaults,
counts in scientific notation, readable top-level help and ``chains show`` without internal sentinels."""

from __future__ import annotations

import argparse

import pytest

from hardware_sim.cli_options import count
from plugins.cli import build_parser, main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--venc", "1.5", "--venc 1.5: allowed 10 to 600 cm/s"),
        ("--coils", "4", "--coils 4: allowed 8 to 32"),
        ("--heart-rate", "300", "--heart-rate 300: allowed 30 to 180 beats/min"),
    ],
)
def test_simulate_mr_out_of_range_names_flag_value_range_unit(
    capsys: pytest.CaptureFixture[str], tmp_path: object, flag: str, value: str, expected: str
) -> None:
    code, _, err = _run(capsys, "simulate", "mr", flag, value, "--out", f"{tmp_path}/x.h5")
    assert code == 2
    assert expected in err
    assert len(err.strip().splitlines()) == 1, err
    for internal in ("validation error", "MRExamConfig", "pydantic", "Traceback", "venc_cm_per_s"):
        assert internal not in err


def test_simulate_petmr_coils_error_names_flag(capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    code, _, err = _run(capsys, "simulate", "petmr", "--coils", "4", "--out", f"{tmp_path}/pm")
    assert code == 2
    assert "--coils 4: allowed 8 to 32" in err and "pydantic" not in err


def _sub_parser(parser: argparse.ArgumentParser, *path: str) -> argparse.ArgumentParser:
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def test_simulate_mr_help_states_the_coil_minimum_and_defaults() -> None:
    text = " ".join(_sub_parser(build_parser(), "simulate", "mr").format_help().split())
    assert "number of receive channels; allowed 8 to 32 (default 16)" in text
    assert "allowed 10 to 600 cm/s (default 150)" in text


@pytest.mark.parametrize("modality", ["pet", "petmr"])
def test_counts_accept_scientific_notation(modality: str) -> None:
    args = build_parser().parse_args(["simulate", modality, "--counts", "1e6", "--out", "x"])
    assert args.counts == 1_000_000


def test_count_parser_rejects_fractions_and_words() -> None:
    assert count("2.5e7") == 25_000_000
    for bad in ("1.5", "many", "-1e3", "inf"):
        with pytest.raises(argparse.ArgumentTypeError):
            count(bad)


def test_top_level_help_has_no_markup_and_options_show_defaults() -> None:
    parser = build_parser()
    assert "``" not in parser.format_help()
    run_help = " ".join(_sub_parser(parser, "run").format_help().split())
    assert "(default auto)" in run_help
    paths = (("demo",), ("run",), ("serve",), ("send",), ("replay",), ("bench",))
    for path in (*paths, ("simulate", "mr"), ("simulate", "pet"), ("simulate", "petmr")):
        sub = _sub_parser(parser, *path)
        formatter = sub._get_formatter()
        for action in sub._actions:
            has_default = action.default not in (None, False, argparse.SUPPRESS) and not action.required
            if action.option_strings and has_default and action.help != argparse.SUPPRESS:
                text = formatter._get_help_string(action) or ""
                assert "default" in text.lower(), (path, action.option_strings)


def test_chains_show_prints_required_or_real_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "chains", "show", "petmr")
    assert code == 0
    assert "PydanticUndefined" not in out
    assert "coils = ['anterior_array']  (default ['anterior_array']" in out
