"""The lab prober's outage arithmetic: last reply from the old owner to first from the new."""

from __future__ import annotations

from l2agent.lab.echo import reply_for
from l2agent.lab.prober import Probe, answered_by, from_json, outage, to_json


def probes() -> list[Probe]:
    return [
        Probe(0, 0.000, 0.001, "node1"),
        Probe(1, 0.002, 0.003, "node1"),
        Probe(2, 0.004, None, None),
        Probe(3, 0.006, None, None),
        Probe(4, 0.008, 0.0095, "node2"),
        Probe(5, 0.010, 0.011, "node2"),
    ]


def test_outage_spans_last_old_reply_to_first_new_reply() -> None:
    got = outage(probes(), "node1", "node2")
    assert got is not None
    assert (got.last_old, got.first_new, got.lost) == (0.003, 0.0095, 2)
    assert abs(got.seconds - 0.0065) < 1e-12


def test_outage_is_none_when_a_side_never_answered() -> None:
    assert outage(probes(), "node3", "node2") is None
    assert outage(probes(), "node2", "node1") is None  # node1 never answers after node2


def test_answered_by_orders_nodes_by_first_reply() -> None:
    assert answered_by(probes()) == ["node1", "node2"]
    assert answered_by([Probe(0, 0.0, None, None)]) == []


def test_json_round_trip() -> None:
    assert from_json(to_json("192.0.2.200", 0.002, probes())) == probes()


def test_echo_reply_carries_the_request_and_the_name() -> None:
    assert reply_for(b"L2PB\x00\x00\x00\x00\x00\x00\x00\x07", b"node2").endswith(b"|node2")
    assert len(reply_for(b"x" * 500, b"n")) == 66
