"""Who is alive, as the speaker's election sees it: the `Membership` seam and its values.

A membership source tells the speaker about changes as `MembershipChange` values (what
happened, to whom); the speaker asks it `live()` and `ready()` when it replans. Two sources
exist: `StaticMembership` (the Node objects are the members: no gossip) and
`l2agent.speaker.gossip.GossipMembership` (memberlist-compatible gossip).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from l2agent.model.reports import GossipReport, MemberRow

__all__ = [
    "ChangeKind",
    "GossipReport",
    "Membership",
    "MembershipChange",
    "MembershipCounters",
    "OnChange",
    "StaticMembership",
]


class ChangeKind(enum.Enum):
    """What happened to the member list (the value is the word logs use)."""

    JOINED = "joined"  # a member became alive (new, or back from dead)
    UPDATED = "updated"  # a member changed its metadata or recovered from suspicion
    LEFT = "left"  # a member said goodbye (planned handover)
    FAILED = "failed"  # a member was declared dead
    READY = "ready"  # the member list became trustworthy (joined, or alone for long enough)
    UNREADY = "unready"  # it stopped being trustworthy (alone, and peers speak another key)


@dataclass(frozen=True, slots=True)
class MembershipChange:
    """One change of the member list; `member` is None for `READY`."""

    kind: ChangeKind
    member: str | None = None

    def __str__(self) -> str:
        return self.kind.value if self.member is None else f"{self.kind.value}:{self.member}"


OnChange = Callable[[MembershipChange], None]


class MembershipCounters(Protocol):
    """What a membership source reports to metrics (`SpeakerMetrics` is one)."""

    def suspicion_raised(self) -> None:
        """A member entered the suspect state in our table."""

    def suspicion_refuted(self) -> None:
        """We refuted a suspicion about ourselves."""

    def probe_rtt(self, seconds: float) -> None:
        """A direct probe was acked after `seconds`."""


class Membership(Protocol):
    """A source of live members. `start(on_change, counters)` begins it; `on_change` is then
    called on the event loop whenever `live()` or `ready()` may differ."""

    def live(self) -> frozenset[str] | None:
        """Names of live members (alive or suspect); None: take the Node objects."""

    def ready(self) -> bool:
        """False until the member list can be trusted (joined the cluster)."""

    def rows(self) -> list[MemberRow]:
        """The member table, for /status and the member gauges."""

    def health_score(self) -> float:
        """Lifeguard's local health score (0 = healthy; higher = this node is slow)."""

    def input_report(self) -> GossipReport | None:
        """Refused or violating gossip input so far (None without gossip)."""

    def pin(self, names: Iterable[str]) -> None:
        """Watch these members closely (the owners whose IPs this node would take over)."""

    async def start(self, on_change: OnChange, counters: MembershipCounters) -> None:
        """Begin (join); returns once the first join attempt has ended."""

    async def leave(self, timeout: float) -> None:
        """Tell the others we are going (graceful)."""

    async def close(self) -> None:
        """Stop without a goodbye."""


class StaticMembership:
    """Members = the Node objects of the configuration (no gossip); always ready."""

    def live(self) -> frozenset[str] | None:
        return None

    def ready(self) -> bool:
        return True

    def rows(self) -> list[MemberRow]:
        return []

    def health_score(self) -> float:
        return 0.0

    def input_report(self) -> GossipReport | None:
        return None

    def pin(self, names: Iterable[str]) -> None:
        return None

    async def start(self, on_change: OnChange, counters: MembershipCounters) -> None:
        return None

    async def leave(self, timeout: float) -> None:
        return None

    async def close(self) -> None:
        return None
