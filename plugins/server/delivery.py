"""DICOM delivery of server sessions: the server's ``--deliver``/``--outbox`` settings and a chain's
``[delivery]`` table name the destinations; each session's outputs are saved as a run folder in its journal
folder (``JOURNAL/<session>/run``), exported as DICOM and queued in the outbox before the client gets CLOSE;
one :class:`~plugins.io.dicom.session_delivery.OutboxWorker` per outbox folder sends them (and, at server
start, whatever an earlier server process left there)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plugins.io.dicom.delivery_config import DeliveryConfig
    from plugins.io.dicom.session_delivery import OutboxWorker
    from plugins.io.outputs import OutputWriter
    from plugins.runtime.chain import ChainSpec

log = logging.getLogger("reconstream.server.delivery")


def session_delivery(server: DeliveryConfig | None, chain: ChainSpec) -> DeliveryConfig | None:
    """The settings for one session: the server's, with the chain's destinations added (the server's
    outbox and timing win); the chain's alone when the server has none."""
    if chain.delivery is None or server is None:
        return server if chain.delivery is None else chain.delivery
    known = {d.label for d in server.destination}
    added = tuple(d for d in chain.delivery.destination if d.label not in known)
    return server.model_copy(update={"destination": server.destination + added})


class OutboxWorkers:
    """One :class:`OutboxWorker` per outbox folder, created on first use and stopped together."""

    def __init__(self) -> None:
        self._workers: dict[Path, OutboxWorker] = {}
        self._lock = threading.Lock()

    def for_config(self, config: DeliveryConfig) -> OutboxWorker:
        from plugins.io.dicom.session_delivery import OutboxWorker

        key = Path(config.outbox).resolve()
        with self._lock:
            if key not in self._workers:
                self._workers[key] = OutboxWorker(config).start()
            return self._workers[key]

    def stop(self) -> None:
        with self._lock:
            workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            worker.stop()


def session_writer(folder: Path, header: Any) -> OutputWriter:
    from plugins.io.outputs import OutputWriter

    return OutputWriter(folder / "run", header)


def queue_session(
    writer: OutputWriter, chain: ChainSpec, session_id: str, header: Any, config: DeliveryConfig
) -> int:
    """Close ``writer``'s run folder, export it as DICOM and queue it; returns the number of instances."""
    from plugins.io.dicom.session_delivery import queue_run
    from plugins.io.outputs import write_provenance

    writer.close()
    meas = getattr(getattr(header, "measurementInformation", None), "measurementID", None)
    key = f"measurement:{meas}" if meas else f"server-session:{session_id}"
    outputs = {"n_images": writer.n_images, "reports": writer.reports}
    extra = {"session_key": key, "server_session": session_id}
    write_provenance(writer.out_dir, chain.effective_toml(), chain.name, "server", [], [], outputs, extra)
    if writer.n_images == 0:
        return 0
    return len(queue_run(writer.out_dir, config))
