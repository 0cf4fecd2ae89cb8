"""memberlist's scaling math as pure functions (util.go, suspicion.go).

Durations are float seconds. Where Go truncates to whole milliseconds, so do we, so the
values match memberlist's own table tests exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import random

__all__ = [
    "k_random_members",
    "push_pull_scale",
    "remaining_suspicion_time",
    "retransmit_limit",
    "suspicion_timeout",
]

T = TypeVar("T")

_PUSH_PULL_SCALE_THRESHOLD = 32
"""Cluster size above which the push/pull interval grows (memberlist's constant)."""


def suspicion_timeout(suspicion_mult: float, n: int, interval: float) -> float:
    """Minimum suspicion timeout: mult * max(1, log10(max(1, n))) * interval.

    The log factor is truncated to milliseconds of precision, as Go does with its
    integer Duration arithmetic.
    """
    node_scale = max(1.0, math.log10(max(1.0, float(n))))
    return suspicion_mult * (math.floor(node_scale * 1000) / 1000) * interval


def retransmit_limit(retransmit_mult: float, n: int) -> int:
    """Transmissions per broadcast: mult * ceil(log10(n + 1))."""
    node_scale = math.ceil(math.log10(n + 1))
    return int(retransmit_mult * node_scale)


def push_pull_scale(interval: float, n: int) -> float:
    """Push/pull interval: the base up to 32 nodes, then * (ceil(log2(n) - log2(32)) + 1)."""
    if n <= _PUSH_PULL_SCALE_THRESHOLD:
        return interval
    multiplier = math.ceil(math.log2(n) - math.log2(_PUSH_PULL_SCALE_THRESHOLD)) + 1
    return interval * multiplier


def remaining_suspicion_time(
    confirmations: int, k: int, elapsed: float, min_timeout: float, max_timeout: float
) -> float:
    """Time left on a suspicion given `confirmations` of `k` expected (may be negative).

    timeout = max - ln(c + 1) / ln(k + 1) * (max - min), floored to whole milliseconds and
    never below min; the result is that timeout minus `elapsed`.
    """
    if k < 1:
        timeout = min_timeout
    else:
        frac = math.log(confirmations + 1.0) / math.log(k + 1.0)
        raw = max_timeout - frac * (max_timeout - min_timeout)
        timeout = math.floor(raw * 1000) / 1000
        timeout = max(timeout, min_timeout)
    return timeout - elapsed


def k_random_members(
    rng: random.Random, k: int, members: Sequence[T], exclude: Callable[[T], bool]
) -> list[T]:
    """Up to k distinct members not excluded, chosen at random.

    Like memberlist, draws random indexes up to 3n times (cheap when k ≪ n); unlike 0.2.2,
    falls back to an exhaustive scan from a random offset so small clusters always find
    every candidate (the 0.6.0 fix).
    """
    n = len(members)
    chosen: list[T] = []
    if k <= 0 or n == 0:
        return chosen
    seen: set[int] = set()
    for _ in range(3 * n):
        if len(chosen) >= k:
            return chosen
        idx = rng.randrange(n)
        if idx in seen:
            continue
        seen.add(idx)
        if not exclude(members[idx]):
            chosen.append(members[idx])
    if len(chosen) < k and len(seen) < n:
        start = rng.randrange(n)
        for off in range(n):
            idx = (start + off) % n
            if idx in seen:
                continue
            seen.add(idx)
            if not exclude(members[idx]):
                chosen.append(members[idx])
                if len(chosen) >= k:
                    break
    return chosen
