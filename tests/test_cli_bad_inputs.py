"""Every subcommand, given bad input, answers in one line with a non-zero status and never a traceback.

The walk covers each subcommand of ``reconstream`` (a test fails when a new one is added without bad
inputs here): missing files, files of the wrong kind, unknown chains and keys, impossible option values,
unreachable servers.
"""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest

from plugins.cli import build_parser, main


def _subcommands() -> set[str]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    raise AssertionError("no subcommands")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _bad_inputs(tmp: Path) -> dict[str, list[list[str]]]:
    text = tmp / "notes.txt"
    text.write_text("not raw data\n")
    fake_h5 = tmp / "fake.h5"
    fake_h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)  # an HDF5 signature and nothing behind it
    stream = tmp / "junk.bin"
    stream.write_bytes(b"\x07\x00garbage")
    cut_mrd2 = tmp / "cut.mrd"
    cut_mrd2.write_bytes(
        b'yardl\x01\x00\x00\x00\xd8\xa6\x01{"protocol":{"name":"Mrd"'
    )  # MRD v2 cut in its schema
    missing = str(tmp / "missing.h5")
    port = str(_closed_port())
    return {
        "demo": [["demo", "--device", "tpu"]],
        "run": [
            ["run", "--chain", "cine", "--input", missing, "--out", str(tmp / "o1")],
            ["run", "--chain", "no-such-chain", "--input", str(text), "--out", str(tmp / "o2")],
            ["run", "--chain", "cine", "--input", str(text), "--out", str(tmp / "o3")],
            ["run", "--chain", "cine", "--input", str(fake_h5), "--out", str(tmp / "o4")],
            ["run", "--chain", "cine", "--input", str(stream), "--out", str(tmp / "o5")],
            ["run", "--chain", "cine", "--input", str(text), "--out", str(tmp / "o6"), "--set", "bin.nope=1"],
            ["run", "--chain", "cine", "--input", str(text), "--out", str(tmp / "o7"), "--executor", "dask"],
            [
                "run",
                "--chain",
                "cine",
                "--input",
                str(text),
                "--out",
                str(tmp / "o8"),
                "--ray-address",
                "h:1",
            ],
            [
                "run",
                "--chain",
                "cine",
                "--input",
                str(text),
                "--out",
                str(tmp / "o9"),
                "--executor",
                "ray",
                "--ray-workers",
                "0",
            ],
            [
                "run",
                "--chain",
                "cine",
                "--input",
                str(text),
                "--out",
                str(tmp / "o10"),
                "--executor",
                "ray",
                "--ray-gpus-per-worker",
                "-1",
            ],
        ],
        "chains": [["chains", "show", "no-such-chain"], ["chains", "frobnicate"]],
        "simulate": [
            ["simulate", "mr", "--protocol", "cine", "--field", "7", "--out", str(tmp / "s.h5")],
            ["simulate", "mr", "--protocol", "cine", "--slices", "-2", "--out", str(tmp / "s.h5")],
            ["simulate", "mr", "--protocol", "lge", "--inversion-time", "5000", "--out", str(tmp / "s.h5")],
            [
                "simulate",
                "mr",
                "--protocol",
                "t2star",
                "--myocardial-t2star",
                "-1",
                "--out",
                str(tmp / "s.h5"),
            ],
            ["simulate", "mr", "--protocol", "molli", "--lesion", "tumour", "--out", str(tmp / "s.h5")],
            ["simulate", "pet", "--phantom", "nema", "--scanner", "nowhere", "--out", str(tmp / "p")],
            ["simulate", "petmr", "--counts", "-5", "--out", str(tmp / "pm")],
        ],
        "serve": [
            ["serve", "--port", "70000"],
            ["serve", "--host", "0.0.0.0", "--port", "0"],
            ["serve", "--tls-cert", missing, "--tls-key", missing],
            ["serve", "--journal-key", missing, "--port", "0"],
            ["serve", "--port", "0", "--ray-workers", "3"],
            ["serve", "--port", "0", "--executor", "ray", "--ray-workers", "-1"],
        ],
        "send": [
            ["send", missing, "--chain", "cine", "--out", str(tmp / "o7"), "--port", port],
            ["send", str(text), "--chain", "cine", "--out", str(tmp / "o8"), "--port", port],
            ["send", str(fake_h5), "--chain", "cine", "--out", str(tmp / "o9"), "--port", port],
            ["send", str(fake_h5), "--chain", "cine", "--out", str(tmp / "o9"), "--tls-cert", missing],
        ],
        "replay": [
            ["replay", "no-such-session", "--journal", str(tmp)],
            ["replay", str(tmp), "--journal-key", missing],
        ],
        "journal": [
            ["journal", "list", "--journal", missing],
            ["journal", "verify", "nope", "--journal", str(tmp)],
            ["journal", "keygen", str(text)],
        ],
        "bench": [["bench", "--profile", "enormous"]],
        "report": [["report", missing], ["report", str(tmp)]],
        "sweep": [
            ["sweep", "--chain", "cine", "--grid", "unfold.nope=1,2", "--out", str(tmp / "w1")],
            [
                "sweep",
                "--chain",
                "cine",
                "--grid",
                "bin.n_phases=4",
                "--data",
                missing,
                "--out",
                str(tmp / "w2"),
            ],
            ["sweep", "--chain", "cine", "--grid", "bin.n_phases=4", "--jobs", "0", "--out", str(tmp / "w3")],
            ["sweep", "--chain", "cine", "--grid", "sim.acceleration=0", "--out", str(tmp / "w4")],
            [
                "sweep",
                "--chain",
                "cine",
                "--grid",
                "bin.n_phases=4",
                "--executor",
                "ray",
                "--jobs",
                "2",
                "--out",
                str(tmp / "w5"),
            ],
            [
                "sweep",
                "--chain",
                "cine",
                "--grid",
                "bin.n_phases=4",
                "--ray-address",
                "h:1",
                "--out",
                str(tmp / "w6"),
            ],
        ],
        "compare": [["compare", missing, missing], ["compare", str(tmp), str(text)]],
        "export": [
            ["export", missing, "--out", str(tmp / "e")],
            ["export", str(tmp), "--out", str(tmp / "e")],
        ],
        "outbox": [
            ["outbox", "retry", "--outbox", str(tmp), "--attempts", "-1"],
            ["outbox", "purge-everything"],
        ],
        "convert": [
            ["convert", "twix", missing, "--out", str(tmp / "c1.h5")],
            ["convert", "twix", str(text), "--out", str(tmp / "c2.h5")],
            ["convert", "twix", str(fake_h5), "--out", str(tmp / "c3.h5")],
            ["convert", "mrd2", str(stream), "--out", str(tmp / "c4.h5")],
            ["convert", "mrd2", str(cut_mrd2), "--out", str(tmp / "c5.h5")],
            ["convert", "ismrmrd", str(fake_h5), "--out", str(tmp / "c6.mrd"), "--measurement", "2"],
        ],
        "calibrate": [
            ["calibrate", "pet", "--input", missing, "--reading", missing],
            ["calibrate", "pet", "--input", str(text), "--reading", str(text)],
        ],
    }


def test_every_subcommand_is_walked(tmp_path: Path) -> None:
    assert _subcommands() == set(_bad_inputs(tmp_path))


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_bad_inputs_get_one_line_and_no_traceback(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in _bad_inputs(tmp_path)[command]:
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse: usage line and exit status 2
            status = int(exc.code or 0)
        captured = capsys.readouterr()
        assert status != 0, f"{argv}: exit status 0 for bad input"
        assert "Traceback" not in captured.err + captured.out, f"{argv}: traceback:\n{captured.err}"
        errors = [line for line in captured.err.splitlines() if "error" in line.lower()]
        assert errors, f"{argv}: no error line on stderr: {captured.err!r} {captured.out!r}"
        assert all(len(line) < 600 for line in errors), f"{argv}: error line too long"
