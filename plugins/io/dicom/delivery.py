"""Delivering outbox instances by C-STORE (pynetdicom) with retries and back-off, and verifying by C-FIND.

An instance leaves the outbox only after the destination answered a success (0x0000) or warning
(0xB000, 0xB006, 0xB007) status; failures keep it there.  A study counts as delivered (its outbox state
``delivered``) only when nothing of it is left to send and a STUDY-level C-FIND returns Number of Study
Related Instances ≥ the number ever queued for it (:func:`verify_studies`); every pass records the
destination's last success or failure in the outbox.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections import defaultdict
from dataclasses import dataclass, field

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    Comprehensive3DSRStorage,
    MRImageStorage,
    PositronEmissionTomographyImageStorage,
)
from pynetdicom import AE

from plugins.io.dicom.outbox import DicomDestination, Outbox, StudyStatus

StudyRootQueryRetrieveInformationModelFind = UID("1.2.840.10008.5.1.4.1.2.2.1")

log = logging.getLogger(__name__)

SUCCESS_STATUSES = {0x0000, 0xB000, 0xB006, 0xB007}


class DeliveryError(RuntimeError):
    """A destination could not be reached or refused the association; the data stay in the outbox."""


@dataclass
class DeliveryResult:
    """What one delivery pass did: ``sent`` instances per study, failures, and what is left queued."""

    destination: str
    sent: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failed: list[str] = field(default_factory=list)
    remaining: int = 0

    @property
    def status_line(self) -> str:
        return (
            f"{self.destination}: {sum(self.sent.values())} delivered, {len(self.failed)} failed, "
            f"{self.remaining} left in the outbox"
        )


def _ae(destination: DicomDestination, timeout_s: float) -> AE:
    ae = AE(ae_title=destination.calling_ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    ae.connection_timeout = timeout_s
    for context in (MRImageStorage, PositronEmissionTomographyImageStorage, Comprehensive3DSRStorage):
        ae.add_requested_context(context)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    return ae


def tls_context(destination: DicomDestination) -> ssl.SSLContext:
    """A client TLS context for ``destination``: the PACS certificate is verified (its CA file, else the
    system's) and its host name checked; a client certificate is presented when configured."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=destination.tls_ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if destination.tls_cert_file:
            context.load_cert_chain(destination.tls_cert_file, destination.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise DeliveryError(f"destination {destination.label}: TLS settings unusable ({exc})") from None
    return context


def _probe(destination: DicomDestination, timeout_s: float) -> None:
    """Open and close a TCP connection first (with the TLS handshake for a TLS destination): a refused or
    unreachable port, or a port that does not speak TLS, is reported by name here, and pynetdicom 3.0.4
    does not get to leak its socket on a refused connection (``transport.connect``)."""
    try:
        with socket.create_connection((destination.host, destination.port), timeout=timeout_s) as sock:
            if destination.tls:
                _tls_handshake(destination, sock)
    except DeliveryError:
        raise
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DeliveryError(f"destination {destination.label}: cannot connect ({reason})") from None


def _tls_handshake(destination: DicomDestination, sock: socket.socket) -> None:
    try:
        with tls_context(destination).wrap_socket(sock, server_hostname=destination.host):
            pass
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
        raise DeliveryError(
            f"destination {destination.label}: TLS handshake failed ({reason}); not sent in clear "
            "(does this port speak DICOM over TLS?)"
        ) from None


def _rejection(assoc: object) -> str:
    rsp = getattr(getattr(assoc, "acceptor", None), "primitive", None)
    try:
        return f"association rejected by the peer ({rsp.result_str}: {rsp.reason_str})"  # type: ignore[union-attr]
    except (AttributeError, KeyError):
        return "association rejected by the peer"


def _associate(destination: DicomDestination, timeout_s: float):  # type: ignore[no-untyped-def]
    _probe(destination, timeout_s)
    tls_args = (tls_context(destination), destination.host) if destination.tls else None
    for _ in range(2):  # a peer that rejects and closes at once is sometimes seen as an abort: ask again
        assoc = _ae(destination, timeout_s).associate(
            destination.host, destination.port, ae_title=destination.ae_title, tls_args=tls_args
        )
        if not assoc.is_aborted:
            break
    if assoc.is_established:
        return assoc
    if assoc.is_rejected:
        reason = _rejection(assoc)
        if "Called AE" in reason:
            reason += f"; is {destination.ae_title!r} its AE title?"
    else:
        reason = "no association (connection refused, aborted or timed out)"
    raise DeliveryError(f"destination {destination.label}: {reason}")


def deliver_once(outbox: Outbox, destination: DicomDestination, timeout_s: float = 10.0) -> DeliveryResult:
    """One pass over the destination's queue in one association; raises :class:`DeliveryError` when no
    association can be made (nothing is removed then)."""
    result = DeliveryResult(destination.label)
    pending = outbox.pending(destination)
    if pending:
        assoc = _associate(destination, timeout_s)
        try:
            for item in pending:
                ds = pydicom.dcmread(item.path)
                status = assoc.send_c_store(ds)
                code = int(status.Status) if status and "Status" in status else None
                if code in SUCCESS_STATUSES:
                    outbox.remove(item)
                    result.sent[item.study_uid] += 1
                else:
                    shown = "no response" if code is None else f"0x{code:04X}"
                    result.failed.append(f"{item.sop_uid}: status {shown}")
                if not assoc.is_established:
                    break
        finally:
            if assoc.is_established:
                assoc.release()
    result.remaining = len(outbox.pending(destination))
    return result


def deliver(
    outbox: Outbox,
    destination: DicomDestination,
    attempts: int = 3,
    backoff_s: float = 1.0,
    timeout_s: float = 10.0,
) -> DeliveryResult:
    """Deliver with up to ``attempts`` passes, waiting ``backoff_s · 2^k`` between them; raises the last
    :class:`DeliveryError` when every attempt failed to associate (data stay in the outbox)."""
    total = DeliveryResult(destination.label)
    error: DeliveryError | None = None
    for attempt in range(attempts):
        try:
            result = deliver_once(outbox, destination, timeout_s)
            error = None
        except DeliveryError as exc:
            error = exc
            log.warning("attempt %d/%d: %s", attempt + 1, attempts, exc)
        else:
            for study, n in result.sent.items():
                total.sent[study] += n
            total.failed = result.failed
            if result.remaining == 0:
                break
        if attempt + 1 < attempts:
            time.sleep(backoff_s * 2**attempt)
    total.remaining = len(outbox.pending(destination))
    if error is not None and not total.sent:
        message = f"{error} after {attempts} attempts; {total.remaining} instances stay in the outbox"
        outbox.note_attempt(destination, False, message)
        raise DeliveryError(message)
    if total.failed:
        outbox.note_attempt(destination, False, f"{total.status_line}; first refusal {total.failed[0]}")
    elif total.sent:
        outbox.note_attempt(destination, True, total.status_line)
    return total


def study_instance_count(destination: DicomDestination, study_uid: str, timeout_s: float = 10.0) -> int:
    """Number of Study Related Instances the destination reports for ``study_uid`` (0 when unknown)."""
    assoc = _associate(destination, timeout_s)
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_uid
    query.NumberOfStudyRelatedInstances = ""
    count = 0
    try:
        for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
            if status and int(status.Status) in (0xFF00, 0xFF01) and identifier is not None:
                count = int(identifier.get("NumberOfStudyRelatedInstances", 0) or 0)
    finally:
        assoc.release()
    return count


def verify_studies(
    outbox: Outbox,
    destination: DicomDestination,
    timeout_s: float = 10.0,
    studies: set[str] | None = None,
    include_failed: bool = False,
) -> dict[str, StudyStatus]:
    """Check by C-FIND every ``pending`` study (also ``failed`` ones with ``include_failed``; only those in
    ``studies`` when given) that has nothing left in the outbox: ``delivered`` when the destination reports
    at least as many instances as were queued for it, else ``failed``; a study with instances still queued
    stays ``pending``.  Returns the resulting states; raises :class:`DeliveryError` when the destination
    cannot be queried (the states are left as they were)."""
    states = ("pending", "failed") if include_failed else ("pending",)
    queued = {q.study_uid for q in outbox.pending(destination)}
    out: dict[str, StudyStatus] = {}
    for study in outbox.studies(destination):
        if studies is not None and study.study_uid not in studies:
            continue
        if study.state in states and study.study_uid not in queued:
            try:
                count = study_instance_count(destination, study.study_uid, timeout_s)
            except DeliveryError as exc:
                outbox.note_attempt(destination, False, f"C-FIND check: {exc}")
                raise
            if count >= study.expected:
                state, message = "delivered", f"verified by C-FIND: {count} of {study.expected} instances"
            else:
                state, message = "failed", f"C-FIND reports {count} of {study.expected} instances"
            outbox.set_study_state(destination, study.study_uid, state, count, message)
            study = outbox.study(destination, study.study_uid) or study
            log.info("%s: study %s %s (%s)", destination.label, study.study_uid, state, message)
        out[study.study_uid] = study
    return out


def send_study(
    outbox: Outbox,
    destination: DicomDestination,
    files: list[tuple[str, str, str]],
    attempts: int = 3,
    backoff_s: float = 1.0,
    timeout_s: float = 10.0,
) -> tuple[DeliveryResult, dict[str, int]]:
    """Queue ``files`` (``(path, study_uid, sop_uid)``) for ``destination``, deliver them, and verify each
    study by C-FIND (:func:`verify_studies`); returns the delivery result and the instance count the
    destination reports per study.

    Raises :class:`DeliveryError` (naming the destination) when it cannot be reached or a study is
    incomplete there; the undelivered instances stay in the outbox for ``reconstream outbox retry``.
    """
    from pathlib import Path

    expected: dict[str, set[str]] = defaultdict(set)
    for path, study, sop in files:
        outbox.put(destination, Path(path), study, sop)
        expected[study].add(sop)
    for study, sops in expected.items():
        outbox.record_queued(destination, study, sops)
    result = deliver(outbox, destination, attempts, backoff_s, timeout_s)
    states = verify_studies(outbox, destination, timeout_s, set(expected))
    short = {s: st for s, st in states.items() if st.state != "delivered"}
    if short:
        raise DeliveryError(
            f"destination {destination.label}: study not complete after delivery "
            + ", ".join(f"{s}: {st.state} ({st.message})" for s, st in short.items())
        )
    return result, {s: int(st.stored or 0) for s, st in states.items()}
