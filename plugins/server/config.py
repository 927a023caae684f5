"""Settings of the reconstruction server (what ``reconstream serve`` options set)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from plugins.io.protocol import ProtocolLimits
from plugins.server.retention import RetentionPolicy

if TYPE_CHECKING:
    from plugins.io.dicom.delivery_config import DeliveryConfig
    from plugins.runtime.executor import ExecutorConfig


#: Largest payload of one message a server accepts by default (a list-mode batch is ~1 MB, an image less).
SERVER_MAX_PAYLOAD_BYTES = 256 << 20


@dataclass(frozen=True)
class TLSSettings:
    """Optional TLS for use on a hospital network.

    Attributes:
        cert_file: PEM certificate chain of the server.
        key_file: PEM private key of the server.
        client_ca_file: PEM CA bundle; when given, clients must present a certificate signed by it.
        allowed_subjects: with a client CA, the client certificate subjects allowed to connect (each an
            RFC 4514 string such as ``CN=scanner-3t,O=Radiology``, or a bare common name); empty: any
            certificate the CA signed.
    """

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    allowed_subjects: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("cert_file", "key_file", "client_ca_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"TLS {name}: {path} is not a readable file")
        if self.allowed_subjects and self.client_ca_file is None:
            raise ValueError("TLS allowed client subjects need a client CA (--tls-client-ca)")


@dataclass(frozen=True)
class ServerConfig:
    """Everything one server instance needs.

    Attributes:
        host: interface to bind; loopback unless told otherwise.
        port: TCP port (0 = an ephemeral port, see ``ReconServer.address``); Gadgetron's default is 9002.
        journal_dir: root folder of the session journals.
        limits: protocol size limits checked before any allocation.
        max_connections: sessions served at once; further clients get an error and are closed.
        max_sessions_per_peer: sessions at once from one address (below ``max_connections``, so that one
            address cannot take every slot; above the scanners a gateway or NAT may put behind one address).
        max_pending: connections still in their handshake, in all (the oldest is dropped beyond it).
        max_pending_per_peer: connections in their handshake from one address (the oldest dropped beyond).
        handshake_timeout_s: a connection must finish TLS, config and header within this time.
        max_session_s: the longest a session may last (a client trickling bytes cannot hold a slot forever).
        max_handshake_bytes: largest config, header or text message before the header.
        session_quota_factor: a session may send this many passes of its header's encoding (see
            :func:`plugins.server.admission.session_quota_bytes`).
        min_session_quota_bytes, max_session_bytes: lower and upper bounds of that quota.
        journal_min_free_bytes: new sessions are refused (clear error, alert in the log) below this much
            free space on the journal's disk; running sessions stop below half of it.
        journal_key_file: key file for encryption at rest of the journal (``None``: not encrypted).
        allow_plaintext_network: serve a non-loopback address without TLS (refused unless set).
        replay_interrupted: at start, replay every session a crash interrupted (in the background) into
            ``<session>/replay`` and record the result in its manifest.
        idle_timeout_s: a client that sends nothing for this long is told so and disconnected.
        fsync_interval_s: longest time received bytes stay in the journal without an fsync (checked on write).
        drain_timeout_s: after an error, how long incoming bytes are still read (and journaled) before closing.
        queue_size: bounded queue length between pipeline stages (and from the socket reader).
        device: ``auto``, ``cpu`` or ``cuda[:N]`` for the chains.
        chain_dirs: folders of configured chains a client may name with CONFIG_FILE (before the shipped ones).
        default_chain: chain used when a client sends a HEADER without a CONFIG message (``None``: an error).
        retention: journal retention policy, applied at start and every ``retention_interval_s``.
        retention_interval_s: seconds between retention passes while serving.
        shutdown_grace_s: on shutdown, how long running sessions may take to finish before being interrupted.
        tls: TLS settings, or ``None`` for plain TCP.
        delivery: DICOM destinations and outbox for every session (``None``: only chains with a
            ``[delivery]`` table deliver); its outbox is retried at start.
    """

    host: str = "127.0.0.1"
    port: int = 9002
    journal_dir: Path = Path("journal")
    limits: ProtocolLimits = field(
        default_factory=lambda: ProtocolLimits(max_payload_bytes=SERVER_MAX_PAYLOAD_BYTES)
    )
    max_connections: int = 16
    max_sessions_per_peer: int = 12
    max_pending: int = 64
    max_pending_per_peer: int = 16
    handshake_timeout_s: float = 10.0
    max_session_s: float = 4 * 3600.0
    max_handshake_bytes: int = 4 << 20
    session_quota_factor: float = 16.0
    min_session_quota_bytes: int = 1 << 30
    max_session_bytes: int = 64 << 30
    journal_min_free_bytes: int = 1 << 30
    journal_key_file: Path | None = None
    allow_plaintext_network: bool = False
    replay_interrupted: bool = False
    idle_timeout_s: float = 60.0
    fsync_interval_s: float = 1.0
    drain_timeout_s: float = 2.0
    queue_size: int = 8
    device: str = "auto"
    chain_dirs: tuple[Path, ...] = ()
    default_chain: str | None = None
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    retention_interval_s: float = 3600.0
    shutdown_grace_s: float = 30.0
    tls: TLSSettings | None = None
    delivery: DeliveryConfig | None = None
    executor: ExecutorConfig | None = None  # where the chains' units run (None: in-process)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        for name in (
            "max_connections",
            "queue_size",
            "max_sessions_per_peer",
            "max_pending",
            "max_pending_per_peer",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        for name in (
            "idle_timeout_s",
            "fsync_interval_s",
            "drain_timeout_s",
            "retention_interval_s",
            "handshake_timeout_s",
            "max_session_s",
            "session_quota_factor",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.shutdown_grace_s < 0:
            raise ValueError(f"shutdown_grace_s must be ≥ 0, got {self.shutdown_grace_s}")
        if not self.is_loopback and self.tls is None and not self.allow_plaintext_network:
            raise ValueError(
                f"binding {self.host} without TLS would send patient data in clear text over the network: "
                "give --tls-cert and --tls-key (and --tls-client-ca), or --insecure-plaintext to force it"
            )
        if self.journal_key_file is not None and not Path(self.journal_key_file).is_file():
            raise ValueError(f"journal key file {self.journal_key_file} is not a readable file")

    @property
    def handshake_limits(self) -> ProtocolLimits:
        """Protocol limits before the header: config, header and text at most ``max_handshake_bytes``."""
        return replace(self.limits, max_text_bytes=min(self.limits.max_text_bytes, self.max_handshake_bytes))

    @property
    def is_loopback(self) -> bool:
        """True when the server binds a loopback address only."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False
