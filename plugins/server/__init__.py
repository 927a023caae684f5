"""The ISMRMRD-protocol reconstruction server, its journal, replay, client and Gadgetron adapter.

Modules: :mod:`~plugins.server.server` (TCP server, one thread per connection),
:mod:`~plugins.server.session` (one connection: journal, chain, outputs), :mod:`~plugins.server.stream`
(handshake, data messages, output encoding, error texts — the wire conventions are documented there),
:mod:`~plugins.server.journal` and :mod:`~plugins.server.retention` (no data lost; retention policy),
:mod:`~plugins.server.replay`, :mod:`~plugins.server.client`, :mod:`~plugins.server.gadgetron_node`, and
the command lines ``serve`` (:mod:`~plugins.server.cli`), ``send`` and ``replay``.
"""
