"""Any reconstream chain as a Gadgetron external Python node.

In a Gadgetron stream configuration::

    <external>
      <execute name="plugins.server.gadgetron_node" target="run_chain" type="python"/>
      <configuration>
        <property name="chain" value="cine"/>                 <!-- a shipped chain or a .toml path -->
        <!-- or <property name="chain_toml" value="...TOML text..."/> -->
        <property name="recon.n_iterations" value="20"/>      <!-- any STAGE.KEY: an override -->
        <property name="device" value="auto"/>
      </configuration>
    </external>

Gadgetron then runs ``python -m gadgetron PORT plugins.server.gadgetron_node run_chain``; the ``gadgetron``
package connects back, reads the CONFIG and HEADER messages and hands us its ``Connection``.  From there
this adapter works around the package's known gaps instead of patching it:

* data are read with reconstream's defensive parser on the raw socket (the package's reader loops forever
  when the peer closes mid-message, allocates whatever a header announces, and silently stops at message
  ids it does not know, e.g. TEXT, NDARRAY or PET list-mode 1100);
* outputs are written with reconstream's encoder (no numpy-2 ``copy=False`` conversions);
* a failure is sent to Gadgetron as message 8 ERROR (the package never sends one), then the package's
  ``Connection`` closes with CLOSE as usual;
* the header is re-parsed from the raw bytes as UTF-8 whatever its declaration says.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from typing import Any

from plugins.io.ismrmrd_files import parse_header
from plugins.io.protocol import MessageReader, ProtocolLimits, exact_reader
from plugins.runtime.chain import ChainSpec, load_chain, parse_chain
from plugins.runtime.pipeline import Pipeline
from plugins.runtime.plugin import ChainContext
from plugins.server.stream import SessionFailure, data_messages, encode_output, failure_from
from recon.common.device import resolve_device

log = logging.getLogger("reconstream.server.gadgetron")
_RESERVED = ("chain", "chain_toml", "device")


def node_properties(config_xml: Any) -> dict[str, str]:
    """``{name: value}`` of every ``<property>`` in the node's configuration (an ElementTree or None)."""
    if config_xml is None:
        return {}
    return {str(p.get("name")): str(p.get("value", "")) for p in config_xml.iter("property") if p.get("name")}


def chain_from_properties(props: dict[str, str]) -> ChainSpec:
    """The chain named (``chain``) or given inline (``chain_toml``), with ``STAGE.KEY`` overrides."""
    overrides = [f"{k}={v}" for k, v in props.items() if k not in _RESERVED and "." in k]
    if props.get("chain_toml"):
        return parse_chain(
            props["chain_toml"],
            name="gadgetron-inline",
            source="Gadgetron property chain_toml",
            overrides=overrides,
        )
    if props.get("chain"):
        return load_chain(props["chain"], overrides)
    raise SessionFailure(
        "chain",
        "the Gadgetron node configuration names no chain: add "
        '<property name="chain" value="NAME"/> or a chain_toml property',
    )


def send_gadgetron_error(write: Any, text: str) -> None:
    """Gadgetron message 8 ERROR: uint16 id, uint64 length, UTF-8 text."""
    body = text.encode("utf-8")
    write(struct.pack("<HQ", 8, len(body)) + body)


def _items(reader: MessageReader) -> Iterator[Any]:
    yield from data_messages(reader, lambda _kind: None)


def serve_connection(connection: Any, limits: ProtocolLimits | None = None) -> int:
    """Run the configured chain over one Gadgetron connection; returns the number of outputs sent."""
    raw_socket = connection.socket.socket
    write = connection.socket.write
    n_sent = 0
    try:
        props = node_properties(connection.config)
        chain = chain_from_properties(props)
        header = parse_header(connection.raw_bytes.header, "Gadgetron HEADER")
        context = ChainContext(
            chain_name=chain.name, device=resolve_device(props.get("device", "auto")), header=header
        )
        reader = MessageReader(exact_reader(raw_socket.recv), limits)
        for output in Pipeline(chain, context).run(_items(reader)):
            encoded = encode_output(output)
            if encoded is not None:
                write(encoded[1])
                n_sent += 1
    except Exception as exc:
        failure = failure_from(exc)
        text = failure.client_text()
        log.error("%s", text)
        try:
            send_gadgetron_error(write, text)
        except OSError as send_exc:
            log.warning("could not send the error to Gadgetron: %s", send_exc)
    return n_sent


def run_chain(connection: Any) -> None:
    """The target named in Gadgetron's ``<execute … target="run_chain"/>``."""
    n_sent = serve_connection(connection)
    log.info("reconstream node done: %d outputs sent", n_sent)
