"""The ownership ledger: what this node announces, who owns every other IP, since when, and
how long each failover took. Pure: every time is an argument.

The speaker feeds it each plan it applies (`update`), each member failure it hears of
(`member_failed`) and each first gratuitous packet that left (`first_sent`); /status and
the ownership gauges read `rows()`. Two clocks are kept apart: `wall` times (Unix seconds,
for people: "announcing since") and `now` times (the event loop's monotonic clock, for
durations: a failover is timed from the member's death to our first packet).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from l2agent.model.reports import OwnershipRow
from l2agent.model.types import IPAddress
from l2agent.plan import Plan

__all__ = ["FailoverTiming", "OwnershipDiff", "OwnershipLedger"]


@dataclass(frozen=True, slots=True)
class OwnershipDiff:
    """What one update changed on this node (sorted: IPv4 first, then by address)."""

    gained: tuple[IPAddress, ...] = ()
    lost: tuple[IPAddress, ...] = ()


@dataclass(frozen=True, slots=True)
class FailoverTiming:
    """An IP this node took over from a failed member, and how long that took."""

    ip: IPAddress
    previous_owner: str
    seconds: float


class OwnershipLedger:
    """Owned IPs (with the wall time we started), the owner of every service IP (with the
    wall time it last changed), and the failovers waiting for their first packet."""

    def __init__(self) -> None:
        self._owned: dict[IPAddress, float] = {}
        self._owner: dict[IPAddress, tuple[str | None, float]] = {}
        self._previous: dict[IPAddress, str | None] = {}
        self._failed_at: dict[str, float] = {}
        self._pending: dict[IPAddress, tuple[str, float]] = {}
        self._plan: Plan | None = None

    # -- inputs -------------------------------------------------------------------------------

    def member_failed(self, name: str, now: float) -> None:
        """`name` was declared dead at `now` (monotonic): its IPs' takeovers are timed."""
        self._failed_at[name] = now

    def member_joined(self, name: str) -> None:
        """`name` is alive again: a later takeover of its IPs is not a failover."""
        self._failed_at.pop(name, None)

    def update(
        self, plan: Plan | None, announced: Collection[IPAddress], wall: float
    ) -> OwnershipDiff:
        """This node now announces exactly `announced` (`plan`: the plan they came from, or
        None when the speaker announces nothing because it cannot plan yet)."""
        if plan is not None:
            self._plan = plan
            self._record_owners(plan, wall)
        before, after = set(self._owned), set(announced)
        lost = tuple(sorted(before - after, key=_ip_key))
        gained = tuple(sorted(after - before, key=_ip_key))
        for ip in lost:
            del self._owned[ip]
            self._pending.pop(ip, None)
        for ip in gained:
            self._owned[ip] = wall
            previous = self._previous.get(ip)
            failed_at = self._failed_at.get(previous) if previous is not None else None
            if previous is not None and failed_at is not None:
                self._pending[ip] = (previous, failed_at)
        return OwnershipDiff(gained, lost)

    def first_sent(self, ips: Iterable[IPAddress], now: float) -> list[FailoverTiming]:
        """Our first gratuitous packets for `ips` left at `now`: the failovers they end."""
        out = []
        for ip in ips:
            pending = self._pending.pop(ip, None)
            if pending is not None:
                previous, failed_at = pending
                out.append(FailoverTiming(ip, previous, now - failed_at))
        return out

    def _record_owners(self, plan: Plan, wall: float) -> None:
        seen: set[IPAddress] = set()
        for svc in plan.services:
            for ip in svc.ips:
                seen.add(ip)
                current = self._owner.get(ip)
                if current is None or current[0] != svc.owner:
                    self._previous[ip] = current[0] if current is not None else None
                    self._owner[ip] = (svc.owner, wall)
        for ip in set(self._owner) - seen:
            del self._owner[ip]
            self._previous.pop(ip, None)

    # -- views --------------------------------------------------------------------------------

    @property
    def owned(self) -> Mapping[IPAddress, float]:
        """IP -> wall time this node started announcing it."""
        return MappingProxyType(self._owned)

    @property
    def plan(self) -> Plan | None:
        """The last plan applied."""
        return self._plan

    def owner_since(self, ip: IPAddress) -> float | None:
        """Wall time of the last owner change this node saw for `ip` (None: unknown IP)."""
        current = self._owner.get(ip)
        return current[1] if current is not None else None

    def rows(self, interfaces_for: Callable[[IPAddress], tuple[str, ...]]) -> list[OwnershipRow]:
        """One row per service IP of the last plan (the ownership gauges and /status).

        `interfaces_for(ip)`: where this node announces `ip` right now (the data plane)."""
        if self._plan is None:
            return []
        rows = []
        for svc in self._plan.services:
            for ip in svc.ips:
                since = self._owned.get(ip)
                announcing = since is not None
                rows.append(
                    OwnershipRow(
                        ip=ip,
                        service=svc.key,
                        owner=svc.owner,
                        announcing=announcing,
                        interfaces=interfaces_for(ip) if announcing else (),
                        since=since if announcing else self.owner_since(ip),
                    )
                )
        return rows


def _ip_key(ip: IPAddress) -> tuple[int, int]:
    return ip.version, int(ip)
