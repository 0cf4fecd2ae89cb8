"""The /status BGP rows: the plan's sessions joined with FRR's reading by address and VRF."""

from __future__ import annotations

from pathlib import Path

from l2agent.bgp.frr_state import BfdPeer, BgpSession, FrrState
from l2agent.bgp.plan import plan_bgp
from l2agent.bgp.sessions import bgp_report, session_rows
from l2agent.model import build_state
from l2agent.model.reports import BgpSessionRow
from l2agent.static import load_yaml_files

DATA = Path(__file__).resolve().parents[1] / "data" / "bgp"


def _session(address: str, state: str, vrf: str = "default", sent: int = 0) -> BgpSession:
    return BgpSession(address, 179, vrf, state, sent, *(0,) * 12, last_reset="Hold Timer Expired")


def _bfd(peer: str, status: str) -> BfdPeer:
    return BfdPeer(peer, "", "default", "", status, False, 300, 300, 3)


def test_rows_name_the_peer_and_carry_frrs_state() -> None:
    result = build_state(load_yaml_files([DATA / "bfd-profiles.yaml"]))
    plan = plan_bgp(result.state, "node1")
    assert plan.sessions
    first = plan.sessions[0].peer
    state = FrrState(
        sessions=(
            _session(str(first.address), "Established", sent=2),
            _session("192.0.2.99", "Idle"),
        ),
        bfd_peers=(_bfd(str(first.address), "up"),),
    )
    rows = session_rows(plan, state)
    by_peer = {r.peer: r for r in rows}
    row = by_peer[first.name]
    assert (row.address, row.state, row.prefixes_sent, row.established) == (
        str(first.address), "Established", 2, True)  # fmt: skip
    assert row.bfd == ("up" if plan.sessions[0].bfd is not None else None)
    # FRR's neighbor that no BGPPeer names comes last, without a name
    assert rows[-1] == BgpSessionRow("", "192.0.2.99", "default", "Idle", 0, None,
                                     "Hold Timer Expired")  # fmt: skip
    # a planned session FRR does not have yet: no state
    empty = session_rows(plan, FrrState())
    assert [r.state for r in empty] == [""] * len(plan.sessions)
    assert bgp_report(plan, FrrState(error="vtysh: timeout")).error == "vtysh: timeout"


def test_vrf_sessions_join_on_their_vrf() -> None:
    result = build_state(load_yaml_files([DATA / "vrf.yaml"]))
    plan = plan_bgp(result.state, "node1")
    state = FrrState(
        sessions=(_session("192.0.2.1", "Established"), _session("192.0.2.1", "Active", "red"))
    )
    rows = {(r.peer, r.vrf): r.state for r in session_rows(plan, state)}
    assert rows == {("default-vrf", "default"): "Established", ("red", "red"): "Active"}
