"""Logging set-up, and an adapter that tags every line with the node (and interface, IP).

One process may host many simulated speakers; without the node tag their lines are useless.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def setup(level: str = "info") -> None:
    """Configure the root logger once, to stderr, at `level` (debug, info, warning, error)."""
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format=_FORMAT, force=True)


class NodeAdapter(logging.LoggerAdapter[logging.Logger]):
    """Appends `node=... ifname=... ip=...` (whichever are set) to each message."""

    def __init__(self, logger: logging.Logger, **context: object) -> None:
        super().__init__(logger, dict(context))

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        extra: Mapping[str, object] = self.extra or {}
        tags = " ".join(f"{k}={v}" for k, v in extra.items() if v is not None)
        return (f"{msg} {tags}" if tags else msg), kwargs

    def bind(self, **context: object) -> NodeAdapter:
        """A child adapter with more context (e.g. ifname=, ip=)."""
        merged = {**dict(self.extra or {}), **context}
        return NodeAdapter(self.logger, **merged)
