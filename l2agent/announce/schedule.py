"""When to send gratuitous ARP / unsolicited NA rounds: a pure, clock-free timetable.

MetalLB (``internal/layer2/announcer.go`` ``spamLoop``) sends a round at once when it gains
an IP and then every 1.1 s for 5 s: rounds at 0, 1.1, 2.2, 3.3 and 4.4 s. The 1.1 s spacing
puts a second packet past the 1 s Linux ARP ``locktime`` (MetalLB issue #172). Here the
same burst is kept per (interface, IP), so an interface that comes up or changes MAC gets
its own fresh burst, and an optional refresh interval re-announces while the IP is owned
(MetalLB issue #2910: switch FDB entries age out before router ARP entries).

The caller feeds ``now`` (seconds on any monotonic scale), calls ``tick(now)`` at or after
``next_deadline()``, and sends one round per returned ``Due``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from l2agent.model.types import IPAddress

__all__ = ["AnnounceConfig", "AnnounceSchedule", "Due"]

log = logging.getLogger(__name__)

_SLACK = 1e-6
"""A round due within 1 microsecond of ``now`` counts as due, so deadlines built from
decimal intervals (3 x 1.1 = 3.3000000000000003) fire at the decimal time."""


@dataclass(frozen=True, slots=True)
class AnnounceConfig:
    """Timing of announcement bursts. Defaults match MetalLB."""

    rounds: int = 5
    """Rounds per burst, the first one immediate. MetalLB: 5 (0 to 4.4 s)."""
    interval: float = 1.1
    """Seconds between rounds of a burst; above the 1 s Linux ARP locktime."""
    refresh_interval: float | None = None
    """Seconds between single re-announcement rounds after a burst, while the IP stays
    owned; ``None`` = never (MetalLB has no such refresh)."""

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")
        if not self.interval > 0:
            raise ValueError(f"interval must be > 0 seconds, got {self.interval}")
        if self.refresh_interval is not None and not self.refresh_interval > 0:
            raise ValueError(f"refresh_interval must be > 0 seconds, got {self.refresh_interval}")


@dataclass(frozen=True, slots=True)
class Due:
    """Send one announcement round for ``ip`` on ``ifname`` now."""

    ifname: str
    ip: IPAddress


class _Pending:
    """Mutable per-(interface, IP) timer; internal to the schedule."""

    __slots__ = ("at", "left")

    def __init__(self, at: float, left: int) -> None:
        self.at = at
        self.left = left  # rounds left in the current burst; 0 = refresh phase


def _order(key: tuple[str, IPAddress]) -> tuple[str, int, int]:
    return key[0], key[1].version, int(key[1])


class AnnounceSchedule:
    """Desired ownership in, timed ``Due`` rounds out."""

    def __init__(self, config: AnnounceConfig | None = None) -> None:
        self.config = config if config is not None else AnnounceConfig()
        self._desired: dict[str, frozenset[IPAddress]] = {}
        self._pending: dict[tuple[str, IPAddress], _Pending] = {}

    @property
    def desired(self) -> Mapping[str, frozenset[IPAddress]]:
        """What was last set: interface name -> IPs announced on it."""
        return dict(self._desired)

    def set_desired(self, desired: Mapping[str, Collection[IPAddress]], now: float) -> None:
        """Replace the ownership map. New (interface, IP) pairs start a burst at ``now``;
        pairs that vanished are cancelled at once; unchanged pairs keep their timers."""
        new = {name: frozenset(ips) for name, ips in desired.items() if ips}
        for name, ips in self._desired.items():
            for ip in ips - new.get(name, frozenset()):
                self._pending.pop((name, ip), None)
                log.debug("stop announcing %s on %s", ip, name)
        for name, ips in new.items():
            for ip in ips - self._desired.get(name, frozenset()):
                self._pending[(name, ip)] = _Pending(now, self.config.rounds)
                log.debug("start announcing %s on %s", ip, name)
        self._desired = new

    def interface_changed(self, ifname: str, now: float) -> None:
        """The link came up or its MAC changed: restart a burst for every IP on it."""
        for ip in self._desired.get(ifname, frozenset()):
            self._pending[(ifname, ip)] = _Pending(now, self.config.rounds)

    def next_deadline(self) -> float | None:
        """Earliest time ``tick`` has work, or ``None`` when nothing is pending."""
        return min((p.at for p in self._pending.values()), default=None)

    def tick(self, now: float) -> list[Due]:
        """Rounds due at ``now``, sorted by (interface, IP version, IP). A late tick yields
        one round per pair, not a catch-up burst; the burst keeps its phase."""
        due: list[tuple[str, IPAddress]] = []
        done: list[tuple[str, IPAddress]] = []
        cfg = self.config
        for key, p in self._pending.items():
            if p.at > now + _SLACK:
                continue
            due.append(key)
            if p.left > 1:
                p.left -= 1
                step = cfg.interval
            elif cfg.refresh_interval is not None:
                p.left = 0
                step = cfg.refresh_interval
            else:
                done.append(key)
                continue
            p.at += step
            if p.at <= now + _SLACK:  # we were late: skip missed slots, keep the phase
                missed = int((now + _SLACK - p.at) // step) + 1
                p.at += missed * step
        for key in done:
            del self._pending[key]
        due.sort(key=_order)
        return [Due(name, ip) for name, ip in due]
