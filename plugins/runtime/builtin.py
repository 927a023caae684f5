"""Generic plugins that belong to no modality."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from plugins.runtime.config import PluginConfig
from plugins.runtime.plugin import MapPlugin


class PassThroughConfig(PluginConfig):
    """PassThrough has one diagnostic parameter."""

    log_every_n_items: int = Field(0, ge=0, description="log a line every N items (0 = never)")


class PassThrough(MapPlugin):
    """Forwards every item unchanged (diagnostics, and the runtime-overhead benchmark)."""

    Config = PassThroughConfig
    accepts = (object,)

    def __init__(self, config: PassThroughConfig, context: Any) -> None:  # type: ignore[override]
        super().__init__(config, context)
        self._count = 0
        self._every = config.log_every_n_items

    def map(self, item: Any) -> Any:
        self._count += 1
        if self._every and self._count % self._every == 0:
            self.log.info("%d items passed", self._count)
        return item
