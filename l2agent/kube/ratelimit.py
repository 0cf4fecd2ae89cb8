"""A token bucket: at most `burst` actions at once, `rate` per second on average.

Pure (the caller passes `now`, seconds on any monotonic scale), so the writers that use it
(the speaker's ServiceL2Status mirror) stay testable without a clock. Bounded work per
input: a flood of changes becomes at most `rate` API writes per second, never a storm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TokenBucket"]


@dataclass(slots=True)
class TokenBucket:
    """`rate` tokens per second, holding at most `burst`; starts full."""

    rate: float
    burst: float
    _tokens: float = field(init=False)
    _last: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError(
                f"token bucket needs rate > 0 and burst >= 1, got {self.rate}, {self.burst}"
            )
        self._tokens = float(self.burst)

    def _refill(self, now: float) -> None:
        if self._last is not None and now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        if self._last is None or now > self._last:
            self._last = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one (True), else leave the bucket as it is."""
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait(self, now: float) -> float:
        """Seconds until a token is there (0 when one is there now)."""
        self._refill(now)
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate
