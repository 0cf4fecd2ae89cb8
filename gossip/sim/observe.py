"""What a simulated run showed: event trace, detection times, false suspicions, load.

The trace is one text line per event, `time node Event member`, so two runs with the same
seed can be compared byte for byte (`digest()`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

from gossip.engine import EngineCounters
from gossip.events import (
    Event,
    JoinFinished,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberRecovered,
    MemberSuspected,
    MemberUpdated,
    ProtocolViolation,
    UserMessage,
)

__all__ = ["Load", "Observer"]


@dataclass(frozen=True, slots=True)
class Load:
    """What members sent per member per second over a window (UDP; TCP bytes included)."""

    packets: float
    bytes: float
    messages_in: float
    seconds: float


def _totals(c: EngineCounters) -> tuple[int, int, int]:
    return (c.packets_out, c.bytes_out + c.stream_bytes_out, c.messages_in)


def _subject(ev: Event) -> str:
    if isinstance(
        ev,
        MemberJoined
        | MemberUpdated
        | MemberLeft
        | MemberFailed
        | MemberSuspected
        | MemberRecovered,
    ):
        return f"{ev.member.name}@{ev.member.incarnation}"
    if isinstance(ev, UserMessage):
        return ev.data.hex()
    if isinstance(ev, JoinFinished):
        return f"{ev.succeeded}/{len(ev.failed)}"
    if isinstance(ev, ProtocolViolation):
        return ev.reason.name
    return ""


@dataclass
class Observer:
    """Collects events from every simulated node."""

    record_trace: bool = True
    trace: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    failed_at: dict[tuple[str, str], float] = field(default_factory=dict)
    """(observer, failed member) -> first time that observer declared it dead."""
    suspected: list[tuple[float, str, str]] = field(default_factory=list)
    """(time, observer, suspect) for every suspicion started."""
    failed: list[tuple[float, str, str]] = field(default_factory=list)
    """(time, observer, member) for every member declared dead."""

    def record(self, node: str, ev: Event) -> None:
        kind = type(ev).__name__
        self.counts[kind] += 1
        if isinstance(ev, MemberFailed):
            self.failed.append((ev.at, node, ev.member.name))
            self.failed_at.setdefault((node, ev.member.name), ev.at)
        elif isinstance(ev, MemberSuspected):
            self.suspected.append((ev.at, node, ev.member.name))
        if self.record_trace:
            self.trace.append(f"{ev.at:.6f} {node} {kind} {_subject(ev)}")

    _load_mark: tuple[float, list[tuple[int, int, int]]] | None = None

    def mark_load(self, counters: list[EngineCounters], now: float) -> None:
        """Start a load window (pass every member's `engine.counters`)."""
        self._load_mark = (now, [_totals(c) for c in counters])

    def load(self, counters: list[EngineCounters], now: float) -> Load:
        """Per-member, per-second averages since `mark_load`."""
        if self._load_mark is None:
            raise ValueError("mark_load was not called")
        start, before = self._load_mark
        seconds = max(now - start, 1e-9)
        n = max(len(counters), 1)
        after = [_totals(c) for c in counters]
        sums = [sum(a[i] - b[i] for a, b in zip(after, before, strict=True)) for i in range(3)]
        return Load(sums[0] / n / seconds, sums[1] / n / seconds, sums[2] / n / seconds, seconds)

    def digest(self) -> str:
        """SHA-256 of the whole trace: equal digests mean byte-identical traces."""
        h = hashlib.sha256()
        for line in self.trace:
            h.update(line.encode())
            h.update(b"\n")
        return h.hexdigest()

    def false_failures(self, truly_dead: set[str]) -> list[tuple[float, str, str]]:
        """Members declared dead that were not (by the scenario's ground truth)."""
        return [f for f in self.failed if f[2] not in truly_dead]

    def false_suspicions(self, truly_dead: set[str]) -> list[tuple[float, str, str]]:
        return [s for s in self.suspected if s[2] not in truly_dead]

    def detection_times(self, member: str, since: float) -> list[float]:
        """Seconds from `since` until each observer declared `member` dead."""
        return sorted(t - since for (obs, m), t in self.failed_at.items() if m == member)
