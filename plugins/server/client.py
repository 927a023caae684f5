"""A client of the ISMRMRD-protocol server: sends config, header, data and CLOSE while receiving outputs.

Sending and receiving run concurrently (a sender thread), so a server that streams images back while
data still arrive never deadlocks on full TCP buffers.  With ``realtime`` the items are paced by their
time stamps (2.5 ms ticks), as a scanner would send them.
"""

from __future__ import annotations

import argparse
import io
import logging
import select
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

import ismrmrd

from plugins.io.protocol import (
    TICK_S,
    Close,
    ConfigFile,
    ConfigText,
    MessageReader,
    ProtocolError,
    StreamClosed,
    Text,
    encode_parts,
    exact_reader,
)
from plugins.runtime.items import Report
from plugins.server.stream import ERROR_PREFIX, parse_report_text, send_parts

log = logging.getLogger("reconstream.server.client")
_RECEIVE_BUFFER_BYTES = 1 << 18


@dataclass
class ClientResult:
    """What came back from one session, in arrival order per kind.

    Attributes:
        images: ``ismrmrd.Image`` outputs.
        reports: reports decoded from their JSON TEXT messages.
        texts: other TEXT messages (errors excluded).
        errors: TEXT messages starting ``ERROR [`` (and Gadgetron ERROR messages).
        other: any other decoded output (acquisitions, NDARRAYs, list-mode batches).
        closed: True when the server ended with CLOSE.
        send_error: the error that stopped sending early (e.g. the server closed after an error), or None.
        n_items_sent: data items sent (config, header and CLOSE not counted).
        last_item_sent_s: ``time.monotonic()`` when the last data item had been sent.
        last_output_s: ``time.monotonic()`` when the last output arrived (NaN when none).
        failure_kind: ``tls`` or ``protocol`` when the connection failed that way mid-session, else None.
    """

    images: list[ismrmrd.Image] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    other: list[Any] = field(default_factory=list)
    closed: bool = False
    send_error: str | None = None
    n_items_sent: int = 0
    last_item_sent_s: float = float("nan")
    last_output_s: float = float("nan")
    failure_kind: str | None = None

    def add(self, obj: Any) -> None:
        """File one received object under its kind."""
        self.last_output_s = time.monotonic()
        if isinstance(obj, ismrmrd.Image):
            self.images.append(obj)
        elif isinstance(obj, Text):
            report = parse_report_text(obj.text)
            if report is not None:
                self.reports.append(report)
            elif obj.is_error or obj.text.startswith(ERROR_PREFIX):
                self.errors.append(obj.text)
            else:
                self.texts.append(obj.text)
        else:
            self.other.append(obj)


def config_message(chain: str | ConfigFile | ConfigText) -> ConfigFile | ConfigText:
    """A chain name → CONFIG_FILE; a path to a ``.toml`` file → CONFIG_TEXT with its content."""
    if isinstance(chain, ConfigFile | ConfigText):
        return chain
    path = Path(chain)
    if path.suffix == ".toml" and path.is_file():
        return ConfigText(path.read_text(encoding="utf-8"))
    return ConfigFile(chain)


def _time_stamp(item: Any) -> int | None:
    if isinstance(item, ismrmrd.Acquisition):
        return int(item.acquisition_time_stamp)
    if isinstance(item, ismrmrd.Waveform):
        return int(item.time_stamp)
    return None


class ClientError(RuntimeError):
    """A session could not be had: ``kind`` is ``network``, ``tls`` or ``protocol``; the text is one line
    naming the server and what happened.  ``exit_code`` is the command's exit status for that kind."""

    EXIT_CODES: ClassVar[dict[str, int]] = {"network": 3, "tls": 4, "protocol": 5}

    def __init__(self, kind: str, host: str, port: int, what: str) -> None:
        super().__init__(f"{host}:{port}: {what}")
        self.kind = kind
        self.exit_code = self.EXIT_CODES[kind]


def _tls_reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the server's certificate could not be verified ({exc.verify_message})"
    reason = str(exc.reason or exc).lower().replace("_", " ")
    if "certificate required" in reason or "unknown ca" in reason or "bad certificate" in reason:
        return f"the server refused this client's certificate ({reason})"
    if "wrong version" in reason or "record layer" in reason or "packet length" in reason:
        return f"TLS handshake failed ({reason}): is the server serving TLS on this port?"
    return f"TLS failed ({reason})"


