"""Probe bookkeeping by sequence number: acks end, nacks count, deadlines drive phases."""

from __future__ import annotations

from gossip.probe import Probe, ProbePhase, ProbeTracker, Relay


def test_probe_phases_and_deadlines() -> None:
    t = ProbeTracker()
    p = t.start("b", now=10.0, timeout=0.5, interval=1.0, pinned=False)
    assert p.seq == 1 and p.deadline == 10.5 and t.next_deadline() == 10.5
    assert list(t.due_probes(10.4)) == []
    assert list(t.due_probes(10.5)) == [p]
    p.phase = ProbePhase.INDIRECT
    assert t.next_deadline() == 11.0
    assert t.regular_in_flight() and t.in_flight("b")


def test_probe_timeout_never_exceeds_interval() -> None:
    t = ProbeTracker()
    p = t.start("b", now=0.0, timeout=0.5, interval=0.2, pinned=True)
    assert p.direct_deadline == 0.2 == p.end
    assert not t.regular_in_flight()


def test_first_ack_wins_nacks_only_count_and_unknown_is_none() -> None:
    t = ProbeTracker()
    p = t.start("b", 0.0, 0.5, 1.0, False)
    assert t.nack(p.seq) is p and p.nacks == 1
    got = t.ack(p.seq)
    assert isinstance(got, Probe) and got.acked
    assert t.ack(p.seq) is None
    assert t.nack(p.seq) is None
    assert t.ack(999) is None


def test_relay_acks_and_expiry() -> None:
    t = ProbeTracker()
    r = t.relay(("198.51.100.1", 7946), their_seq=77, nack=True, deadline=5.0)
    r2 = t.relay(("198.51.100.2", 7946), their_seq=78, nack=False, deadline=6.0)
    assert isinstance(t.ack(r.seq), Relay)
    assert t.expired_relays(5.9) == []
    assert t.expired_relays(6.0) == [r2]
    assert t.next_deadline() is None


def test_sequence_numbers_wrap_at_uint32() -> None:
    t = ProbeTracker(seq=0xFFFF_FFFF)
    assert t.next_seq() == 0
    assert t.next_seq() == 1
