"""This node's BGP sessions as operators read them (``/status``, ``l2agent status``).

Pure: the sessions the plan asks for (one per BGPPeer that selects the node) joined with
FRR's latest reading (``FrrState``) by address and VRF, so each row names the BGPPeer and
says what FRR makes of it; a neighbor FRR has that the plan does not name (a reload still
pending) is listed too, without a peer name.
"""

from __future__ import annotations

import ipaddress

from l2agent.bgp.frr_state import DEFAULT_VRF, FrrState
from l2agent.bgp.plan import BgpPlan
from l2agent.model.reports import BgpReport, BgpSessionRow

__all__ = ["bgp_report", "session_rows"]


def _address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text  # an interface (unnumbered peering)


def session_rows(plan: BgpPlan | None, state: FrrState) -> tuple[BgpSessionRow, ...]:
    """One row per planned session (sorted by VRF, then peer name), then FRR's other
    neighbors."""
    frr = {(s.vrf, s.address): s for s in state.sessions}
    bfd = {(b.vrf, b.peer): b.status for b in state.bfd_peers}
    rows: list[BgpSessionRow] = []
    seen: set[tuple[str, str]] = set()
    planned = sorted(
        plan.sessions if plan is not None else (),
        key=lambda s: (s.peer.vrf or DEFAULT_VRF, s.peer.name),
    )
    for session in planned:
        peer = session.peer
        vrf = peer.vrf or DEFAULT_VRF
        address = _address(str(peer.address) if peer.address is not None else peer.interface or "")
        key = (vrf, address)
        seen.add(key)
        found = frr.get(key)
        rows.append(
            BgpSessionRow(
                peer=peer.name,
                address=address,
                vrf=vrf,
                state=found.state if found is not None else "",
                prefixes_sent=found.prefixes_sent if found is not None else 0,
                bfd=bfd.get(key, "") if session.bfd is not None else None,
                last_reset=found.last_reset if found is not None else "",
            )
        )
    for key, s in sorted(frr.items()):
        if key not in seen:
            rows.append(
                BgpSessionRow(
                    peer="",
                    address=s.address,
                    vrf=s.vrf,
                    state=s.state,
                    prefixes_sent=s.prefixes_sent,
                    bfd=bfd.get(key),
                    last_reset=s.last_reset,
                )
            )
    return tuple(rows)


def bgp_report(plan: BgpPlan | None, state: FrrState) -> BgpReport:
    """The ``/status`` BGP section: the rows and why FRR could not be read, if it could not."""
    return BgpReport(session_rows(plan, state), state.error)