def connect(
    host: str, port: int, tls: ssl.SSLContext | None = None, timeout_s: float = 30.0
) -> socket.socket:
    """A connected (optionally TLS-wrapped) socket; raises :class:`ClientError` saying what failed."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except ConnectionRefusedError:
        raise ClientError(
            "network", host, port, "connection refused (is a reconstream server listening there?)"
        ) from None
    except socket.gaierror as exc:
        raise ClientError("network", host, port, f"unknown host ({exc.strerror})") from None
    except TimeoutError:
        raise ClientError("network", host, port, f"no answer within {timeout_s:g} s") from None
    except OSError as exc:
        raise ClientError("network", host, port, f"cannot connect ({exc.strerror or exc})") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls is None:
        return sock
    try:
        return tls.wrap_socket(sock, server_hostname=host)
    except ssl.SSLError as exc:
        sock.close()
        raise ClientError("tls", host, port, _tls_reason(exc)) from None
    except OSError as exc:
        sock.close()
        raise ClientError("tls", host, port, f"TLS handshake failed ({exc.strerror or exc})") from None


class _Sender(threading.Thread):
    def __init__(
        self,
        sock: socket.socket,
        messages: Iterable[Any],
        result: ClientResult,
        realtime: bool,
        io_lock: threading.Lock | None = None,
    ) -> None:
        super().__init__(name="reconstream-client-sender", daemon=True)
        self.sock, self.messages, self.result, self.realtime = sock, messages, result, realtime
        self.io_lock: AbstractContextManager[Any] = io_lock or nullcontext()
        self.stop = threading.Event()  # set when the server has closed: stop sending

    def run(self) -> None:
        start = time.monotonic()
        first_stamp: int | None = None
        try:
            for obj in self.messages:
                stamp = _time_stamp(obj)
                if self.realtime and stamp is not None:
                    first_stamp = stamp if first_stamp is None else first_stamp
                    delay = start + (stamp - first_stamp) * TICK_S - time.monotonic()
                    if delay > 0:
                        self.stop.wait(delay)
                if self.stop.is_set():
                    return
                parts = [obj] if isinstance(obj, bytes) else encode_parts(obj)
                with self.io_lock:
                    send_parts(self.sock, parts)
                if not isinstance(obj, bytes | ConfigFile | ConfigText | Close) and not _is_header(obj):
                    self.result.n_items_sent += 1
                    self.result.last_item_sent_s = time.monotonic()
        except OSError as exc:
            self.result.send_error = f"{type(exc).__name__}: {exc}"


def _is_header(obj: Any) -> bool:
    return type(obj).__name__ == "ismrmrdHeader"


def _locked_recv(sock: ssl.SSLSocket, io_lock: threading.Lock) -> Callable[[int], bytes]:
    def recv(n: int) -> bytes:
        while True:
            if not sock.pending():
                select.select([sock], [], [], 0.05)
            with io_lock:
                if not (sock.pending() or select.select([sock], [], [], 0)[0]):
                    continue
                timeout = sock.gettimeout()
                sock.settimeout(0.0)  # readable may mean only TLS records (session tickets): never block here
                try:
                    return sock.recv(n)
                except ssl.SSLWantReadError:
                    continue
                finally:
                    sock.settimeout(timeout)

    return recv


def exchange(sock: socket.socket, messages: Iterable[Any], realtime: bool = False) -> ClientResult:
    """Send ``messages`` (objects or raw bytes) on ``sock`` while collecting replies until CLOSE or EOF."""
    result = ClientResult()
    # OpenSSL state is shared by reads and writes: with TLS the sender and the reader take one lock,
    # and the reader only takes it when bytes are waiting (so it never blocks the sender).
    io_lock: threading.Lock | None = None
    recv: Callable[[int], bytes] = sock.recv
    if isinstance(sock, ssl.SSLSocket):
        io_lock = threading.Lock()
        recv = _locked_recv(sock, io_lock)
    sender = _Sender(sock, messages, result, realtime, io_lock)
    sender.start()
    if io_lock is None:  # buffered: one recv per chunk of messages, samples copied straight into their arrays
        with cast(io.BufferedReader, sock.makefile("rb", buffering=_RECEIVE_BUFFER_BYTES)) as stream:
            collect_replies(stream.read, result, stream.readinto)
    else:
        collect_replies(recv, result)
    sender.stop.set()
    sender.join()
    return result


def collect_replies(
    recv: Callable[[int], bytes], result: ClientResult, readinto: Callable[[memoryview], int] | None = None
) -> ClientResult:
    """Read server messages with ``recv`` (and ``readinto`` when given: payloads straight into their arrays)
    into ``result`` until CLOSE, EOF or a failure (noted in it)."""
    reader = MessageReader(exact_reader(recv, readinto))
    try:
        while True:
            _, obj = reader.next_message()
            if isinstance(obj, Close):
                result.closed = True
                break
            result.add(obj)
    except ssl.SSLError as exc:  # e.g. TLS 1.3: a refused client certificate shows up at the first read
        result.errors.append(f"ERROR [tls]: {_tls_reason(exc)}")
        result.failure_kind = "tls"
    except (StreamClosed, ConnectionError) as exc:
        log.info("the server closed the connection without CLOSE: %s", exc)
    except ProtocolError as exc:
        result.errors.append(f"ERROR [client]: malformed reply: {exc}")
        result.failure_kind = "protocol"
    return result


def send_session(
    host: str,
    port: int,
    chain: str | ConfigFile | ConfigText,
    header: Any,
    items: Iterable[Any],
    realtime: bool = False,
    tls: ssl.SSLContext | None = None,
    timeout_s: float = 300.0,
) -> ClientResult:
    """One complete session: config, header, items, CLOSE; returns everything the server sent back."""

    def messages() -> Iterable[Any]:
        yield config_message(chain)
        if header is not None:
            yield header
        yield from items
        yield Close()

    with connect(host, port, tls, timeout_s) as sock:
        return exchange(sock, messages(), realtime)


def write_result(result: ClientResult, out_dir: Path, header: Any = None) -> dict[str, Any]:
    """Images (``images.h5`` + previews) and reports into ``out_dir``; texts and errors into
    ``server_messages.txt``.  Returns the ``outputs`` record of the provenance (what was written)."""
    from plugins.io.outputs import OutputWriter

    writer = OutputWriter(out_dir, header)
    for item in [*result.images, *result.reports]:
        writer.write(item)
    previews = writer.close()
    lines = [*result.errors, *result.texts]
    (Path(out_dir) / "server_messages.txt").write_text(
        "\n".join(lines) + ("\n" if lines else ""), encoding="utf-8"
    )
    return {
        "n_images": writer.n_images,
        "reports": writer.reports,
        "previews": [p.name for p in previews],
        "unhandled_outputs": [type(o).__name__ for o in result.other],
        "server_messages_file": "server_messages.txt",
    }


def write_send_provenance(
    out_dir: Path,
    chain: str,
    host: str,
    port: int,
    inputs: list[Path],
    result: ClientResult,
    outputs: dict[str, Any],
) -> Path:
    """``provenance.json`` + ``chain.effective.toml`` beside what ``send`` saved, as ``run`` writes them
    (:func:`plugins.io.outputs.write_provenance`).  The effective chain is the one this client resolves for
    the chain name or file it sent; a name the client does not know is recorded as such."""
    from plugins.io.outputs import write_provenance
    from plugins.runtime.chain import ChainConfigError, load_chain

    try:
        spec = load_chain(chain)
        chain_name, chain_toml, resolved = spec.name, spec.effective_toml(), "client (same software version)"
    except (ChainConfigError, FileNotFoundError, ValueError) as exc:
        chain_name, resolved = chain, "server only"
        chain_toml = f"# chain {chain!r} was resolved on the server; this client cannot: {exc}\n"
    session = {
        "server": f"{host}:{port}",
        "chain_resolved_by": resolved,
        "closed": result.closed,
        "n_items_sent": result.n_items_sent,
        "errors": result.errors,
        "send_error": result.send_error,
    }
    return write_provenance(
        out_dir,
        chain_toml,
        chain_name,
        f"server {host}:{port}",
        inputs,
        [],
        outputs,
        extra={"session": session},
    )


def send_file(
    path: Path, chain: str, host: str, port: int, out_dir: Path, tls: ssl.SSLContext | None = None
) -> ClientResult:
    """Send an ISMRMRD file (HDF5 or stream) to a server and save what comes back in ``out_dir``."""
    from plugins.io.ismrmrd_files import open_raw

    raw = open_raw(path)
    result = send_session(host, port, chain, raw.header, raw.items, tls=tls)
    outputs = write_result(result, out_dir, raw.header)
    write_send_provenance(out_dir, chain, host, port, [Path(path)], result, outputs)
    return result


def parse_host_port(text: str, default_port: int = 9002) -> tuple[str, int]:
    """``HOST:PORT`` (or ``HOST``, or ``[v6]:PORT``) → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port:
        return text.strip("[]"), default_port
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise ValueError(f"--to {text!r}: expected HOST:PORT") from None


def stream_simulation(args: argparse.Namespace, cli_module: Any) -> int:
    """``reconstream simulate mr --to HOST:PORT [--chain NAME] [--realtime]``: stream the simulator to a server."""
    import importlib

    simulate_exam = importlib.import_module("hardware_sim.mr").simulate_exam
    host, port = parse_host_port(args.to)
    exam = simulate_exam(cli_module.config_from_args(args))
    chain = args.chain or "cine"
    try:
        result = send_session(host, port, chain, exam.header, exam.items(), realtime=bool(args.realtime))
    except ClientError as exc:
        print(f"reconstream simulate: error: {exc}", file=sys.stderr)
        return exc.exit_code
    for error in result.errors:
        log.error("%s", error)
    print(
        f"{result.n_items_sent} items sent to {host}:{port} (chain {chain!r}); {len(result.images)} images, "
        f"{len(result.reports)} reports, {len(result.errors)} errors back"
    )
    return 0 if result.closed and not result.errors else 1
