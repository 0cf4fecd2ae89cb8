"""FRR's JSON (captured from FRR 8.4 in the lab, tests/data/frr/) parsed into typed values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from l2agent.bgp.frr_poll import parse_all_vrfs
from l2agent.bgp.frr_state import (
    MAX_PEERS,
    FrrState,
    MalformedFrrOutput,
    parse_bfd_peers,
    parse_bgp_neighbors,
    up_sessions,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "frr"


def text(name: str) -> str:
    return (DATA / name).read_text()


def test_neighbors_of_a_real_frr() -> None:
    sessions = parse_bgp_neighbors(text("show_bgp_neighbors.json"))
    by = {s.address: s for s in sessions}
    assert set(by) == {"192.0.2.1", "192.0.2.2", "2001:db8::1"}
    up = by["192.0.2.1"]
    assert up.established and up.port == 179 and up.vrf == "default"
    assert up.label == "192.0.2.1:179"  # MetalLB's exporter: address:port, no brackets
    assert (up.prefixes_sent, up.updates_sent, up.opens_sent) == (1, 2, 2)
    assert up.established_count == 2 and up.dropped_count == 1
    down = by["192.0.2.2"]  # a wrong password: stuck in Connect, no connection, no port
    assert not down.established and down.state == "Connect" and down.port == 179
    assert down.prefixes_sent == 0 and down.updates_sent == 0
    assert by["2001:db8::1"].label == "2001:db8::1:179"
    assert up_sessions(sessions) == {"192.0.2.1", "2001:db8::1"}
    state = FrrState(sessions=sessions)
    assert state.session("2001:0db8::1") is by["2001:db8::1"]
    assert state.session("192.0.2.9") is None


def test_all_vrfs_document_keeps_each_vrf() -> None:
    doc = json.loads(text("show_bgp_neighbors.json"))
    wrapped = json.dumps(
        {
            "default": {"vrfId": 0, "vrfName": "default", **doc},
            "red": {"vrfId": 7, "vrfName": "red"},
        }
    )
    sessions = parse_all_vrfs(wrapped)
    assert {s.vrf for s in sessions} == {"default"} and len(sessions) == 3


def test_bfd_peers_joined_with_their_counters() -> None:
    peers = parse_bfd_peers(text("show_bfd_peers.json"), text("show_bfd_peers_counters.json"))
    assert [p.peer for p in peers] == ["192.0.2.1", "2001:db8::1"]
    v4 = peers[0]
    assert v4.up and v4.interface == "eth0" and not v4.multihop
    assert (v4.receive_interval_ms, v4.transmit_interval_ms, v4.detect_multiplier) == (50, 50, 3)
    assert (v4.session_up_events, v4.session_down_events) == (1, 0)
    assert v4.control_packet_input == 61 and v4.zebra_notifications == 2


def test_bfd_peers_without_counters_have_zero_counters() -> None:
    peers = parse_bfd_peers(text("show_bfd_peers.json"))
    assert all(p.session_up_events == 0 for p in peers) and all(p.up for p in peers)


@pytest.mark.parametrize(
    "bad",
    ["{", "[1, 2]", '{"192.0.2.1": 5}', '{"not-an-ip": {}, "192.0.2.300": {}}'],
)
def test_malformed_neighbors_are_refused_or_skipped(bad: str) -> None:
    if bad.startswith('{"not-an-ip"'):
        assert parse_bgp_neighbors(bad) == ()  # FRR's non-address keys are skipped
        return
    with pytest.raises(MalformedFrrOutput):
        parse_bgp_neighbors(bad)


def test_empty_output_means_no_sessions() -> None:
    assert parse_bgp_neighbors("") == () and parse_bfd_peers("", "") == ()


def test_wrong_types_count_as_zero_not_as_crash() -> None:
    doc = {"192.0.2.1": {"bgpState": "Established", "messageStats": {"updatesSent": "many"},
                         "addressFamilyInfo": {"x": {"sentPrefixCounter": True}}}}  # fmt: skip
    (s,) = parse_bgp_neighbors(json.dumps(doc))
    assert s.updates_sent == 0 and s.prefixes_sent == 0 and s.established


def test_bounded_input() -> None:
    many = json.dumps([{"peer": f"192.0.2.{i % 250}"} for i in range(MAX_PEERS + 1)])
    with pytest.raises(MalformedFrrOutput):
        parse_bfd_peers(many)
    with pytest.raises(MalformedFrrOutput):
        parse_bfd_peers('[{"peer": "nonsense"}]')
