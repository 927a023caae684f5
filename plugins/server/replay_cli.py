"""``reconstream replay SESSION [--out DIR] [--chain NAME] [--journal DIR]``: re-run a journaled session."""

from __future__ import annotations

import argparse
from pathlib import Path

from plugins.server.journal_crypto import JournalCipher
from plugins.server.replay import find_session, replay_session


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session", help="a session folder, or a session id inside --journal")
    parser.add_argument(
        "--journal", default="journal", help="journal root to look the id up in (default ./journal)"
    )
    parser.add_argument("--out", default=None, help="output folder (default out/replay/<session id>)")
    parser.add_argument(
        "--chain", default=None, help="run this chain instead of the one the session asked for"
    )
    parser.add_argument(
        "--chain-dir",
        action="append",
        default=[],
        help="folder of configured chains, as the server's --chain-dir (repeatable)",
    )
    parser.add_argument(
        "--journal-key", default=None, help="key file of an encrypted journal (as given to serve)"
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")


def main(args: argparse.Namespace) -> int:
    folder = find_session(args.session, Path(args.journal))
    out = Path(args.out) if args.out else Path("out/replay") / folder.name
    result = replay_session(
        folder,
        out,
        chain=args.chain,
        device=args.device,
        chain_dirs=tuple(Path(d) for d in args.chain_dir),
        cipher=JournalCipher(Path(args.journal_key)) if args.journal_key else None,
    )
    match = {True: "identical to", False: "DIFFERENT from", None: "nothing to compare with"}[
        result.matches_journal
    ]
    print(
        f"session {result.session_id}: {result.n_images} images written to {result.out_dir} "
        f"({match} the {result.n_images_journaled} images sent in the session"
        f"{'; the recording was truncated' if result.truncated else ''})"
    )
    from plugins.cli import report_interruption

    return report_interruption(result.summary)
