"""The engine through its public verbs, with the EnginePair harness (tests/helpers/
engine_pair.py, after h11's ConnectionPair): engines exchange packets and streams in memory
at a time we choose."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
from helpers.engine_pair import EnginePair, Hooks
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gossip.actions import CloseStream, ReplyStream
from gossip.codec import encode_message
from gossip.config import fast, lan
from gossip.engine import Engine
from gossip.errors import MalformedReason
from gossip.events import (
    DropReason,
    JoinFinished,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberSuspected,
    MemberUpdated,
    ProbeAcked,
    ProtocolViolation,
    Refuted,
    UndecryptableTraffic,
    UserMessage,
    ViolationsSuppressed,
)
from gossip.keyring import Keyring
from gossip.messages import NodeState, Ping, Suspect
from gossip.node_meta import NodeMeta, decode_meta, encode_meta
from gossip.rotation import KeyRotation


def test_join_exchanges_state_both_ways() -> None:
    c = EnginePair(2)
    batch = c.engines[1].join([c.addrs[0]], 0.0)
    c.pump()
    assert {m.name for m in c.engines[0].members()} == {"n0", "n1"}
    assert {m.name for m in c.engines[1].members()} == {"n0", "n1"}
    assert c.of(1, JoinFinished) == [JoinFinished(batch, 1, (), 0.0)]
    assert [e.member.name for e in c.of(0, MemberJoined)] == ["n0", "n1"]


def test_join_to_nobody_fails_cleanly() -> None:
    c = EnginePair(1)
    batch = c.engines[0].join([("198.51.100.7", 7946)], 0.0)
    c.pump()
    assert c.of(0, JoinFinished) == [JoinFinished(batch, 0, (("198.51.100.7", 7946),), 0.0)]
    empty = c.engines[0].join([], 0.0)
    c.pump()
    assert c.of(0, JoinFinished)[-1] == JoinFinished(empty, 0, (), 0.0)


def test_two_joins_in_flight_each_finish_with_their_own_batch() -> None:
    c = EnginePair(3)
    first = c.engines[2].join([c.addrs[0]], 0.0)
    second = c.engines[2].join([c.addrs[1], ("198.51.100.7", 7946)], 0.0)
    assert first != second
    c.pump()
    finished = {e.batch: e for e in c.of(2, JoinFinished)}
    assert finished[first].succeeded == 1
    assert finished[first].failed == ()
    assert finished[second].succeeded == 1
    assert finished[second].failed == (("198.51.100.7", 7946),)


def test_three_members_converge_and_probe_quietly() -> None:
    c = EnginePair(3)
    c.join_all()
    c.advance(10.0)
    for i in range(3):
        assert [m.state for m in c.engines[i].members()] == [NodeState.ALIVE] * 3
        assert c.engines[i].health_score == 0
        assert c.engines[i].counters.probe_failures == 0
        assert not c.of(i, MemberSuspected)
        acks = c.of(i, ProbeAcked)
        assert acks, "every member probes and is acked"
        assert {a.name for a in acks} == {f"n{j}" for j in range(3)} - {f"n{i}"}
        assert all(0.0 <= a.rtt <= c.engines[i].config.probe_timeout for a in acks)


def test_crashed_member_is_declared_dead_at_suspicion_timeout() -> None:
    c = EnginePair(3)
    c.join_all()
    c.down.add(2)
    crash = c.now
    c.advance(15.0)
    for i in (0, 1):
        failed = c.of(i, MemberFailed)
        assert [e.member.name for e in failed] == ["n2"]
        # n = 3: k = 0, so the timer is min = 4 s; detection within probe cadence + 1 s + 4 s
        assert 4.0 < failed[0].at - crash < 9.0
        assert c.state(i, "n2") is NodeState.DEAD


def test_failed_event_is_emitted_in_the_tick_that_declares_death() -> None:
    c = EnginePair(2)
    c.join_all()
    c.down.add(1)
    eng = c.engines[0]
    for _ in range(2000):
        c.now = round(c.now + 0.01, 9)
        eng.tick(c.now)
        before = eng.member("n1")
        assert before is not None
        evs = []
        while (ev := eng.next_event()) is not None:
            evs.append(ev)
        eng.packets_to_send()
        eng.streams_to_open()
        if before.state is NodeState.DEAD:
            assert any(isinstance(e, MemberFailed) for e in evs)
            return
    pytest.fail("never declared dead")


def test_suspected_member_refutes_and_stays_alive() -> None:
    c = EnginePair(3)
    c.join_all()
    inc = c.engines[1].local_member().incarnation
    bad = encode_message(Suspect(inc, "n1", "n0"))
    c.engines[0].handle_packet(bad, c.addrs[2], c.now)  # n0 hears "n1 is suspect"
    c.pump()
    c.advance(3.0)
    assert c.engines[1].local_member().incarnation == inc + 1
    for i in range(3):
        assert c.state(i, "n1") is NodeState.ALIVE
    assert c.engines[1].health_score >= 0
    # the refutation is an event (callers count it without polling the counters)
    assert [e.incarnation for e in c.of(1, Refuted)] == [inc + 1]
    assert c.engines[1].counters.refutations == 1
    assert not c.of(0, Refuted)


def test_graceful_leave_is_seen_as_leave() -> None:
    c = EnginePair(3)
    c.join_all()
    c.engines[2].leave(c.now)
    c.pump()
    c.advance(1.0)
    for i in (0, 1):
        assert [e.member.name for e in c.of(i, MemberLeft)] == ["n2"]
        assert not c.of(i, MemberFailed)
        assert c.state(i, "n2") is NodeState.LEFT
    c.advance(5.0)
    assert c.engines[2].leave_done()


def test_meta_update_and_user_messages_travel() -> None:
    c = EnginePair(3)
    c.join_all()
    c.engines[0].set_meta(b"zone=a", c.now)
    c.engines[0].broadcast_user(b"hello all", c.now)
    c.engines[0].send_user(c.addrs[1], b"direct", c.now)
    c.engines[0].send_user(c.addrs[2], b"reliable", c.now, reliable=True)
    c.pump()
    c.advance(2.0)
    for i in (1, 2):
        upd = c.of(i, MemberUpdated)
        assert upd and upd[-1].member.meta == b"zone=a"
        msgs = [e.data for e in c.of(i, UserMessage)]
        # like memberlist, a user broadcast is sent retransmit-limit times: duplicates are
        # the application's to drop
        assert msgs.count(b"hello all") >= 1
    assert [e.data for e in c.of(1, UserMessage) if e.data == b"direct"] == [b"direct"]
    rel = [e for e in c.of(2, UserMessage) if e.data == b"reliable"]
    assert len(rel) == 1 and rel[0].reliable


def test_push_pull_user_state_through_hooks() -> None:
    hooks = [Hooks(b"state-0"), Hooks(b"state-1")]
    c = EnginePair(2, hooks=list(hooks))
    c.engines[1].join([c.addrs[0]], 0.0)
    c.pump()
    assert hooks[0].got == [(b"state-1", True)]
    assert hooks[1].got == [(b"state-0", True)]


def test_indirect_probe_keeps_target_alive_when_direct_path_is_cut() -> None:
    c = EnginePair(3, disable_tcp_pings=True)
    c.join_all()
    c.cut = lambda a, b: {a, b} == {0, 2}
    c.advance(20.0)
    assert c.state(0, "n2") is NodeState.ALIVE
    assert c.state(2, "n0") is NodeState.ALIVE
    assert not c.of(0, MemberFailed)


def test_tcp_fallback_keeps_target_alive_when_udp_is_cut() -> None:
    c = EnginePair(2)
    c.join_all()
    c.cut = lambda a, b: True  # no UDP at all; TCP pings still work
    c.advance(20.0)
    assert c.state(0, "n1") is NodeState.ALIVE
    assert c.engines[0].counters.streams_out > 3


def test_relay_sends_nack_when_target_is_silent() -> None:
    c = EnginePair(3, disable_tcp_pings=True)
    c.join_all()
    c.down.add(2)
    before = c.engines[0].counters.probe_failures
    c.advance(3.0)
    assert c.engines[0].counters.probe_failures > before
    # nacks came back from the relay, so the health penalty is the number of missing nacks (0)
    assert c.engines[0].health_score <= 1


def test_pinned_target_is_probed_every_round() -> None:
    c = EnginePair(6, make=fast)
    c.join_all()
    c.engines[0].set_pinned_targets(["n5"])
    c.sent.clear()
    c.advance(1.0)
    pings = [d for (s, dst, d) in c.sent if s == 0 and dst == 5 and d[:1] in (b"\x00", b"\x07")]
    # one probe each 20 ms to n5 (the round robin alone would give ~1 in 5)
    assert len(pings) >= 45


def test_dead_after_confirmations_declares_death_early() -> None:
    slow: dict[str, Any] = {"suspicion_mult": 4, "suspicion_max_timeout_mult": 6}
    base = EnginePair(5, make=fast, dead_after_confirmations=0, **slow)
    base.join_all()
    quick = EnginePair(5, make=fast, dead_after_confirmations=1, **slow)
    quick.join_all()
    times = []
    for c in (base, quick):
        c.down.add(4)
        crash = c.now
        c.advance(1.0, step=0.002)
        times.append(min(e.at for e in c.of(0, MemberFailed)) - crash)
    assert times[1] < times[0]


def test_encrypted_cluster_and_wrong_key() -> None:
    key = Keyring.of(bytes(range(32)))
    c = EnginePair(2, keyrings=[key, key])
    c.join_all()
    assert c.state(0, "n1") is NodeState.ALIVE
    assert all(not d.startswith(b"\x00") for (_, _, d) in c.sent)
    wrong = EnginePair(2, keyrings=[key, Keyring.of(bytes(32))])
    wrong.engines[1].join([wrong.addrs[0]], 0.0)
    wrong.pump()
    assert wrong.of(1, JoinFinished)[0].succeeded == 0
    assert wrong.engines[0].counters.malformed.get(MalformedReason.DECRYPT_FAILED, 0) >= 1
    assert wrong.engines[0].member("n1") is None


def test_ping_for_another_node_gets_no_ack() -> None:
    c = EnginePair(1)
    ping = encode_message(Ping(5, "someone-else"))
    c.engines[0].handle_packet(ping, ("198.51.100.9", 7946), 0.0)
    assert c.engines[0].packets_to_send() == []
    assert c.engines[0].counters.drops[DropReason.PING_NOT_FOR_US] == 1
    c.engines[0].handle_packet(encode_message(Ping(5, "")), ("198.51.100.9", 7946), 0.0)
    assert len(c.engines[0].packets_to_send()) == 1


def test_bad_streams_are_answered_closed_and_bounded() -> None:
    cfg = replace(lan("x", bind_addr="192.0.2.1"), max_inbound_streams=2)
    eng = Engine(cfg, random.Random(0), now=0.0)
    peer = ("198.51.100.1", 1)
    garbage = eng.stream_accepted(peer, 0.0)
    eng.handle_stream(garbage, b"\x06\xc1\xc1\xc1", 0.0)
    acts = eng.streams_to_open()
    assert isinstance(acts[0], ReplyStream) and acts[0].data[:1] in (b"\x0d", b"\x09")
    assert acts[-1] == CloseStream(garbage)
    stall1 = eng.stream_accepted(peer, 0.0)
    eng.handle_stream(stall1, b"\x06\x83", 0.0)  # half a header, then nothing
    stall2 = eng.stream_accepted(peer, 0.0)
    # at the limit the oldest inbound stream makes room: slow peers cannot lock others out
    newest = eng.stream_accepted(peer, 0.0)
    assert eng.streams_to_open() == [CloseStream(stall1)]
    assert eng.counters.drops[DropReason.TOO_MANY_STREAMS] == 1
    eng.tick(11.0)
    closed = eng.streams_to_open()
    assert CloseStream(stall2) in closed and CloseStream(newest) in closed
    assert eng.counters.drops[DropReason.STREAM_TIMEOUT] == 2
    eng.handle_stream(stall1, b"late", 11.0)
    assert eng.counters.drops[DropReason.UNKNOWN_STREAM] == 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=200), max_size=8), st.lists(st.binary(max_size=200), max_size=4))
def test_random_input_never_raises_and_stays_bounded(
    packets: list[bytes], chunks: list[bytes]
) -> None:
    eng = Engine(lan("fuzz", bind_addr="192.0.2.1"), random.Random(0), now=0.0)
    src = ("198.51.100.2", 7946)
    for i, data in enumerate(packets):
        eng.handle_packet(data, src, float(i))
        for prefix in (b"\x07\x02", b"\x0c", b"\x09"):
            eng.handle_packet(prefix + data, src, float(i))
    conn = eng.stream_accepted(src, 0.0)
    for chunk in chunks:
        eng.handle_stream(conn, chunk, 1.0)
    eng.handle_stream(conn, b"", 2.0)
    eng.tick(100.0)
    # every stream ended (EOF or deadline) and nothing else grew without bound
    assert CloseStream(conn) in eng.streams_to_open() or eng.counters.drops
    deadline = eng.next_deadline()
    assert deadline is not None and deadline > 100.0
    assert len(eng.members()) <= 1 + 4 * len(packets)
    events = []
    while (ev := eng.next_event()) is not None:
        events.append(ev)
    assert len(events) <= 10_000
    # every violation is counted; events are rate limited and the rest summarised
    reported = {e.reason for e in events if isinstance(e, ProtocolViolation)}
    held = {r for e in events if isinstance(e, ViolationsSuppressed) for r, _ in e.counts}
    counted = set(eng.counters.drops) - {DropReason.UNKNOWN_ACK, DropReason.UNKNOWN_STREAM}
    assert counted == reported | held
    bad = sum(1 for e in events if isinstance(e, ProtocolViolation))
    assert bad <= eng.config.violation_burst + 100 * eng.config.violation_events_per_second


def test_push_pull_from_cached_states_is_byte_identical_to_the_codec() -> None:
    from gossip._wire import CodecCache, Wire, encode_state
    from gossip.codec import encode_stream_message
    from gossip.framing import seal_stream
    from gossip.messages import PushNodeState, PushPull

    cfg = lan("a", bind_addr="192.0.2.1", enable_compression=False)
    wire = Wire(cfg, None, random.Random(0))
    states = [
        PushNodeState(f"n{i}", bytes([192, 0, 2, i + 1]), 7946 + i * 100, b"m" * i, i, s)
        for i, s in enumerate(NodeState)
    ]
    cache = CodecCache()
    keys = [(s.name, s.addr, s.port, s.meta, s.incarnation, s.state, s.vsn) for s in states]
    for key in keys:
        assert cache.encode_state(key) == encode_state(key)
    ours = wire.encode_push_pull(True, [cache.encode_state(k) for k in keys], b"user", False)
    ref = encode_stream_message(PushPull(join=True, states=tuple(states), user_state=b"user"))
    assert ours == seal_stream(
        ref, wire.options, random.Random(0).randbytes, dialer=False, compress=False
    )


def test_incompatible_versions_refuse_the_push_pull() -> None:
    c = EnginePair(2, protocol_version=1, delegate_protocol_version=3, delegate_protocol_max=3)
    ok = EnginePair(1)
    # a peer whose delegate version 3 is outside our range [0, 0]
    ok.engines.append(c.engines[1])
    ok.addrs.append(c.addrs[1])
    ok.events.append([])
    ok.engines[1].join([ok.addrs[0]], 0.0)
    ok.pump()
    assert ok.engines[0].counters.drops.get(DropReason.INCOMPATIBLE_VERSION, 0) >= 1
    assert ok.engines[0].member("n1") is None


def test_cidrs_allowed_rejects_members_outside() -> None:
    c = EnginePair(4, cidrs_allowed=("192.0.2.0/30",))  # .1-.3 allowed, n3 at .4 is not
    c.join_all()
    for i in range(3):
        assert {m.name for m in c.engines[i].members()} == {"n0", "n1", "n2"}
    assert c.engines[0].counters.drops[DropReason.NOT_ALLOWED] >= 1


def test_alive_without_port_means_our_port() -> None:
    from gossip.messages import Alive

    c = EnginePair(1)
    alive = encode_message(Alive(1, "old", bytes([198, 51, 100, 5]), 0))
    c.engines[0].handle_packet(alive, ("198.51.100.5", 7946), 0.0)
    member = c.engines[0].member("old")
    assert member is not None and member.port == 7946


def test_member_table_is_bounded() -> None:
    from gossip.messages import Alive

    eng = Engine(lan("x", bind_addr="192.0.2.1", max_members=10), random.Random(0), now=0.0)
    for i in range(50):
        data = encode_message(Alive(1, f"m{i}", bytes([198, 51, 100, 1]), 7000 + i))
        eng.handle_packet(data, ("198.51.100.1", 7000 + i), 0.0)
    assert len(eng.members()) == 10
    assert eng.counters.drops[DropReason.TABLE_FULL] == 41


@pytest.mark.parametrize("direct", [False, True])
def test_refute_directly_sends_the_alive_to_every_live_member_at_once(direct: bool) -> None:
    c = EnginePair(3, refute_directly=direct)
    c.join_all()
    accused = c.engines[1]
    inc = accused.local_member().incarnation
    accused.handle_packet(encode_message(Suspect(inc, "n1", "n0")), c.addrs[0], c.now)
    assert accused.local_member().incarnation == inc + 1
    assert accused.counters.refutations == 1
    # Before any gossip tick: only the extension sends the refutation right away.
    sent_to = {p.addr for p in accused.packets_to_send()}
    assert sent_to == ({c.addrs[0], c.addrs[2]} if direct else set())


def test_key_rotation_through_node_meta_never_splits_and_then_refuses_the_old_key() -> None:
    """Three engines rotate K -> N as `gossip.rotation` orders it, each told of the new key
    seconds apart, adverts carried in node meta: no probe fails, nothing is undecryptable,
    and afterwards a fourth engine holding only K cannot join."""
    old, new = bytes(range(32)), bytes(range(1, 33))
    c = EnginePair(4, keyrings=[Keyring.of(old)] * 4)
    rotations = [KeyRotation(old, settle=2.0) for _ in range(3)]

    def sync() -> None:
        for i, rot in enumerate(rotations):
            eng = c.engines[i]
            adverts = {}
            for m in eng.alive_members():
                if m.name != eng.name:
                    meta = decode_meta(m.meta)
                    adverts[m.name] = meta.keys if isinstance(meta, NodeMeta) else None
            rot.handle_members(adverts, c.now)
            assert eng.keyring is not None
            if rot.keys != eng.keyring.keys:
                eng.set_keyring(Keyring(rot.keys))
            meta_bytes = encode_meta(NodeMeta(keys=rot.advert))
            if eng.local_member().meta != meta_bytes:
                eng.set_meta(meta_bytes, c.now)
        c.pump()

    sync()
    for i in range(1, 3):
        c.engines[i].join([c.addrs[0]], c.now)
        c.pump()
    for at in (1.0, 4.0, 7.0):  # the Secret reaches the nodes 3 s apart
        while c.now < at:
            c.advance(0.1, step=0.05)
            sync()
        rotations[int(at) // 3].handle_file_key(new, c.now)
        assert all(e.keyring is not None and e.keyring.primary == old for e in c.engines[:3])
    for _ in range(150):
        c.advance(0.1, step=0.05)
        sync()
    for i in range(3):
        assert c.engines[i].keyring == Keyring((new,))
        assert [m.state for m in c.engines[i].members()] == [NodeState.ALIVE] * 3
        assert c.engines[i].counters.malformed.get(MalformedReason.DECRYPT_FAILED, 0) == 0
        assert c.engines[i].counters.probe_failures == 0
        assert not c.of(i, MemberSuspected)
        assert not c.of(i, UndecryptableTraffic)  # what issue 11's "wrong key" check reads
    c.engines[3].join([c.addrs[0]], c.now)
    c.pump()
    assert c.of(3, JoinFinished)[-1].succeeded == 0
    assert [e.src_ip for e in c.of(0, UndecryptableTraffic)] == [c.addrs[3][0]]
    assert c.engines[0].counters.malformed.get(MalformedReason.DECRYPT_FAILED, 0) >= 1
    assert c.engines[0].member("n3") is None
