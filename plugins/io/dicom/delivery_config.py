"""The ``[delivery]`` settings of a chain file or of the server: where DICOM results go, through which outbox.

In a chain TOML (``reconstream run`` and every server session running that chain)::

    [delivery]
    outbox = "out/outbox"          # durable outbox folder (default out/outbox)
    attempts = 3                   # delivery passes before giving up for now (data stay queued)
    backoff_s = 1.0                # first wait between passes, doubling
    [[delivery.destination]]
    ae_title = "PACS"
    host = "10.0.0.5"
    port = 11112
    tls = true                     # DICOM over TLS (optional tls_ca_file, tls_cert_file, tls_key_file)

``reconstream run --deliver AE@HOST:PORT --outbox DIR`` and ``reconstream serve --deliver … --outbox …``
give the same settings on the command line (added to those of the chain).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from plugins.io.dicom.outbox import DicomDestination

DEFAULT_OUTBOX = Path("out/outbox")


class DeliveryConfig(BaseModel):
    """Where a run's or a server session's DICOM goes (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    destination: tuple[DicomDestination, ...] = Field(
        default=(), description="DICOM nodes receiving every series by C-STORE"
    )
    outbox: Path = Field(default=DEFAULT_OUTBOX, description="durable outbox folder")
    attempts: int = Field(default=3, ge=1, le=20, description="delivery passes before leaving data queued")
    backoff_s: float = Field(default=1.0, ge=0.0, le=600.0, description="first wait between passes (s)")
    timeout_s: float = Field(default=10.0, gt=0.0, le=600.0, description="network timeout per step (s)")
    retry_interval_s: float = Field(
        default=30.0, gt=0.0, le=86400.0, description="server: seconds between retries of queued data"
    )

    def with_destinations(self, texts: Iterable[str], outbox: str | Path | None = None) -> DeliveryConfig:
        """These settings plus ``AE@HOST:PORT`` destinations (and another outbox folder, when given)."""
        added = tuple(DicomDestination.parse(t) for t in texts)
        known = {d.label for d in self.destination}
        merged = self.destination + tuple(d for d in added if d.label not in known)
        update: dict[str, Any] = {"destination": merged}
        if outbox is not None:
            update["outbox"] = Path(outbox)
        return self.model_copy(update=update)


def parse_delivery(raw: Any, source: str) -> DeliveryConfig:
    """Validate a ``[delivery]`` table; ``ValueError`` naming ``source``, the key, the value and the reason."""
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: [delivery] must be a table, got {raw!r}")
    try:
        return DeliveryConfig.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            key = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                allowed = (
                    DicomDestination.model_fields if "destination" in key else DeliveryConfig.model_fields
                )
                problems.append(f"unknown key {key!r}; allowed: {', '.join(allowed)}")
            else:
                problems.append(f"key {key!r} = {err.get('input')!r}: {err['msg']}")
        raise ValueError(f"{source}: [delivery]: " + "; ".join(problems)) from None
