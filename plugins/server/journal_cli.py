"""``reconstream journal list|verify|keygen``: look into the server's session journal.

* ``list [--journal DIR] [--outcome OUTCOME ...]``: one line per session (id, start, outcome, peer, chain,
  bytes, error), oldest first; ``interrupted`` sessions are the ones a crash cut (replay them).
* ``verify SESSION [--journal DIR]``: the files still have the sizes and checksums of the manifest.
* ``keygen FILE``: a new key file (mode 0600) for ``serve --journal-key``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from plugins.server.journal import OUTCOMES, read_manifest, verify_journal
from plugins.server.journal_crypto import write_key_file
from plugins.server.replay import find_session


def configure_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="journal_command", required=True)
    listing = sub.add_parser("list", help="one line per journaled session")
    listing.add_argument("--journal", default="journal", help="journal root (default ./journal)")
    listing.add_argument(
        "--outcome", action="append", choices=OUTCOMES, help="only sessions with this outcome (repeatable)"
    )
    verify = sub.add_parser("verify", help="check a session's files against its manifest")
    verify.add_argument("session", help="a session folder, or a session id inside --journal")
    verify.add_argument("--journal", default="journal", help="journal root (default ./journal)")
    keygen = sub.add_parser("keygen", help="write a new journal encryption key file (0600)")
    keygen.add_argument("file", help="the key file to create (never overwritten)")


def _list(args: argparse.Namespace) -> int:
    root = Path(args.journal)
    if not root.is_dir():
        raise FileNotFoundError(f"journal {root}: no such folder")
    wanted = set(args.outcome or OUTCOMES)
    n = 0
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            manifest = read_manifest(folder)
        except (OSError, ValueError) as exc:
            print(f"{folder.name}  (unreadable manifest: {exc})")
            continue
        if manifest.get("outcome") not in wanted:
            continue
        n += 1
        error = f"  {manifest['error']}" if manifest.get("error") else ""
        if isinstance(manifest.get("replay"), dict):
            error += f"  [replayed: {manifest['replay'].get('outcome')}]"
        print(
            f"{manifest['session_id']}  {manifest.get('started_utc')}  {manifest.get('outcome'):<12} "
            f"{manifest.get('peer')}  chain={manifest.get('chain')}  {manifest['input']['bytes']} bytes{error}"
        )
    print(f"{n} sessions")
    return 0


def main(args: argparse.Namespace) -> int:
    if args.journal_command == "list":
        return _list(args)
    if args.journal_command == "verify":
        folder = find_session(args.session, Path(args.journal))
        ok = verify_journal(folder)
        print(f"{folder.name}: {'intact' if ok else 'DOES NOT MATCH its manifest'}")
        return 0 if ok else 1
    try:
        path = write_key_file(Path(args.file))
    except FileExistsError:
        raise ValueError(f"journal keygen: {args.file} exists; not overwritten") from None
    print(
        f"wrote a new journal key to {path} (mode 0600); keep a copy: without it the journal cannot be read"
    )
    return 0
