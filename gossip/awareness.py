"""Lifeguard local health ("awareness"): a score that slows our probing when we are unwell.

A node that misses acks because *it* is slow (CPU starved, network congested) should not
accuse others quickly; the score rises on failed probes and refutations and falls on
successful probes, and the probe interval is multiplied by (score + 1).
"""

from __future__ import annotations

__all__ = ["Awareness"]


class Awareness:
    """Health score in [0, max_multiplier - 1]; 0 is healthy."""

    __slots__ = ("_max", "_score")

    def __init__(self, max_multiplier: int) -> None:
        self._max = max(1, max_multiplier)
        self._score = 0

    def apply_delta(self, delta: int) -> None:
        """Add `delta`, clamped to the allowed range."""
        self._score = min(max(self._score + delta, 0), self._max - 1)

    @property
    def score(self) -> int:
        """Current health score (memberlist's GetHealthScore)."""
        return self._score

    def scale_timeout(self, timeout: float) -> float:
        """timeout * (score + 1)."""
        return timeout * (self._score + 1)
