"""Transport-independent pieces of a session: handshake, data messages, encoding outputs, error texts.

A session is ``config (CONFIG_FILE | CONFIG_TEXT), HEADER, data…, CLOSE``.  Data are acquisitions,
waveforms, images, NDARRAYs and PET list-mode batches (message 1100); a PET-only session may send its
first list-mode batch without an MR header.  Anything else out of order is a :class:`SessionFailure`.

Outputs are sent as protocol messages; a :class:`~plugins.runtime.items.Report` goes to the client as a
TEXT message holding one JSON object::

    {"type": "report", "filename": "flow_report.json", "media_type": "application/json",
     "source": "flow", "content_base64": "..."}

Errors go to ISMRMRD clients as a TEXT message ``ERROR [plugin]: message`` followed by CLOSE (Gadgetron
peers get message 8 ERROR instead); ``plugin`` is the failing stage's plugin, or ``protocol`` (malformed
or out-of-order input), ``chain`` (unknown or invalid chain), ``server`` (limits, stalls, shutdown).
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ismrmrd
import ismrmrd.xsd
import numpy as np

from plugins.io.protocol import (
    Buffer,
    Close,
    ConfigFile,
    ConfigText,
    MessageId,
    MessageSource,
    ProtocolError,
    StreamClosed,
    Text,
    encode_message,
    encode_parts,
)
from plugins.runtime.chain import (
    ChainConfigError,
    ChainSpec,
    load_chain,
    load_shipped_chain,
    parse_chain,
)
from plugins.runtime.items import Report
from plugins.runtime.pipeline import ChainError
from plugins.server.journal import JournalWriteError

log = logging.getLogger("reconstream.server.stream")

Counter = Callable[[str], None]
ERROR_PREFIX = "ERROR ["


def sanitize(text: str, max_chars: int = 200, quote: bool = False) -> str:
    """A client-supplied string made safe for logs and manifests: characters that are not printable
    (newlines, terminal escapes) written as escapes, at most ``max_chars`` characters kept (the rest
    counted); in single quotes with ``quote``."""
    safe = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    if len(safe) > max_chars:
        safe = f"{safe[:max_chars]}…(+{len(safe) - max_chars} chars)"
    return f"'{safe}'" if quote else safe


class SessionFailure(Exception):
    """A session cannot go on.  ``plugin`` names who failed; ``outcome`` is the journal outcome."""

    def __init__(self, plugin: str, message: str, outcome: str = "failed") -> None:
        super().__init__(message)
        self.plugin = plugin
        self.message = message
        self.outcome = outcome

    def client_text(self) -> str:
        """The TEXT sent to the client: ``ERROR [plugin]: message``."""
        return f"ERROR [{self.plugin}]: {self.message}"


class ClientStalled(ProtocolError):
    """The client sent nothing for longer than the idle timeout."""


def _is_pet_batch(obj: Any) -> bool:
    return type(obj).__name__ == "ListModeBatch"


def message_kind(msg_id: int) -> str:
    """The name of a message id (``ACQUISITION``), or its number for ids this server does not know."""
    try:
        return MessageId(msg_id).name
    except ValueError:
        return str(msg_id)


@dataclass(frozen=True)
class ChainResolver:
    """Which chains a session may ask for.

    Attributes:
        chain_dirs: folders of configured chains (``<dir>/<name>.toml``), searched before the shipped chains.
        default_chain: chain for a session that sends a HEADER without any CONFIG message (None: an error).

    A client may only name configured or shipped chains (never a file on the server, nor one in the
    server's working directory); an inline chain may not name server files or delivery destinations
    (:func:`plugins.runtime.chain.parse_chain` with ``from_network``).  Replay resolves with the same rules.
    """

    chain_dirs: tuple[Path, ...] = ()
    default_chain: str | None = None

    def _by_name(self, name: str) -> ChainSpec:
        stem = name.removesuffix(".xml").removesuffix(".toml")
        if not stem or "/" in stem or "\\" in stem or stem.startswith(".") or len(stem) > 128:
            raise ChainConfigError(
                f"CONFIG_FILE {sanitize(name, 80, quote=True)}: give the name of a configured or shipped chain, not a path"
            )
        for folder in self.chain_dirs:
            candidate = Path(folder) / f"{stem}.toml"
            if candidate.is_file():
                return load_chain(candidate)
        return load_shipped_chain(name)

    def resolve(self, config: ConfigFile | ConfigText | None) -> ChainSpec:
        """The chain a session asked for: a configured or shipped name, inline TOML, or the default."""
        try:
            if isinstance(config, ConfigText):
                return parse_chain(config.text, name="inline", source="CONFIG_TEXT chain", from_network=True)
            if isinstance(config, ConfigFile):
                return self._by_name(config.name)
            if self.default_chain is not None:
                return self._by_name(self.default_chain)
        except ChainConfigError as exc:
            raise SessionFailure("chain", str(exc)) from exc
        raise SessionFailure(
            "protocol",
            "HEADER arrived before any CONFIG_FILE or CONFIG_TEXT message, and this server has no default chain",
        )


@dataclass
class Handshake:
    """What precedes the data: the chain, the header (None for PET-only) and data already read."""

    chain: ChainSpec
    header: Any
    config: ConfigFile | ConfigText | None
    pending: list[Any] = field(default_factory=list)


def read_handshake(
    reader: MessageSource,
    resolver: ChainResolver,
    count: Counter,
    override: ChainSpec | None = None,
    on_chain: Callable[[ChainSpec], None] | None = None,
) -> Handshake:
    """Read config and header (in that order); data before the header is a failure (PET excepted).

    ``override`` replaces whatever chain the config names (used by replay).  ``on_chain`` is called once,
    as soon as the chain is known (the server admits the session and opens its journal there).
    """
    announced = [False]

    def chain_known(spec: ChainSpec) -> ChainSpec:
        if on_chain is not None and not announced[0]:
            announced[0] = True
            on_chain(spec)
        return spec

    config: ConfigFile | ConfigText | None = None
    chain: ChainSpec | None = override
    while True:
        msg_id, obj = reader.next_message()
        count(message_kind(msg_id))
        if isinstance(obj, ConfigFile | ConfigText):
            if config is not None:
                raise SessionFailure("protocol", "a second CONFIG message before the HEADER")
            config = obj
            chain = chain_known(chain or resolver.resolve(config))
        elif isinstance(obj, ismrmrd.xsd.ismrmrdHeader) or _is_pet_batch(obj):
            chain = chain_known(chain or resolver.resolve(config))
            if _is_pet_batch(obj):
                return Handshake(chain, None, config, [obj])
            return Handshake(chain, obj, config)
        elif isinstance(obj, Close):
            raise SessionFailure("protocol", "CLOSE arrived before the HEADER: the session has no header")
        elif isinstance(obj, Text):
            log.info("text message of %d characters before the header (ignored)", len(obj.text))
        else:
            raise SessionFailure(
                "protocol",
                f"{message_kind(msg_id)} arrived before the HEADER: send "
                "config, then the ISMRMRD header, then data, then CLOSE",
            )


#: Messages a client may send before its HEADER (a PET-only session's first list-mode batch is its header).
HANDSHAKE_MESSAGES = frozenset(
    {
        MessageId.CONFIG_FILE,
        MessageId.CONFIG_TEXT,
        MessageId.HEADER,
        MessageId.CLOSE,
        MessageId.TEXT,
        MessageId.ERROR,
        MessageId.PET_LISTMODE,
    }
)
#: Messages a client may send after its HEADER whatever the chain (scanners stream physiology always).
ALWAYS_ALLOWED_DATA = frozenset({MessageId.CLOSE, MessageId.TEXT, MessageId.ERROR, MessageId.WAVEFORM})
_ITEM_TYPE_OF_MESSAGE = {
    MessageId.ACQUISITION: "Acquisition",
    MessageId.IMAGE: "Image",
    MessageId.NDARRAY: "ndarray",
    MessageId.PET_LISTMODE: "ListModeBatch",
}


def chain_accepts(chain: ChainSpec, msg_id: int) -> bool:
    """True when some stage of ``chain`` handles the item a data message ``msg_id`` decodes to."""
    type_name = _ITEM_TYPE_OF_MESSAGE.get(MessageId(msg_id)) if msg_id in _ITEM_TYPE_OF_MESSAGE else None
    if type_name is None:
        return msg_id in ALWAYS_ALLOWED_DATA
    for stage in chain.stages:
        for accepted in stage.plugin_class.accepts:
            if accepted is object or type_name in {c.__name__ for c in accepted.__mro__}:
                return True
    return False


def accepted_kinds(chain: ChainSpec) -> list[str]:
    """Names of the data messages ``chain`` handles (for error texts)."""
    return [MessageId(m).name for m in _ITEM_TYPE_OF_MESSAGE if chain_accepts(chain, m)]


def data_messages(reader: MessageSource, count: Counter) -> Iterator[Any]:
    """Yield data items until CLOSE; TEXT and QUERY are logged and skipped; out-of-order messages fail."""
    while True:
        msg_id, obj = reader.next_message()
        count(message_kind(msg_id))
        if isinstance(obj, Close):
            return
        if isinstance(obj, Text):
            if obj.is_error:
                raise SessionFailure("protocol", "the client sent an ERROR message", outcome="failed")
            log.info("text message of %d characters from the client (ignored)", len(obj.text))
            continue
        if isinstance(obj, ConfigFile | ConfigText | ismrmrd.xsd.ismrmrdHeader):
            raise SessionFailure("protocol", f"{message_kind(msg_id)} after the data started")
        yield obj


def report_text(report: Report) -> Text:
    """A Report as the JSON TEXT message documented in this module."""
    body = {
        "type": "report",
        "filename": report.filename,
        "media_type": report.media_type,
        "source": report.source,
        "content_base64": base64.b64encode(report.content).decode("ascii"),
    }
    return Text(json.dumps(body))


def parse_report_text(text: str) -> Report | None:
    """The inverse of :func:`report_text`; None when ``text`` is not a report."""
    if not text.startswith("{"):
        return None
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(body, dict) or body.get("type") != "report":
        return None
    return Report(
        body["filename"], base64.b64decode(body["content_base64"]), body["media_type"], body.get("source", "")
    )


def encode_output_parts(item: Any) -> tuple[str, list[Buffer]] | None:
    """(kind, message in parts) for one chain output (an acquisition's samples are views, not copies:
    :func:`~plugins.io.protocol.encode_parts`); None (and a warning) for a type with no message."""
    if isinstance(item, Report):
        return "REPORT", [encode_message(report_text(item))]
    if isinstance(item, str):
        return "TEXT", [encode_message(Text(item))]
    if isinstance(
        item, ismrmrd.Image | ismrmrd.Acquisition | ismrmrd.Waveform | np.ndarray | Text
    ) or _is_pet_batch(item):
        parts = encode_parts(item)
        return message_kind(int.from_bytes(bytes(parts[0][:2]), "little")), parts
    log.warning("output of type %s has no protocol message; not sent", type(item).__name__)
    return None


def encode_output(item: Any) -> tuple[str, bytes] | None:
    """(kind, message bytes) for one chain output; None (and a warning) for a type with no message."""
    encoded = encode_output_parts(item)
    return None if encoded is None else (encoded[0], b"".join(encoded[1]))


def send_parts(sock: socket.socket, parts: Sequence[Buffer]) -> None:
    """Send a message given in parts without joining them (``sendmsg``; TLS sockets get one joined buffer).
    Like ``sendall``, raises when the peer does not take the bytes within the socket's timeout."""
    if isinstance(sock, ssl.SSLSocket) or len(parts) == 1:
        sock.sendall(parts[0] if len(parts) == 1 else b"".join(parts))
        return
    views = [memoryview(p).cast("B") for p in parts if memoryview(p).nbytes]
    while views:
        n = sock.sendmsg(views)
        while views and n >= views[0].nbytes:
            n -= views[0].nbytes
            views.pop(0)
        if n:
            views[0] = views[0][n:]


def failure_from(exc: BaseException) -> SessionFailure:
    """Map any error of a session to the failure reported to the client and written to the journal."""
    if isinstance(exc, SessionFailure):
        return exc
    if isinstance(exc, ChainError):
        cause = exc.__cause__
        if exc.stage == "input" and cause is not None:
            return failure_from(cause)
        return SessionFailure(exc.plugin, str(exc))
    if isinstance(exc, ClientStalled):
        return SessionFailure("server", str(exc), outcome="disconnected")
    if isinstance(exc, StreamClosed):
        return SessionFailure(
            "protocol", f"the client disconnected mid-stream: {exc}", outcome="disconnected"
        )
    if isinstance(exc, ProtocolError):
        return SessionFailure("protocol", str(exc))
    if isinstance(exc, ChainConfigError):
        return SessionFailure("chain", str(exc))
    if isinstance(exc, JournalWriteError):
        return SessionFailure(
            "server", f"the journal could not be written ({exc.strerror}); the session was stopped"
        )
    if isinstance(exc, ConnectionError):
        return SessionFailure(
            "server", f"the client disconnected (connection lost: {exc})", outcome="disconnected"
        )
    return SessionFailure("server", f"internal error: {type(exc).__name__}: {exc}")
