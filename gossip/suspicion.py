"""One Lifeguard suspicion: who confirmed it and when it expires.

memberlist runs a timer per suspicion that shortens as independent accusers confirm it.
Here there is no timer: the suspicion computes its deadline from the start time and the
number of confirmations, and the engine compares it with `now`.
"""

from __future__ import annotations

from gossip.scaling import remaining_suspicion_time

__all__ = ["Suspicion"]


class Suspicion:
    """A suspicion started at `start` by `from_node`, expecting `k` confirmations.

    The deadline starts at `start + max_timeout` (or `start + min_timeout` if k < 1) and
    moves toward `start + min_timeout` as confirmations arrive; the first accuser never
    counts as a confirmation.
    """

    __slots__ = (
        "_accusers",
        "_confirmed",
        "deadline",
        "incarnation",
        "k",
        "max_timeout",
        "min_timeout",
        "start",
    )

    def __init__(
        self,
        from_node: str,
        k: int,
        min_timeout: float,
        max_timeout: float,
        start: float,
        incarnation: int = 0,
    ) -> None:
        self.k = k
        self.min_timeout = min_timeout
        self.max_timeout = max_timeout
        self.start = start
        self.incarnation = incarnation
        self._confirmed: set[str] = {from_node}
        self._accusers: set[str] = {from_node}
        timeout = max_timeout if k >= 1 else min_timeout
        self.deadline = start + timeout

    @property
    def confirmations(self) -> int:
        """Independent confirmations so far (the first accuser excluded)."""
        return len(self._confirmed) - 1

    @property
    def accusers(self) -> int:
        """Distinct accusers besides the first, counted beyond k too (capped at 64)."""
        return len(self._accusers) - 1

    def confirm(self, from_node: str) -> bool:
        """Record an accuser; True if it was new information (then the caller re-gossips).

        Like memberlist, confirmations beyond k are not recorded and are not news.
        """
        if len(self._accusers) < 65:
            self._accusers.add(from_node)
        if self.confirmations >= self.k or from_node in self._confirmed:
            return False
        self._confirmed.add(from_node)
        self.deadline = self.start + remaining_suspicion_time(
            self.confirmations, self.k, 0.0, self.min_timeout, self.max_timeout
        )
        return True

    def expired(self, now: float) -> bool:
        """True once the (possibly shortened) deadline has passed."""
        return now >= self.deadline
