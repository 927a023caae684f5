"""Delivery by configuration: a finished run (``reconstream run``) or server session is exported as DICOM,
queued durably in the outbox for every configured destination, then sent.

``run`` delivers in the foreground (:func:`deliver_run`: C-STORE with retries, then a C-FIND count).  The
server queues each session before telling its client the session is over (:func:`queue_run`) and leaves
the sending to one :class:`OutboxWorker` thread, which also retries, at start, whatever an earlier server
process left in the outbox (a crash or ``kill -9`` loses nothing; a resend replaces, the UIDs being
deterministic).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from plugins.io.dicom.delivery import DeliveryError, deliver, send_study, verify_studies
from plugins.io.dicom.delivery_config import DeliveryConfig
from plugins.io.dicom.export import ExportedInstance, export_dicom
from plugins.io.dicom.outbox import DicomDestination, Outbox

log = logging.getLogger(__name__)


def queue_run(run_dir: Path, config: DeliveryConfig, dicom_dir: Path | None = None) -> list[ExportedInstance]:
    """Export ``run_dir`` as DICOM (into ``dicom_dir``, default ``RUN_DIR/dicom``) and put every instance
    in the outbox (fsync'ed) for each destination; returns the instances."""
    instances = export_dicom(Path(run_dir), Path(dicom_dir or Path(run_dir) / "dicom"))
    outbox = Outbox(config.outbox)
    by_study: dict[str, set[str]] = {}
    for i in instances:
        by_study.setdefault(i.study_uid, set()).add(i.sop_uid)
    for destination in config.destination:
        for i in instances:
            outbox.put(destination, i.path, i.study_uid, i.sop_uid)
        for study, sops in by_study.items():  # after the files: a study is never checked before they exist
            outbox.record_queued(destination, study, sops)
    log.info("%s: %d instances queued for %d destinations", run_dir, len(instances), len(config.destination))
    return instances


def deliver_run(run_dir: Path, config: DeliveryConfig, dicom_dir: Path | None = None) -> list[str]:
    """Export, queue and deliver a run to every destination, each verified by C-FIND; returns one status line
    per destination.  Raises :class:`DeliveryError` (one line, naming each failed destination) when any
    destination failed; its instances stay in the outbox."""
    instances = export_dicom(Path(run_dir), Path(dicom_dir or Path(run_dir) / "dicom"))
    files = [(str(i.path), i.study_uid, i.sop_uid) for i in instances]
    outbox = Outbox(config.outbox)
    lines, errors = [], []
    for destination in config.destination:
        try:
            result, counts = send_study(
                outbox, destination, files, config.attempts, config.backoff_s, config.timeout_s
            )
        except DeliveryError as exc:
            errors.append(str(exc))
            continue
        lines.append(
            f"{result.status_line}; verified by C-FIND: {sum(counts.values())} instances in the study"
        )
    if errors:
        raise DeliveryError("; ".join(errors))
    return lines


class OutboxWorker:
    """A thread that sends what the outbox holds for every destination in it: at start (what an earlier
    process left), when :meth:`notify` is called (a session was queued) and every ``retry_interval_s`` while
    anything is left.  A study is marked ``delivered`` in the outbox only once nothing of it is left to send
    and a C-FIND count at the destination matches what was queued for it (:func:`verify_studies`)."""

    def __init__(self, config: DeliveryConfig) -> None:
        self.config = config
        self.outbox = Outbox(config.outbox)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="reconstream-outbox", daemon=True)
        self.last_status: dict[str, str] = {}

    def start(self) -> OutboxWorker:
        self._wake.set()
        self._thread.start()
        return self

    def notify(self) -> None:
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=timeout_s)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.config.retry_interval_s)
            self._wake.clear()
            if not self._stop.is_set():
                self.run_pass()

    def run_pass(self) -> int:
        """One delivery pass over every destination with queued instances or unverified studies; returns
        how many instances are left."""
        left = 0
        for destination in self.outbox.destinations():
            unverified = any(s.state == "pending" for s in self.outbox.studies(destination))
            if self._stop.is_set() or not (self.outbox.pending(destination) or unverified):
                continue
            self.last_status[destination.label] = self._deliver(destination)
            left += len(self.outbox.pending(destination))
        return left

    def _deliver(self, destination: DicomDestination) -> str:
        c = self.config
        try:
            result = deliver(self.outbox, destination, c.attempts, c.backoff_s, c.timeout_s)
            states = verify_studies(self.outbox, destination, c.timeout_s)
        except DeliveryError as exc:
            log.warning("outbox: %s", exc)
            return f"error: {exc}"
        except Exception:  # the worker outlives any one bad instance or destination
            log.exception("outbox %s: delivery to %s failed", self.outbox.root, destination.label)
            return f"error: {destination.label}: internal error (see the server log)"
        done = sum(s.state == "delivered" for s in states.values())
        line = f"{result.status_line}; {done} of {len(states)} studies verified delivered"
        log.info("outbox: %s", line)
        return line
