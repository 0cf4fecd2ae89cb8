"""Heartbeats of the loops that must keep turning, for the liveness endpoint.

Each long-running loop (a watch, the Lease loop, the reconcile loop) is registered with
the longest silence it can have while healthy, and beats whenever it makes progress.
`stuck(now)` names the loops silent for longer than that: `/healthz` then fails and the
kubelet restarts the pod, which is the only cure for a thread wedged in a call that
never returns. Pure: times are arguments (the caller's monotonic clock), so a beat from
any thread is a plain assignment.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Heartbeats", "Stuck"]


@dataclass(frozen=True, slots=True)
class Stuck:
    """A loop that has not beaten for `silent` seconds (its limit is `limit`)."""

    name: str
    silent: float
    limit: float

    def __str__(self) -> str:
        return f"{self.name}: no progress for {self.silent:.0f}s (limit {self.limit:.0f}s)"


class Heartbeats:
    """Named loops, each with a silence limit in seconds, and when each last beat."""

    def __init__(self) -> None:
        self._limits: dict[str, float] = {}
        self._last: dict[str, float] = {}

    def register(self, name: str, limit: float, now: float) -> None:
        """Watch `name` from `now` on; it must beat at least every `limit` seconds."""
        if limit <= 0:
            raise ValueError(f"heartbeat limit must be positive, got {limit}")
        self._limits[name] = limit
        self._last[name] = now

    def unregister(self, name: str) -> None:
        """A loop that ended on purpose (shutdown) is no longer expected to beat."""
        self._limits.pop(name, None)
        self._last.pop(name, None)

    def beat(self, name: str, now: float) -> None:
        if name in self._limits:
            self._last[name] = now

    def stuck(self, now: float) -> list[Stuck]:
        """The loops silent past their limit, by name."""
        out = []
        limits, last = dict(self._limits), dict(self._last)  # beats may come from any thread
        for name, limit in sorted(limits.items()):
            silent = now - last.get(name, now)
            if silent > limit:
                out.append(Stuck(name, silent, limit))
        return out

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._limits))
