"""The token bucket behind every rate-limited writer (`l2agent.kube.ratelimit`)."""

from __future__ import annotations

import pytest

from l2agent.kube.ratelimit import TokenBucket


def test_starts_full_then_refills_at_its_rate_up_to_its_burst() -> None:
    b = TokenBucket(rate=4.0, burst=2)
    assert [b.take(0.0) for _ in range(3)] == [True, True, False]
    assert b.wait(0.0) == pytest.approx(0.25)
    assert b.take(0.2) is False  # 0.8 of a token
    assert b.take(0.25) is True
    assert [b.take(100.0) for _ in range(3)] == [True, True, False]  # capped at the burst


def test_time_going_backwards_adds_nothing() -> None:
    b = TokenBucket(rate=1.0, burst=1)
    assert b.take(10.0)
    assert not b.take(5.0)
    assert not b.take(10.5)
    assert b.take(11.0)


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_rejects_a_bucket_that_never_gives(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst)
