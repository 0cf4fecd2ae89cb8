"""memberlist's own table tests for its scaling math (util_test.go, suspicion_test.go)."""

from __future__ import annotations

import random

import pytest

from gossip.scaling import (
    k_random_members,
    push_pull_scale,
    remaining_suspicion_time,
    retransmit_limit,
    suspicion_timeout,
)


@pytest.mark.parametrize(
    ("n", "expected"),
    [(5, 1.0), (10, 1.0), (50, 1.698), (100, 2.0), (500, 2.698), (1000, 3.0)],
)
def test_suspicion_timeout_table(n: int, expected: float) -> None:
    # TestSuspicionTimeout: suspicionTimeout(3, n, 1s) / 3
    assert suspicion_timeout(3, n, 1.0) / 3 == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(("n", "expected"), [(0, 0), (1, 3), (99, 6)])
def test_retransmit_limit_table(n: int, expected: int) -> None:
    assert retransmit_limit(3, n) == expected


def test_retransmit_limit_spec_examples() -> None:
    assert [retransmit_limit(4, n) for n in (3, 10, 100)] == [4, 8, 12]


def test_push_pull_scale_table() -> None:
    for n in range(0, 33):
        assert push_pull_scale(1.0, n) == 1.0
    for n in range(33, 65):
        assert push_pull_scale(1.0, n) == 2.0
    for n in range(65, 129):
        assert push_pull_scale(1.0, n) == 3.0
    assert push_pull_scale(30.0, 100) == 90.0


@pytest.mark.parametrize(
    ("n", "k", "elapsed", "expected"),
    [
        (0, 3, 0.0, 30.0),
        (1, 3, 2.0, 14.0),
        (2, 3, 3.0, 4.810),
        (3, 3, 4.0, -2.0),
        (4, 3, 5.0, -3.0),
        (5, 3, 10.0, -8.0),
    ],
)
def test_remaining_suspicion_time_table(n: int, k: int, elapsed: float, expected: float) -> None:
    got = remaining_suspicion_time(n, k, elapsed, 2.0, 30.0)
    assert got == pytest.approx(expected, abs=1e-9)


def test_k_random_members_filters_and_varies() -> None:
    # TestKRandomNodes: 90 nodes, a third alive; test0 excluded.
    nodes = [(f"test{i}", ("alive", "suspect", "dead")[i % 3]) for i in range(90)]

    def excluded(node: tuple[str, str]) -> bool:
        return node[0] == "test0" or node[1] != "alive"

    rng = random.Random(7)
    picks = [k_random_members(rng, 3, nodes, excluded) for _ in range(3)]
    assert picks[0] != picks[1] or picks[1] != picks[2]
    for pick in picks:
        assert len(pick) == 3
        assert len(set(pick)) == 3
        assert all(not excluded(p) for p in pick)


def test_k_random_members_small_cluster_is_exhaustive() -> None:
    nodes = list(range(5))
    for seed in range(50):
        got = k_random_members(random.Random(seed), 10, nodes, lambda x: x == 2)
        assert sorted(got) == [0, 1, 3, 4]
    assert k_random_members(random.Random(1), 3, [], lambda x: False) == []
