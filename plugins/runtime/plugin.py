"""The plugin protocol (Gadgetron-style stream nodes).

A plugin is a coroutine over its input stream: :meth:`Plugin.run` consumes an iterator of items and
yields items.  The default ``run`` handles only the item types listed in ``accepts`` (through
:meth:`Plugin.process`) and passes every other item straight through, in order; at the end of the
stream it yields whatever :meth:`Plugin.finish` returns (buffered work).  A stateless one-to-one
plugin subclasses :class:`MapPlugin` and writes only :meth:`MapPlugin.map`.

Plugins are discovered through the entry-point group ``reconstream.plugins`` (name → class); nothing is
registered at import time.  A plugin class declares:

* ``Config``: its :class:`~plugins.runtime.config.PluginConfig` subclass;
* ``accepts``: the item types it handles (others pass through);
* a class docstring whose first line is shown by ``reconstream chains show``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from plugins.runtime.config import PluginConfig
from plugins.runtime.executor import LOCAL, Executor, UnitJob, compute_unit


@dataclass(frozen=True)
class ChainContext:
    """What every plugin of one chain run may read.

    Attributes:
        chain_name: name of the chain being run.
        device: torch device resolved once for the run (``auto`` → CUDA when present).
        header: the session's ISMRMRD XML header (``ismrmrd.xsd.ismrmrdHeader``), ``None`` for PET-only input.
        out_dir: folder for side outputs (reports, figures); ``None`` when the run writes nothing to disk.
        extras: further session metadata keyed by name (e.g. a PET scanner description).
        executor: where the plugins' heavy units run (:mod:`plugins.runtime.executor`; default in-process).
    """

    chain_name: str
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    header: Any = None
    out_dir: Path | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)
    executor: Executor = field(default=LOCAL, compare=False, repr=False)


class Plugin:
    """Base class of every stream node.  Subclasses set ``Config`` and ``accepts`` and override
    :meth:`process` (and :meth:`finish` when they buffer), or override :meth:`run` for full control."""

    Config: ClassVar[type[PluginConfig]] = PluginConfig
    accepts: ClassVar[tuple[type, ...]] = ()
    #: items this instance handled (``process`` was called); the runner tells when no stage handled any
    n_accepted: int = 0
    #: set by plugins whose ``process``/``finish`` yield :class:`~plugins.runtime.executor.UnitJob`s (e.g.
    #: ``"cine slice"``): ``run`` hands those to the chain's executor
    unit_kind: ClassVar[str | None] = None

    def __init__(self, config: PluginConfig, context: ChainContext) -> None:
        self.config = config
        self.context = context
        self.log = logging.getLogger(f"reconstream.plugin.{type(self).__name__}")

    def process(self, item: Any) -> Iterable[Any]:
        """Handle one accepted item; return (or yield) zero or more output items."""
        return (item,)

    def finish(self) -> Iterable[Any]:
        """Called once at the clean end of the stream: emit what is still buffered."""
        return ()

    def run(self, items: Iterable[Any]) -> Iterator[Any]:
        """The coroutine: accepted items go through :meth:`process`, others pass straight through; the
        units of a plugin with ``unit_kind`` are computed by the chain's executor, outputs kept in order."""
        if self.unit_kind is None:
            return self._entries(items)
        return self.context.executor.run_units(self, self._entries(items))

    def compute_unit(self, job: UnitJob) -> list[Any]:
        """The outputs of one of this plugin's units, computed here."""
        return compute_unit(self, job)

    def _entries(self, items: Iterable[Any]) -> Iterator[Any]:
        accepts = self.accepts
        for item in items:
            if accepts and isinstance(item, accepts):
                self.n_accepted += 1
                yield from self.process(item)
            else:
                yield item
        yield from self.finish()


class MapPlugin(Plugin):
    """A stateless one-to-one plugin: exactly one output per accepted input."""

    def map(self, item: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def process(self, item: Any) -> Iterable[Any]:
        return (self.map(item),)
