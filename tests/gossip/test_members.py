"""Member table merge rules: incarnations, refutation, conflicts, reclaim (spec §9.4-9.10)."""

from __future__ import annotations

import random

import pytest

from gossip.members import ChangeKind, MemberTable, SuspicionParams
from gossip.messages import Alive, Dead, NodeState, PushNodeState, Suspect

IP_ME = bytes([192, 0, 2, 1])
IP_B = bytes([192, 0, 2, 2])
IP_OTHER = bytes([192, 0, 2, 99])


def table(reclaim: float = 0.0) -> MemberTable:
    t = MemberTable("me", random.Random(1), SuspicionParams(4, 6, 1.0), reclaim)
    t.apply_alive(Alive(1, "me", IP_ME, 7946), 0.0, bootstrap=True)
    return t


def with_b(
    state: NodeState = NodeState.ALIVE, inc: int = 1, reclaim: float = 0.0, others: int = 0
) -> MemberTable:
    t = table(reclaim)
    for i in range(others):
        t.apply_alive(Alive(1, f"o{i}", IP_OTHER, 8000 + i), 0.0)
    assert t.apply_alive(Alive(inc, "b", IP_B, 7946), 0.0).kind is ChangeKind.JOINED
    if state is NodeState.SUSPECT:
        t.apply_suspect(Suspect(inc, "b", "c"), 0.0)
    elif state is NodeState.DEAD:
        t.apply_dead(Dead(inc, "b", "c"), 0.0)
    elif state is NodeState.LEFT:
        t.apply_dead(Dead(inc, "b", "b"), 0.0)
    assert t.by_name["b"].state is state
    return t


# (initial state of b at incarnation 5, message, expected change, expected state after)
CASES = [
    (NodeState.ALIVE, Alive(5, "b", IP_B, 7946), ChangeKind.NONE, NodeState.ALIVE),
    (NodeState.ALIVE, Alive(4, "b", IP_B, 7946), ChangeKind.NONE, NodeState.ALIVE),
    (NodeState.ALIVE, Alive(6, "b", IP_B, 7946), ChangeKind.NONE, NodeState.ALIVE),
    (NodeState.ALIVE, Alive(6, "b", IP_B, 7946, b"m"), ChangeKind.UPDATED, NodeState.ALIVE),
    (NodeState.ALIVE, Alive(9, "b", IP_OTHER, 7946), ChangeKind.CONFLICT, NodeState.ALIVE),
    (NodeState.ALIVE, Alive(9, "b", IP_B, 7000), ChangeKind.CONFLICT, NodeState.ALIVE),
    (NodeState.SUSPECT, Alive(6, "b", IP_B, 7946), ChangeKind.RECOVERED, NodeState.ALIVE),
    (NodeState.SUSPECT, Alive(5, "b", IP_B, 7946), ChangeKind.NONE, NodeState.SUSPECT),
    (NodeState.DEAD, Alive(5, "b", IP_B, 7946), ChangeKind.NONE, NodeState.DEAD),
    (NodeState.DEAD, Alive(6, "b", IP_B, 7946), ChangeKind.JOINED, NodeState.ALIVE),
    (NodeState.DEAD, Alive(9, "b", IP_OTHER, 7946), ChangeKind.CONFLICT, NodeState.DEAD),
    (NodeState.LEFT, Alive(6, "b", IP_B, 7946), ChangeKind.JOINED, NodeState.ALIVE),
    (NodeState.LEFT, Alive(1, "b", IP_OTHER, 7946), ChangeKind.JOINED, NodeState.ALIVE),
    (NodeState.ALIVE, Suspect(4, "b", "c"), ChangeKind.NONE, NodeState.ALIVE),
    (NodeState.ALIVE, Suspect(5, "b", "c"), ChangeKind.SUSPECTED, NodeState.SUSPECT),
    (NodeState.ALIVE, Suspect(7, "b", "c"), ChangeKind.SUSPECTED, NodeState.SUSPECT),
    (NodeState.SUSPECT, Suspect(5, "b", "c"), ChangeKind.NONE, NodeState.SUSPECT),
    (NodeState.SUSPECT, Suspect(5, "b", "d"), ChangeKind.CONFIRMED, NodeState.SUSPECT),
    (NodeState.DEAD, Suspect(5, "b", "d"), ChangeKind.NONE, NodeState.DEAD),
    (NodeState.ALIVE, Dead(4, "b", "c"), ChangeKind.NONE, NodeState.ALIVE),
    (NodeState.ALIVE, Dead(5, "b", "c"), ChangeKind.FAILED, NodeState.DEAD),
    (NodeState.SUSPECT, Dead(5, "b", "c"), ChangeKind.FAILED, NodeState.DEAD),
    (NodeState.ALIVE, Dead(5, "b", "b"), ChangeKind.LEFT, NodeState.LEFT),
    (NodeState.DEAD, Dead(6, "b", "c"), ChangeKind.NONE, NodeState.DEAD),
    (NodeState.LEFT, Dead(6, "b", "c"), ChangeKind.NONE, NodeState.LEFT),
]


