"""memberlist's TestAwareness table."""

from __future__ import annotations

from gossip.awareness import Awareness

CASES = [
    (0, 0, 1.0),
    (-1, 0, 1.0),
    (-10, 0, 1.0),
    (1, 1, 2.0),
    (-1, 0, 1.0),
    (10, 7, 8.0),
    (-1, 6, 7.0),
    (-1, 5, 6.0),
    (-1, 4, 5.0),
    (-1, 3, 4.0),
    (-1, 2, 3.0),
    (-1, 1, 2.0),
    (-1, 0, 1.0),
    (-1, 0, 1.0),
]


def test_awareness_table() -> None:
    a = Awareness(8)
    for i, (delta, score, timeout) in enumerate(CASES):
        a.apply_delta(delta)
        assert a.score == score, i
        assert a.scale_timeout(1.0) == timeout, i


def test_max_multiplier_one_disables_backoff() -> None:
    a = Awareness(1)
    a.apply_delta(5)
    assert a.score == 0
    assert a.scale_timeout(0.02) == 0.02
