"""``reconstream outbox list|retry|purge``: the DICOM delivery outbox.

reconstream outbox list  [--outbox DIR]                     per destination: queued count, last success and
                                                            failure; per study: pending/delivered/failed
reconstream outbox retry [--outbox DIR] [--attempts N]      deliver what is queued (C-STORE), verify studies
                                                            by C-FIND (failed ones again); exit 1 if any fails
reconstream outbox purge --older-than HOURS [--outbox DIR]  drop instances queued longer than that
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_OUTBOX = "out/outbox"


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list", "retry", "purge"])
    p.add_argument("--outbox", default=DEFAULT_OUTBOX, help="outbox folder")
    p.add_argument("--attempts", type=int, default=3, help="delivery attempts per destination (retry)")
    p.add_argument("--backoff-s", type=float, default=1.0, help="first wait between attempts, doubling (s)")
    p.add_argument("--older-than", type=float, metavar="HOURS", help="age limit for purge (hours)")


def main(args: argparse.Namespace) -> int:
    from plugins.io.dicom.delivery import DeliveryError, deliver, verify_studies
    from plugins.io.dicom.outbox import Outbox

    if args.attempts < 1:
        raise ValueError(f"outbox: --attempts must be ≥ 1, got {args.attempts}")
    if args.backoff_s < 0:
        raise ValueError(f"outbox: --backoff-s must be ≥ 0, got {args.backoff_s}")
    outbox = Outbox(Path(args.outbox))
    if args.action == "list":
        for destination in outbox.destinations():
            pending = outbox.pending(destination)
            oldest = f", oldest {pending[0].age_s / 3600:.1f} h" if pending else ""
            studies = len({p.study_uid for p in pending})
            print(f"{destination.label}: {len(pending)} instances in {studies} studies queued{oldest}")
            status = outbox.destination_status(destination)
            for kind in ("success", "failure"):
                if f"last_{kind}_utc" in status:
                    print(f"  last {kind}: {status[f'last_{kind}_utc']} {status[f'last_{kind}']}")
            for study in outbox.studies(destination):
                stored = "?" if study.stored is None else study.stored
                print(
                    f"  study {study.study_uid}: {study.state}, {stored} of {study.expected} instances "
                    f"at the destination ({study.updated_utc}: {study.message})"
                )
        return 0
    if args.action == "purge":
        if args.older_than is None:
            raise ValueError("reconstream outbox purge: give --older-than HOURS")
        print(f"{outbox.purge(args.older_than * 3600.0)} instances purged from {outbox.root}")
        return 0
    failed = 0
    for destination in outbox.destinations():
        try:
            print(deliver(outbox, destination, args.attempts, args.backoff_s).status_line)
            states = verify_studies(outbox, destination, include_failed=True).values()
            for study in states:
                print(f"  study {study.study_uid}: {study.state} ({study.message})")
            failed += any(s.state == "failed" for s in states)
        except DeliveryError as exc:
            print(f"error: {exc}")
            failed += 1
    return 1 if failed else 0