@pytest.mark.parametrize(("state", "msg", "kind", "after"), CASES)
def test_merge_rules(
    state: NodeState, msg: Alive | Suspect | Dead, kind: ChangeKind, after: NodeState
) -> None:
    t = with_b(state, inc=5, others=3)  # n = 5: two confirmations expected (k = 2)
    if isinstance(msg, Alive):
        change = t.apply_alive(msg, 1.0)
    elif isinstance(msg, Suspect):
        change = t.apply_suspect(msg, 1.0)
    else:
        change = t.apply_dead(msg, 1.0)
    assert change.kind is kind
    assert t.by_name["b"].state is after
    news = kind is not ChangeKind.CONFLICT and (
        kind is not ChangeKind.NONE
        or (isinstance(msg, Alive) and msg.incarnation > 5 and state is NodeState.ALIVE)
    )
    # news (a higher incarnation counts, even without a visible change) is gossiped on unchanged
    assert change.rebroadcast == (msg if news else None)


def test_unknown_node_needs_incarnation_at_least_one() -> None:
    t = table()
    assert t.apply_alive(Alive(0, "x", IP_B, 7946), 0.0).kind is ChangeKind.NONE
    assert t.by_name["x"].state is NodeState.DEAD
    assert t.apply_alive(Alive(1, "x", IP_B, 7946), 0.0).kind is ChangeKind.JOINED


def test_alive_with_impossible_vsn_is_ignored() -> None:
    t = table()
    bad = Alive(1, "x", IP_B, 7946, vsn=bytes([3, 2, 2, 0, 0, 0]))
    assert t.apply_alive(bad, 0.0).kind is ChangeKind.BAD_VSN
    assert "x" not in t.by_name


@pytest.mark.parametrize(
    ("msg", "new_inc"),
    [
        (Suspect(1, "me", "b"), 2),
        (Suspect(7, "me", "b"), 8),
        (Dead(3, "me", "b"), 4),
        (Alive(1, "me", IP_ME, 7946, b"other meta"), 2),
        (Alive(9, "me", IP_ME, 7946), 10),
    ],
)
def test_accusations_about_us_are_refuted(msg: Alive | Suspect | Dead, new_inc: int) -> None:
    t = table()
    if isinstance(msg, Alive):
        change = t.apply_alive(msg, 1.0)
    elif isinstance(msg, Suspect):
        change = t.apply_suspect(msg, 1.0)
    else:
        change = t.apply_dead(msg, 1.0)
    assert change.kind is ChangeKind.REFUTED
    assert isinstance(change.rebroadcast, Alive)
    assert change.rebroadcast.incarnation == new_inc == t.local.incarnation
    assert t.local.state is NodeState.ALIVE


def test_stale_accusations_about_us_are_ignored() -> None:
    t = table()
    t.refute(4)  # we are at 5
    assert t.apply_suspect(Suspect(4, "me", "b"), 1.0).kind is ChangeKind.NONE
    assert t.apply_alive(Alive(5, "me", IP_ME, 7946), 1.0).kind is ChangeKind.NONE


def test_leaving_node_accepts_its_own_dead() -> None:
    t = table()
    t.leaving = True
    change = t.apply_dead(Dead(1, "me", "me"), 1.0)
    assert change.kind is ChangeKind.LEFT
    assert t.local.state is NodeState.LEFT
    assert t.apply_alive(Alive(9, "me", IP_ME, 7946), 2.0).kind is ChangeKind.NONE


def test_restart_recovers_by_refuting_push_pull_dead() -> None:
    # A restarted node starts at incarnation 1; the cluster holds it dead at 5.
    t = table()
    state = PushNodeState("me", IP_ME, 7946, b"", 5, NodeState.DEAD)
    change = t.apply_push_state(state, 1.0)
    assert change.kind is ChangeKind.REFUTED
    assert t.local.incarnation == 6


