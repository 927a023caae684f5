#!/usr/bin/env python3
"""Fetch real Siemens twix example files into a scratch folder (not committed).

* ``gre.dat`` (2-D GRE, 2 channels, 160 × 160, 3 T Skyra VE11C) and ``epi.dat`` (2-D EPI with phase-correction
  scans): ``example_data/`` of https://github.com/pehses/twixtools (MIT licence, Copyright (c) 2021 Philipp
  Ehses);
* ``pulseq_epi_vb.dat`` (a VB-format single-raid Pulseq EPI, 96 readouts, ending in a short ACQEND block):
  ``tutorials/07_echo_planar_imaging/data/04_03_basic_epi_96x96_pe+.dat`` of
  https://github.com/pulseq/MR-Physics-with-Pulseq (MIT licence, Copyright (c) 2024 pulseq).

Each is pinned to one commit and checked by SHA-256.

    python scripts/fetch_twix_examples.py                                   # download from GitHub
    python scripts/fetch_twix_examples.py --from-git pehses/twixtools=DIR   # from a local clone / mirror (.git dir)

(a bare ``--from-git DIR`` means the twixtools repository).  They land in ``out/twix_examples/`` (``out/`` is
git-ignored) or ``--dest``; the tests (``tests/plugins/io/test_twix.py``) look there, or in
``$RECONSTREAM_TWIX_EXAMPLES``, and skip with a reason when a file is absent.  A file that cannot be had is
named with the reason and the others are still fetched (exit status 1).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Example:
    repo: str
    commit: str
    path: str
    sha256: str


EXAMPLES = {
    "gre.dat": Example(
        "pehses/twixtools",
        "ab8210e15ea38b3f35daa945e273acbac3f01d9f",
        "example_data/gre.dat",
        "10ce71c8cba94fb47989fe69d45c86673508f178e8b4c2399e805f27936b01ca",
    ),
    "epi.dat": Example(
        "pehses/twixtools",
        "ab8210e15ea38b3f35daa945e273acbac3f01d9f",
        "example_data/epi.dat",
        "5311aa6eb58e76ffea5ca5c314299f85a838c7ac35ad5b273cd48863356f3954",
    ),
    "pulseq_epi_vb.dat": Example(
        "pulseq/MR-Physics-with-Pulseq",
        "446ac401ff5b2e1ab4ca5a6d36fc7434a83afd99",
        "tutorials/07_echo_planar_imaging/data/04_03_basic_epi_96x96_pe+.dat",
        "344fe44349b8e1cd800333862b29568e09529743714a3976154e20fe22d50cd6",
    ),
}
URL = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"
DEFAULT_DEST = Path(__file__).resolve().parent.parent / "out" / "twix_examples"


def _from_git(git_dir: Path, example: Example) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"{example.commit}:{example.path}"],
        check=True,
        capture_output=True,
    ).stdout


def _download(example: Example) -> bytes:
    url = URL.format(repo=example.repo, commit=example.commit, path=urllib.parse.quote(example.path))
    with urllib.request.urlopen(url, timeout=60) as response:
        return bytes(response.read())


def _git_dirs(values: list[str]) -> dict[str, Path]:
    dirs = {}
    for value in values:
        repo, sep, folder = value.partition("=")
        dirs.update({repo: Path(folder)} if sep else {"pehses/twixtools": Path(value)})
    return dirs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="target folder")
    parser.add_argument(
        "--from-git",
        action="append",
        default=[],
        metavar="[OWNER/NAME=]DIR",
        help="read that repository's files from a local git directory (repeatable)",
    )
    args = parser.parse_args(argv)
    git_dirs = _git_dirs(args.from_git)
    args.dest.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name, example in EXAMPLES.items():
        target = args.dest / name
        if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == example.sha256:
            print(f"{target}: present")
            continue
        git_dir = git_dirs.get(example.repo)
        source = f"{git_dir}" if git_dir else f"https://github.com/{example.repo}"
        try:
            data = _from_git(git_dir, example) if git_dir else _download(example)
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = (
                exc.stderr.decode(errors="replace").strip()
                if isinstance(exc, subprocess.CalledProcessError)
                else exc
            )
            print(
                f"error: {name}: cannot fetch {example.path} at {example.commit[:12]} from {source} ({detail})",
                file=sys.stderr,
            )
            failed += 1
            continue
        if hashlib.sha256(data).hexdigest() != example.sha256:
            print(
                f"error: {name}: SHA-256 differs from the pinned file ({source}); not written",
                file=sys.stderr,
            )
            failed += 1
            continue
        target.write_bytes(data)
        print(f"{target}: {len(data)} bytes (from {source})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
