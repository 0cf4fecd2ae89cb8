"""Bad input, counted in full and reported at a bounded rate.

Every violation is counted by reason (`EngineCounters.drops`/`.malformed`, what a metric
reads). Only a few become `ProtocolViolation` events: a token bucket lets `burst` through
and then `rate` per second; the rest are tallied by reason and by source and come out as
one `ViolationsSuppressed` summary per `interval`. So a flood of garbage costs the caller a
handful of events (and log lines) however fast it arrives.

Undecryptable traffic (no installed key opens it, or plaintext while we encrypt) is also
evidence that someone nearby runs with another key: `UndecryptableSources` keeps, for a
bounded number of source IPs, how much came and when, and says when a source is new so the
engine emits one `UndecryptableTraffic` event for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from gossip.actions import Address
from gossip.events import DropReason, ProtocolViolation, ViolationsSuppressed

__all__ = ["SourceEvidence", "UndecryptableSources", "ViolationReporter"]

_MAX_SOURCES = 64
"""Distinct sources a summary tallies (the rest are counted under "other")."""


class ViolationReporter:
    """Rate limit for violation events, with a periodic summary of what it held back."""

    def __init__(self, rate: float = 1.0, burst: int = 10, interval: float = 10.0) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._interval = interval
        self._tokens = float(burst)
        self._at = 0.0
        self._since: float | None = None
        self._counts: dict[DropReason, int] = {}
        self._sources: dict[str, int] = {}

    def report(
        self, reason: DropReason, detail: str, src: Address | None, now: float
    ) -> ProtocolViolation | None:
        """The event to emit for this violation, or None if it is held for the summary."""
        self._tokens = min(self._tokens + (now - self._at) * self._rate, self._burst)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return ProtocolViolation(reason, detail[:200], src, now)
        if self._since is None:
            self._since = now
        self._counts[reason] = self._counts.get(reason, 0) + 1
        ip = src[0] if src is not None else ""
        if ip in self._sources or len(self._sources) < _MAX_SOURCES:
            self._sources[ip] = self._sources.get(ip, 0) + 1
        else:
            self._sources["other"] = self._sources.get("other", 0) + 1
        return None

    def next_deadline(self) -> float | None:
        """When the pending summary is due (None when nothing was held back)."""
        return None if self._since is None else self._since + self._interval

    def summary(self, now: float) -> ViolationsSuppressed | None:
        """The summary of held-back violations once `interval` has passed since the first."""
        if self._since is None or now < self._since + self._interval:
            return None
        counts = tuple(sorted(self._counts.items()))
        top = sorted(self._sources.items(), key=lambda kv: (-kv[1], kv[0]))[:8]
        event = ViolationsSuppressed(counts, tuple(top), self._since, now)
        self._since = None
        self._counts = {}
        self._sources = {}
        return event


@dataclass(slots=True)
class SourceEvidence:
    """Undecryptable input from one IP."""

    count: int
    first: float
    last: float


class UndecryptableSources:
    """Source IPs that sent what we cannot decrypt (bounded; the stalest is forgotten)."""

    def __init__(self, max_sources: int = 256, quiet: float = 60.0) -> None:
        self._max = max_sources
        self._quiet = quiet
        self._by_ip: dict[str, SourceEvidence] = {}

    def note(self, ip: str, now: float) -> SourceEvidence | None:
        """Record one undecryptable input; the evidence when the source is new (or back
        after `quiet` seconds of silence), else None."""
        ev = self._by_ip.get(ip)
        if ev is not None:
            back = now - ev.last >= self._quiet
            ev.count += 1
            ev.last = now
            return ev if back else None
        if len(self._by_ip) >= self._max:
            stalest = min(self._by_ip, key=lambda k: self._by_ip[k].last)
            del self._by_ip[stalest]
        ev = SourceEvidence(1, now, now)
        self._by_ip[ip] = ev
        return ev

    def since(self, t: float) -> dict[str, SourceEvidence]:
        """Sources heard from at or after `t`."""
        return {ip: ev for ip, ev in self._by_ip.items() if ev.last >= t}
