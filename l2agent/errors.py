"""Errors of the l2agent package.

Two families are kept apart, as the house rules ask: `MalformedInput` is somebody else's
fault (a peer, a Kubernetes object we were handed), `LocalError` is ours or our operator's
(bad configuration files, a missing interface).  `ConfigError` is the `LocalError` every
configuration loader raises; it names the file and line when it knows them.
"""

from __future__ import annotations

__all__ = ["ConfigError", "LocalError", "MalformedInput"]


class LocalError(Exception):
    """Our fault or our operator's: bad configuration, an impossible local state."""


class MalformedInput(ValueError):
    """An input from outside (a peer, an API object) that we cannot use; log, count, carry on."""


class ConfigError(LocalError, ValueError):
    """A configuration object or file that cannot be used.

    `source` is the file (or object reference) at fault and `line` its 1-based line when
    known, so messages read `file.yaml:12: ...` as compilers print them.
    """

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None):
        self.message = message
        self.source = source
        self.line = line
        where = ""
        if source is not None:
            where = f"{source}:{line}: " if line is not None else f"{source}: "
        super().__init__(where + message)
