"""``reconstream report DIR``: one self-contained HTML page for a run folder or a sweep folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from plugins.report import write_report


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="a run folder (provenance.json) or a sweep folder (sweep.json)")


def main(args: argparse.Namespace) -> int:
    print(f"report written to {write_report(Path(args.folder))}")
    return 0
