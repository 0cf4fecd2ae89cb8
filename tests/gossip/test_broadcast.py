"""The retransmit-limited queue, after memberlist's queue_test.go."""

from __future__ import annotations

from gossip.broadcast import BroadcastQueue


def _q(mult: float, n: int) -> BroadcastQueue:
    return BroadcastQueue(mult, lambda: n)


def test_queue_invalidates_by_name() -> None:
    q = _q(1, 1)
    for name in ("test", "foo", "bar"):
        q.queue(name, b"msg")  # same length: newest first
    assert [b.name for b in q.ordered()] == ["bar", "foo", "test"]
    q.queue("test", b"new")
    assert len(q) == 3
    assert [b.name for b in q.ordered()] == ["test", "bar", "foo"]
    assert [b.data for b in q.ordered()] == [b"new", b"msg", b"msg"]


def test_selection_order_fewest_transmits_then_longest_then_newest() -> None:
    q = _q(1, 10)
    q.queue("a", b"x" * 10, transmits=1)
    q.queue("b", b"x" * 10)
    q.queue("c", b"x" * 12)
    q.queue("d", b"x" * 12)
    assert [b.name for b in q.ordered()] == ["d", "c", "b", "a"]


def test_transmit_tiers_ordering() -> None:
    q = _q(1, 10)
    for name, tr in (("node0", 0), ("node1", 10), ("node2", 3), ("node3", 4), ("node4", 7)):
        q.queue(name, name.encode(), transmits=tr)
    assert [b.transmits for b in q.ordered()] == [0, 3, 4, 7, 10]


def test_get_respects_overhead_and_limit() -> None:
    # TestTransmitLimited_GetBroadcasts: 4 x 18 bytes; overhead 2 fits all in 80, 3 only 3.
    q = _q(3, 10)
    for i, name in enumerate(("test", "foo", "bar", "baz")):
        q.queue(name, f"{i + 1}. this is a test.".encode())
    assert len(q.get(2, 80)) == 4
    assert len(q.get(3, 80)) == 3


def test_get_limit_expires_messages() -> None:
    # TestTransmitLimited_GetBroadcasts_Limit: retransmit limit 2 at n=10, mult 1.
    q = _q(1, 10)
    for i, name in enumerate(("test", "foo", "bar", "baz")):
        q.queue(name, f"{i + 1}. this is a test.".encode())
    assert len(q.get(3, 80)) == 3
    assert len(q.get(3, 80)) == 3
    assert len(q.get(3, 80)) == 2
    assert len(q.get(3, 80)) == 0
    assert sorted(q.finished) == ["bar", "baz", "foo", "test"]
    assert not q.pending("test")


def test_never_twice_in_one_packet_and_largest_fitting_first() -> None:
    q = _q(10, 10)
    q.queue("big", b"B" * 50)
    q.queue("mid", b"M" * 20)
    q.queue("small", b"S" * 5)
    got = q.get(2, 40)
    assert got == [b"M" * 20, b"S" * 5]
    assert len(set(got)) == len(got)


def test_prune_keeps_newest() -> None:
    q = _q(1, 10)
    for name in ("test", "foo", "bar", "baz"):
        q.queue(name, name.encode())
    q.prune(2)
    assert sorted(b.name or "" for b in q.ordered()) == ["bar", "baz"]
    assert sorted(q.finished) == ["foo", "test"]


def test_unnamed_broadcasts_are_bounded() -> None:
    q = BroadcastQueue(4, lambda: 10, max_unnamed=5)
    for i in range(100):
        q.queue(None, bytes([i]))
    assert len(q) == 5
    assert sorted(b.data[0] for b in q.ordered()) == [95, 96, 97, 98, 99]
