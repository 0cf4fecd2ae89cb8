"""Go duration strings (`metav1.Duration`: "90s", "1m30s", "500ms") as seconds, pure.

Kubernetes serialises `metav1.Duration` with Go's `time.ParseDuration` syntax: a sequence of
decimal numbers, each with a unit (ns, us, µs, ms, s, m, h); "0" alone is allowed. BGPPeer
timers use it, so the model needs the same reading.
"""

from __future__ import annotations

import re

from l2agent.errors import ConfigError

__all__ = ["parse_duration"]

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_TERM = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
#: Longest string accepted: bounds the work per input.
_MAX_LEN = 64


def parse_duration(raw: object, where: str) -> float:
    """Seconds in a Go duration string; negative durations and bare numbers are rejected."""
    if not isinstance(raw, str):
        raise ConfigError(f'{where}: {raw!r} is not a duration string such as "90s"')
    text = raw.strip()
    if text == "0":
        return 0.0
    if not text or len(text) > _MAX_LEN:
        raise ConfigError(f'{where}: {raw!r} is not a duration such as "90s"')
    if text[0] in "+-":
        if text[0] == "-":
            raise ConfigError(f"{where}: {raw!r} is negative")
        text = text[1:]
    total = 0.0
    pos = 0
    while pos < len(text):
        m = _TERM.match(text, pos)
        if m is None:
            raise ConfigError(f'{where}: {raw!r} is not a duration such as "90s"')
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total
