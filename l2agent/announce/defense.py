"""Address conflicts: when another station claims an IP we announce, defend it, and say so at
a bounded rate. Pure and clock-free, like the schedule beside it.

A claim is an ARP frame whose sender is one of our IPs with another MAC (``decide`` reports
it as ``ADDRESS_CONFLICT``). A host defends its address by announcing it again (RFC 5227
section 2.4 (b)); a client poisoned by the other station's gratuitous ARP returns to us as
soon as the claims stop. So every claim makes sure one re-announcement (a normal round:
gratuitous ARP request and reply, or an unsolicited NA) follows it, at most one per
``interval`` per (interface, IP); a flood of claims costs one round a second, and the last
claim of a flood is always answered within ``interval``.

The first claim of an episode waits ``grace`` before it is defended: during a planned
handover or an ownership move, the new owner's announcements reach the old owner for a
moment before it lets go (the speaker's handover drain is 0.5 s); defending then would pull
clients back to a node that is leaving. An IP we stop announcing forgets its episode.

Reports are bounded too: one :class:`AddressConflict` when an episode starts, then one
summary per ``report_interval`` while claims continue, and one when the episode ends
(``quiet`` seconds without a claim). Every claim is still counted by the caller's metric.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from l2agent.announce.schedule import Due
from l2agent.model.types import IPAddress

__all__ = ["AddressConflict", "Claimed", "ConflictGuard", "ConflictPhase", "DefenseConfig"]


@dataclass(frozen=True, slots=True)
class DefenseConfig:
    """When to re-announce an IP another station claims, and how often to report it."""

    interval: float = 1.0
    """Seconds between re-announcements of one IP on one interface (at most one each)."""
    grace: float = 1.0
    """Seconds an episode's first claim waits before it is defended (longer than the
    speaker's handover drain, so a successor taking over is never fought)."""
    report_interval: float = 10.0
    """Seconds between summaries of an ongoing episode."""
    quiet: float = 10.0
    """Seconds without a claim that end an episode."""

    def __post_init__(self) -> None:
        for name in ("interval", "report_interval", "quiet"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 seconds")
        if self.grace < 0:
            raise ValueError("grace must be >= 0 seconds")


class ConflictPhase(enum.Enum):
    """Where an episode of claims stands when it is reported."""

    STARTED = "started"
    ONGOING = "ongoing"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class AddressConflict:
    """Another MAC claimed ``ip`` on ``ifname``: what the speaker logs and turns into a
    Kubernetes Event. ``claims`` and ``defenses`` count since the previous report."""

    ifname: str
    ip: IPAddress
    mac: bytes
    """The claiming station's MAC (the latest one, if several claimed)."""
    claims: int
    defenses: int
    phase: ConflictPhase


class Claimed(NamedTuple):
    """What one claim changed: a report if it started an episode, and the time of a
    re-announcement it scheduled (so the caller can arm its timer), if any."""

    report: AddressConflict | None
    defend_at: float | None


class _Episode:
    __slots__ = ("claims", "defend_at", "defended_at", "defenses", "last_claim", "mac", "report_at")

    def __init__(self, mac: bytes, now: float, config: DefenseConfig) -> None:
        self.mac = mac
        self.claims = 0
        self.defenses = 0
        self.last_claim = now
        self.defend_at: float | None = now + config.grace
        self.defended_at: float | None = None
        self.report_at = now + config.report_interval


class ConflictGuard:
    """Claims in; re-announcements (``Due``) and reports (``AddressConflict``) out."""

    def __init__(self, config: DefenseConfig | None = None) -> None:
        self.config = config if config is not None else DefenseConfig()
        self._episodes: dict[tuple[str, IPAddress], _Episode] = {}

    def claim(self, ifname: str, ip: IPAddress, mac: bytes, now: float) -> Claimed:
        """Another station claimed ``ip`` on ``ifname``. Constant work per call: this runs
        once per conflicting frame."""
        key = (ifname, ip)
        episode = self._episodes.get(key)
        if episode is None:
            episode = self._episodes[key] = _Episode(mac, now, self.config)
            report = AddressConflict(ifname, ip, mac, 1, 0, ConflictPhase.STARTED)
            return Claimed(report, episode.defend_at)
        episode.claims += 1
        episode.mac = mac
        episode.last_claim = now
        if episode.defend_at is not None:
            return Claimed(None, None)
        # Defended since the last claim: one more round follows this one.
        last = episode.defended_at if episode.defended_at is not None else now
        episode.defend_at = max(now, last + self.config.interval)
        return Claimed(None, episode.defend_at)

    def next_deadline(self) -> float | None:
        """Earliest time ``tick`` has work, or ``None``."""
        times = [
            t
            for e in self._episodes.values()
            for t in (e.defend_at, e.report_at, e.last_claim + self.config.quiet)
            if t is not None
        ]
        return min(times, default=None)

    def tick(self, now: float) -> tuple[list[Due], list[AddressConflict]]:
        """Re-announcements due now, and reports due now."""
        due: list[Due] = []
        reports: list[AddressConflict] = []
        cfg = self.config
        for (ifname, ip), e in list(self._episodes.items()):
            if e.defend_at is not None and e.defend_at <= now:
                due.append(Due(ifname, ip))
                e.defenses += 1
                e.defended_at = now
                e.defend_at = None
            ended = now >= e.last_claim + cfg.quiet and e.defend_at is None
            if ended or now >= e.report_at:
                if e.claims or e.defenses or ended:
                    phase = ConflictPhase.ENDED if ended else ConflictPhase.ONGOING
                    reports.append(AddressConflict(ifname, ip, e.mac, e.claims, e.defenses, phase))
                e.claims = e.defenses = 0
                e.report_at = now + cfg.report_interval
            if ended:
                del self._episodes[(ifname, ip)]
        return due, reports

    def keep(self, announced: Mapping[str, Collection[IPAddress]]) -> None:
        """Forget episodes of IPs no longer announced on their interface (no defense for an
        IP we gave up, no report about it)."""
        for ifname, ip in list(self._episodes):
            if ip not in announced.get(ifname, ()):
                del self._episodes[(ifname, ip)]

    def episodes(self) -> int:
        """Conflicts going on now (for status and tests)."""
        return len(self._episodes)
