"""BGP mode in `l2agent plan`: per Service, which nodes announce to which peers with which
attributes, and why the other nodes do not (pure formatting of `explain_bgp`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from l2agent.bgp.frr_config import frr_community
from l2agent.bgp.plan import Advert, BgpServicePlan, network_key
from l2agent.model.community import BGPCommunity
from l2agent.model.crds import Network

__all__ = ["PeerAnnouncement", "merged", "service_json", "sessions_json", "table_lines"]


@dataclass(frozen=True, slots=True)
class PeerAnnouncement:
    """What one node sends one peer for one prefix of one Service (its adverts merged).

    `local_pref` is what the advertisements ask for; `local_pref_sent` is False when the
    session is eBGP (BGP carries LOCAL_PREF over iBGP only).
    """

    peer: str
    prefix: Network
    communities: tuple[BGPCommunity, ...]
    local_pref: int | None
    local_pref_sent: bool
    advertisements: tuple[str, ...]


def merged(adverts: Sequence[Advert], ibgp: Mapping[str, bool]) -> tuple[PeerAnnouncement, ...]:
    """One entry per (peer, prefix), in peer then prefix order."""
    groups: dict[tuple[str, Network], list[Advert]] = {}
    for a in adverts:
        groups.setdefault((a.peer, a.prefix), []).append(a)
    out = []
    for (peer, prefix), group in sorted(
        groups.items(), key=lambda kv: (kv[0][0], network_key(kv[0][1]))
    ):
        prefs = {a.local_pref for a in group if a.local_pref is not None}
        comms = {c for a in group for c in a.communities}
        out.append(
            PeerAnnouncement(
                peer=peer,
                prefix=prefix,
                communities=tuple(sorted(comms, key=lambda c: c.sort_key)),
                local_pref=max(prefs) if prefs else None,
                local_pref_sent=bool(prefs) and ibgp.get(peer, False),
                advertisements=tuple(sorted({a.advertisement for a in group})),
            )
        )
    return tuple(out)


def _attributes(a: PeerAnnouncement) -> str:
    parts = []
    if a.communities:
        parts.append("communities " + ",".join(frr_community(c) for c in a.communities))
    if a.local_pref is not None:
        note = "" if a.local_pref_sent else " (eBGP: not sent)"
        parts.append(f"localPref {a.local_pref}{note}")
    return (" " + " ".join(parts)) if parts else ""


def table_lines(
    services: Sequence[BgpServicePlan],
    sessions: Mapping[str, Sequence[str]],
    ibgp: Mapping[str, bool],
) -> list[str]:
    """The `BGP` section of the table: sessions per node, then every BGP Service."""
    bgp = [s for s in services if s.bgp]
    if not bgp and not any(sessions.values()):
        return []
    lines = ["", "BGP sessions (BGPPeer nodeSelectors):"]
    for node, peers in sorted(sessions.items()):
        lines.append(f"  {node}: {', '.join(peers) or '-'}")
    lines += ["", "BGP announcements (every eligible node announces):"]
    if not bgp:
        lines.append("  no Service in a pool with a BGPAdvertisement")
    for sp in bgp:
        ips = ",".join(map(str, sp.ips)) or "-"
        lines.append(f"  {sp.key} ({ips}, pool {sp.pool or '-'}):")
        for node, adverts in sorted(sp.announcing.items()):
            for a in merged(adverts, ibgp):
                lines.append(f"    {node} -> {a.peer}: {a.prefix}{_attributes(a)}")
        for node, reason in sorted(sp.node_reasons.items()):
            lines.append(f"    {node}: {reason.value}")
        if sp.error:
            lines.append(f"    {sp.error}")
    return lines


def service_json(sp: BgpServicePlan, ibgp: Mapping[str, bool]) -> dict[str, Any]:
    """One Service's BGP explanation as plain JSON values."""
    return {
        "namespace": sp.namespace,
        "name": sp.name,
        "ips": [str(ip) for ip in sp.ips],
        "pool": sp.pool,
        "reason": sp.reason.value if sp.reason is not None else None,
        "error": sp.error,
        "announcing": {
            node: [
                {
                    "peer": a.peer,
                    "prefix": str(a.prefix),
                    "communities": [c.spec_text for c in a.communities],
                    "local_pref": a.local_pref,
                    "local_pref_sent": a.local_pref_sent,
                    "advertisements": list(a.advertisements),
                }
                for a in merged(adverts, ibgp)
            ]
            for node, adverts in sorted(sp.announcing.items())
        },
        "not_announcing": {node: r.value for node, r in sorted(sp.node_reasons.items())},
    }


def sessions_json(sessions: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    return {node: list(peers) for node, peers in sorted(sessions.items())}
