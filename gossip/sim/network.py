"""A seeded simulated network: per-link latency, jitter and loss, partitions, crashes, pauses.

Packets may be lost; streams are reliable, delayed messages that fail (like a refused or
timed-out connection) when the peer is crashed or on the other side of a partition.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["LinkSpec", "SimNetwork"]


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """One direction of a link: seconds of latency, uniform jitter on top, loss probability."""

    latency: float = 0.0005
    jitter: float = 0.0005
    loss: float = 0.0


class SimNetwork:
    """Link behaviour between node indexes, decided with one seeded `random.Random`."""

    def __init__(self, rng: random.Random, default: LinkSpec | None = None) -> None:
        self._rng = rng
        self.default = default or LinkSpec()
        self._links: dict[tuple[int, int], LinkSpec] = {}
        self._group: dict[int, int] = {}
        self.crashed: set[int] = set()
        self.paused: set[int] = set()
        self.sent = 0
        self.lost = 0

    def set_link(self, src: int, dst: int, spec: LinkSpec) -> None:
        self._links[(src, dst)] = spec

    def set_default(self, spec: LinkSpec) -> None:
        self.default = spec

    def partition(self, groups: list[list[int]]) -> None:
        """Nodes in different groups cannot reach each other; unlisted nodes form group 0."""
        self._group = {n: i + 1 for i, g in enumerate(groups) for n in g}

    def heal(self) -> None:
        self._group = {}

    def reachable(self, src: int, dst: int) -> bool:
        if dst in self.crashed or src in self.crashed:
            return False
        return self._group.get(src, 0) == self._group.get(dst, 0)

    def _delay(self, spec: LinkSpec) -> float:
        return spec.latency + (self._rng.random() * spec.jitter if spec.jitter else 0.0)

    def packet_delay(self, src: int, dst: int) -> float | None:
        """Delivery delay of one datagram, or None if it is lost."""
        self.sent += 1
        spec = self._links.get((src, dst), self.default)
        if not self.reachable(src, dst) or (spec.loss and self._rng.random() < spec.loss):
            self.lost += 1
            return None
        return self._delay(spec)

    def stream_delay(self, src: int, dst: int) -> float | None:
        """Delay of a stream message (no loss), or None if the peer cannot be reached."""
        if not self.reachable(src, dst):
            return None
        return self._delay(self._links.get((src, dst), self.default))
