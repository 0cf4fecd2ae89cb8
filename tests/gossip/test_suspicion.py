"""Lifeguard suspicion: memberlist's TestSuspicion_Timer cases, as deadlines instead of timers."""

from __future__ import annotations

import pytest

from gossip.suspicion import Suspicion

K, MIN, MAX = 3, 0.5, 2.0


@pytest.mark.parametrize(
    ("confirmations", "expected_count", "expected"),
    [
        ([], 0, MAX),
        ([("me", False), ("foo", True)], 1, 1.25),
        ([("me", False), ("foo", True), ("foo", False), ("foo", False)], 1, 1.25),
        # Go's timer test says 810 ms within a 25 ms fudge; the formula gives 811 ms.
        ([("me", False), ("foo", True), ("bar", True)], 2, 0.811),
        ([("me", False), ("foo", True), ("bar", True), ("baz", True)], 3, MIN),
        ([("me", False), ("foo", True), ("bar", True), ("baz", True), ("zoo", False)], 3, MIN),
    ],
)
def test_timer_cases(
    confirmations: list[tuple[str, bool]], expected_count: int, expected: float
) -> None:
    s = Suspicion("me", K, MIN, MAX, start=100.0)
    for t, (who, new) in enumerate(confirmations):
        assert s.confirm(who) is new, (t, who)
    assert s.confirmations == expected_count
    assert s.deadline == pytest.approx(100.0 + expected)
    assert not s.expired(100.0 + expected - 0.001)
    assert s.expired(100.0 + expected)


def test_zero_k_uses_min_and_ignores_confirmations() -> None:
    s = Suspicion("me", 0, 0.025, 30.0, start=0.0)
    assert s.confirm("foo") is False
    assert s.deadline == 0.025


def test_late_confirmation_makes_it_due_immediately() -> None:
    s = Suspicion("me", 1, 0.1, 30.0, start=0.0)
    assert not s.expired(0.2)
    assert s.confirm("foo") is True
    assert s.expired(0.2)


def test_accusers_count_beyond_k() -> None:
    s = Suspicion("me", 1, 1.0, 6.0, start=0.0)
    assert s.confirm("a") and not s.confirm("b")
    assert s.confirmations == 1
    assert s.accusers == 2
