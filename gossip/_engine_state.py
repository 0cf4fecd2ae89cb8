"""The engine's counters: what went in and out, and what was dropped and why."""

from __future__ import annotations

from dataclasses import dataclass, field

from gossip.errors import MalformedReason
from gossip.events import DropReason

__all__ = ["EngineCounters"]


@dataclass(slots=True)
class EngineCounters:
    """What went in and out, and what was dropped and why."""

    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    messages_in: int = 0
    streams_in: int = 0
    streams_out: int = 0
    stream_bytes_in: int = 0
    stream_bytes_out: int = 0
    probes: int = 0
    probe_failures: int = 0
    refutations: int = 0
    """Times we were accused (suspect/dead about us) and refuted with a new incarnation."""
    stalls: int = 0
    """Ticks that came much later than asked: this member's own loop was stalled."""
    drops: dict[DropReason, int] = field(default_factory=dict)
    malformed: dict[MalformedReason, int] = field(default_factory=dict)

    def drop(self, reason: DropReason) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1
