#!/usr/bin/env python3
"""Fetch the Siemens twix example files published with twixtools into a scratch folder (not committed).

The files are ``example_data/gre.dat`` (2-D GRE, 2 channels, 160 × 160, 3 T Skyra VE11C) and
``example_data/epi.dat`` (2-D EPI with phase-correction scans) of https://github.com/pehses/twixtools
(MIT licence, Copyright (c) 2021 Philipp Ehses), pinned to one commit and checked by SHA-256.

    python scripts/fetch_twix_examples.py                      # download from GitHub
    python scripts/fetch_twix_examples.py --from-git DIR       # take them from a local clone / mirror (.git dir)

They land in ``out/twix_examples/`` (``out/`` is git-ignored) or ``--dest``; the tests
(``tests/plugins/io/test_twix.py``) look there, or in ``$RECONSTREAM_TWIX_EXAMPLES``, and skip with a
reason when the files are absent.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import urllib.request
from pathlib import Path

COMMIT = "ab8210e15ea38b3f35daa945e273acbac3f01d9f"
FILES = {
    "gre.dat": "10ce71c8cba94fb47989fe69d45c86673508f178e8b4c2399e805f27936b01ca",
    "epi.dat": "5311aa6eb58e76ffea5ca5c314299f85a838c7ac35ad5b273cd48863356f3954",
}
URL = "https://raw.githubusercontent.com/pehses/twixtools/{commit}/example_data/{name}"
DEFAULT_DEST = Path(__file__).resolve().parent.parent / "out" / "twix_examples"


def _from_git(git_dir: Path, name: str) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"{COMMIT}:example_data/{name}"],
        check=True,
        capture_output=True,
    ).stdout


def _download(name: str) -> bytes:
    with urllib.request.urlopen(URL.format(commit=COMMIT, name=name), timeout=60) as response:
        return bytes(response.read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="target folder")
    parser.add_argument("--from-git", type=Path, default=None, help="a twixtools git directory to read from")
    args = parser.parse_args(argv)
    args.dest.mkdir(parents=True, exist_ok=True)
    for name, sha256 in FILES.items():
        target = args.dest / name
        if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == sha256:
            print(f"{target}: present")
            continue
        try:
            data = _from_git(args.from_git, name) if args.from_git else _download(name)
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"error: {name}: cannot fetch ({exc})", file=sys.stderr)
            return 1
        if hashlib.sha256(data).hexdigest() != sha256:
            print(f"error: {name}: SHA-256 differs from the pinned file; not written", file=sys.stderr)
            return 1
        target.write_bytes(data)
        print(f"{target}: {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
