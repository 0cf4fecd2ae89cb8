"""Virtual time: a clock and an event heap ordered by (time, sequence).

Equal times run in the order they were scheduled, so a run is a pure function of its seed.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

__all__ = ["EventHeap"]


class EventHeap:
    """Scheduled callbacks; `now` advances only when an event runs."""

    __slots__ = ("_heap", "_seq", "now")

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._heap)

    def at(self, when: float, fn: Callable[..., None], *args: Any) -> None:
        """Run fn(*args) at `when` (never earlier than now)."""
        self._seq += 1
        heapq.heappush(self._heap, (max(when, self.now), self._seq, fn, args))

    def peek(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def step(self) -> bool:
        """Run the earliest event; False when none is left."""
        if not self._heap:
            return False
        when, _, fn, args = heapq.heappop(self._heap)
        self.now = when
        fn(*args)
        return True

    def run_until(self, limit: float) -> None:
        """Run every event due at or before `limit`, then set now = limit."""
        heap = self._heap
        while heap and heap[0][0] <= limit:
            when, _, fn, args = heapq.heappop(heap)
            self.now = when
            fn(*args)
        self.now = max(self.now, limit)