def test_push_pull_dead_only_makes_us_suspect_and_left_is_taken() -> None:
    t = with_b(inc=2)
    dead = PushNodeState("b", IP_B, 7946, b"", 2, NodeState.DEAD)
    assert t.apply_push_state(dead, 1.0).kind is ChangeKind.SUSPECTED
    t2 = with_b(inc=2)
    left = PushNodeState("b", IP_B, 7946, b"", 2, NodeState.LEFT)
    assert t2.apply_push_state(left, 1.0).kind is ChangeKind.LEFT


def test_dead_name_reclaimed_by_new_address_after_reclaim_time() -> None:
    t = with_b(NodeState.DEAD, inc=5, reclaim=10.0)
    assert t.apply_alive(Alive(1, "b", IP_OTHER, 7946), 5.0).kind is ChangeKind.CONFLICT
    change = t.apply_alive(Alive(1, "b", IP_OTHER, 7946), 11.0)
    assert change.kind is ChangeKind.JOINED
    assert t.by_name["b"].addr == IP_OTHER


def test_suspicion_timer_expires_into_dead_unless_refuted() -> None:
    t = with_b(inc=3)
    for i in range(3, 11):  # ten members: k = 2, min 4 s, max 24 s
        t.apply_alive(Alive(1, f"n{i}", IP_OTHER, 7000 + i), 0.0)
    t.apply_suspect(Suspect(3, "b", "me"), 10.0)
    assert t.next_suspicion_deadline() == pytest.approx(34.0)
    assert t.expire_suspicions(33.9) == []
    t.apply_suspect(Suspect(3, "b", "n3"), 11.0)
    t.apply_suspect(Suspect(3, "b", "n4"), 12.0)
    assert t.next_suspicion_deadline() == pytest.approx(14.0)
    assert t.expire_suspicions(14.0) == [Dead(3, "b", "me")]
    # a refutation before expiry cancels it
    t2 = with_b(inc=3)
    t2.apply_suspect(Suspect(3, "b", "me"), 10.0)
    t2.apply_alive(Alive(4, "b", IP_B, 7946), 11.0)
    assert t2.suspicions == {}
    assert t2.expire_suspicions(1000.0) == []


def test_probe_order_skips_self_and_dead_and_reaps() -> None:
    t = with_b(NodeState.ALIVE)
    t.apply_alive(Alive(1, "c", IP_OTHER, 7946), 0.0)
    t.apply_dead(Dead(1, "c", "b"), 0.0)
    # Like memberlist, a wrap-around uses up one check, so a tick may probe nobody.
    seen = {getattr(t.next_probe_target(1.0, 30.0), "name", None) for _ in range(12)}
    assert seen - {None} == {"b"}
    for _ in range(4):
        t.next_probe_target(31.0, 30.0)
    assert "c" not in t.by_name
    assert {e.name for e in t.nodes} == {"me", "b"}


def test_alive_count_tracks_states() -> None:
    t = with_b()
    assert t.alive_count == 2
    t.apply_suspect(Suspect(1, "b", "x"), 1.0)
    assert t.alive_count == 1
    t.apply_alive(Alive(2, "b", IP_B, 7946), 1.0)
    assert t.alive_count == 2


def _ps(name: str, vsn: bytes, state: NodeState = NodeState.ALIVE) -> PushNodeState:
    return PushNodeState(name, IP_B, 7946, b"", 1, state, vsn)


@pytest.mark.parametrize(
    ("remote", "ok"),
    [
        ([_ps("b", bytes([1, 5, 2, 0, 0, 0]))], True),
        ([_ps("b", bytes([1, 5, 5, 0, 0, 0]))], True),
        ([_ps("b", bytes([1, 2, 2, 0, 0, 0]))], True),  # range [1, 2]; everyone speaks 2
        ([_ps("b", bytes([3, 5, 3, 0, 0, 0]))], False),  # range [3, 5]; we speak 2
        ([_ps("b", bytes([1, 5, 2, 0, 1, 1]))], False),  # delegate 1 outside our [0, 0]
        ([_ps("b", bytes([9, 9, 3, 0, 0, 0]), NodeState.DEAD)], True),  # dead: no say in range
        ([_ps("b", bytes(6), NodeState.DEAD)], False),  # but its pcur 0 is still checked
    ],
)
def test_verify_protocol(remote: list[PushNodeState], ok: bool) -> None:
    from gossip.members import verify_protocol

    t = table()
    t.local.vsn = bytes([1, 5, 2, 0, 0, 0])
    assert (verify_protocol(remote, t.nodes) == "") is ok
