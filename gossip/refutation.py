"""When a refutation is sent straight to every member (`refute_directly`): at most one
burst per window, and a refutation that falls inside the window waits for its end instead
of being dropped.

Each accusation at our current incarnation makes us refute with a new one. Sending every
refutation at once to every member (times `probe_copies`) would let a stream of
accusations multiply our sends, so bursts are limited to one per window (the health-scaled
probe interval). But under packet loss the accusations that matter come in quick
succession: a prober hears our refutation, its next probe of us fails too, and it accuses
us at the new incarnation within a probe interval. Dropping that second refutation (and
leaving it to gossip, ~1.5 tries per peer in a 3-node cluster) is what turned suspicions
into false deaths in the 10 %-loss soak; held, it goes out when the window ends, and only
the newest one does, so the bound stays one burst per window.
"""

from __future__ import annotations

from dataclasses import dataclass

from gossip.messages import Alive

__all__ = ["DirectRefutations"]


@dataclass(slots=True)
class DirectRefutations:
    """The window and the refutation waiting for it; pure (time is an argument)."""

    next_allowed: float
    pending: Alive | None = None

    def offer(self, alive: Alive, now: float, window: float) -> Alive | None:
        """A new refutation: returned if it may go out now (the window restarts), else
        held until `due` (replacing any older one held: the newest incarnation wins)."""
        if now < self.next_allowed:
            self.pending = alive
            return None
        self.pending = None
        self.next_allowed = now + window
        return alive

    def due(self, now: float, window: float) -> Alive | None:
        """The held refutation once its window has ended (the window restarts), else None."""
        if self.pending is None or now < self.next_allowed:
            return None
        alive, self.pending = self.pending, None
        self.next_allowed = now + window
        return alive

    def next_deadline(self) -> float | None:
        """When `due` has something to return, or None while nothing is held."""
        return self.next_allowed if self.pending is not None else None
