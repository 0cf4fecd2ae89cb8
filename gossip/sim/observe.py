"""What a simulated run showed: event trace, detection times, false suspicions, load.

The trace is one text line per event, `time node Event member`, so two runs with the same
seed can be compared byte for byte (`digest()`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

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

__all__ = ["Observer"]


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
