"""Checks across BGP objects, MetalLB's `config.For` rules, each dropping only the bad object.

Each failed check leaves the object at fault out and reports it as an `ObjectProblem`;
what that costs the rest of the configuration is `problems.cost`'s decision.  What MetalLB
calls a *transient* error (a Secret, BFDProfile or Community alias that may not have
arrived yet) is `MISSING_REFERENCE`.  Everything runs on objects sorted by name, so every
node leaves out the same one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from l2agent.model.bgp import BFDProfile, BGPAdvertisement, BGPPeer
from l2agent.model.crds import IPAddressPool
from l2agent.model.problems import ObjectProblem, ProblemReason
from l2agent.model.secrets import BASIC_AUTH, SecretView, check_password
from l2agent.model.selectors import selectors_disjoint
from l2agent.model.views import NodeView

__all__ = [
    "check_advertisements",
    "check_peers",
    "local_prefs_compatible",
    "peers_conflict",
]


def _peer_problem(peer: BGPPeer, reason: ProblemReason, message: str) -> ObjectProblem:
    return ObjectProblem("BGPPeer", peer.namespace, peer.name, reason, message)


def _resolve_password(
    peer: BGPPeer, secrets: Mapping[tuple[str, str], SecretView], out: list[ObjectProblem]
) -> BGPPeer | None:
    """The peer with its `passwordSecret` read into `password`, or None (reported)."""
    ref = peer.password_secret
    if ref is None:
        return peer
    where = f"BGPPeer {peer.name}"
    ns = ref.namespace or peer.namespace
    secret = secrets.get((ns, ref.name))
    message: str | None = None
    if secret is None:
        out.append(
            _peer_problem(
                peer,
                ProblemReason.MISSING_REFERENCE,
                f"{where}: passwordSecret {ns}/{ref.name} not found; peer not used yet",
            )
        )
        return None
    if secret.type != BASIC_AUTH:
        message = (
            f"{where}: secret type mismatch on {ns}/{ref.name}: type {BASIC_AUTH!r} is "
            f"expected, got {secret.type!r}"
        )
    elif ref.key != "password":
        message = f"{where}: passwordSecret key {ref.key!r}: MetalLB reads 'password'"
    elif secret.problem is not None:
        message = f"{where}: password secret {ns}/{ref.name}: {secret.problem}"
    elif secret.password is None:
        message = f"{where}: password not specified in the secret {ns}/{ref.name}"
    if message is not None or secret.password is None:
        out.append(_peer_problem(peer, ProblemReason.INVALID, message or where))
        return None
    password = check_password(secret.password.reveal(), where)
    return dataclasses.replace(peer, password=password, password_secret=None)


def _share_a_node(a: BGPPeer, b: BGPPeer, nodes: Sequence[NodeView]) -> bool:
    """MetalLB's `peersShareNode`, with one refinement: without Node objects, two peers
    whose node selectors provably never match one label set do not share a node."""
    if not nodes:
        return not selectors_disjoint(a.node_selectors, b.node_selectors)
    return any(a.selects_node(n.labels) and b.selects_node(n.labels) for n in nodes)


def peers_conflict(a: BGPPeer, b: BGPPeer) -> str | None:
    """Why two peers cannot live in one FRR on one node (MetalLB's `peersCanRunOnSameNode`)."""
    if a.router_id != b.router_id:
        return (
            f"routerID {b.router_id or '(unset)'} differs from peer {a.name}'s "
            f"{a.router_id or '(unset)'}; peers on one node must share one router ID"
        )
    if a.peer_id == b.peer_id:
        return f"peer {b.peer_id} is already configured by BGPPeer {a.name} on the same nodes"
    if a.my_asn != b.my_asn and a.vrf == b.vrf:
        return (
            f"myASN {b.my_asn} differs from peer {a.name}'s {a.my_asn} in the same VRF "
            "on the same nodes"
        )
    return None


def check_peers(
    peers: Iterable[BGPPeer],
    secrets: Mapping[tuple[str, str], SecretView],
    bfd_profiles: Mapping[str, BFDProfile],
    nodes: Sequence[NodeView],
    out: list[ObjectProblem],
) -> list[BGPPeer]:
    """Peers that can be used: password resolved, BFD profile known, no clash on a node."""
    kept: list[BGPPeer] = []
    for peer in sorted(peers, key=lambda p: p.name):
        if peer.bfd_profile is not None and peer.bfd_profile not in bfd_profiles:
            out.append(
                _peer_problem(
                    peer,
                    ProblemReason.MISSING_REFERENCE,
                    f"BGPPeer {peer.name}: references non existing BFDProfile "
                    f"{peer.bfd_profile}; peer not used yet",
                )
            )
            continue
        resolved = _resolve_password(peer, secrets, out)
        if resolved is None:
            continue
        clash = next(
            (
                (other, why)
                for other in kept
                if _share_a_node(other, resolved, nodes)
                and (why := peers_conflict(other, resolved)) is not None
            ),
            None,
        )
        if clash is not None:
            out.append(
                _peer_problem(
                    peer,
                    ProblemReason.CONFLICT,
                    f"BGPPeer {peer.name}: {clash[1]}; peer {peer.name} is ignored",
                )
            )
            continue
        kept.append(resolved)
    return kept


def _aggregation_problem(ad: BGPAdvertisement, pool: IPAddressPool) -> str | None:
    """MetalLB's `validateBGPAdvPerPool` first half: the aggregation length may not be
    shorter than the widest CIDR of any `spec.addresses` entry of the pool."""
    for entry in pool.entries():
        if not entry:
            continue
        length = ad.aggregation_for(entry[0].version)
        widest = min(c.prefixlen for c in entry)
        if length < widest:
            family = "aggregationLength" if entry[0].version == 4 else "aggregationLengthV6"
            return (
                f"invalid {family} {length}: prefix /{widest} in pool {pool.name} is more "
                f"specific than the aggregation length for {', '.join(map(str, entry))}"
            )
    return None


def _aggregation_differs(
    a: BGPAdvertisement, b: BGPAdvertisement, families: frozenset[int]
) -> bool:
    """MetalLB's `isAggrLengthDifferent` for a pool with these address families."""
    v4 = a.aggregation_length != b.aggregation_length
    v6 = a.aggregation_length_v6 != b.aggregation_length_v6
    if not families:
        return True
    if families == {4}:
        return v4
    if families == {6}:
        return v6
    return v4 and v6


def local_prefs_compatible(
    a: BGPAdvertisement,
    b: BGPAdvertisement,
    families: frozenset[int],
    share_nodes: bool,
) -> bool:
    """MetalLB's `BGPAdvertisementsHaveCompatibleLocalPref`: two advertisements of one pool
    may set different LOCAL_PREFs only for different prefixes, peers or nodes."""
    if a.local_pref == b.local_pref or _aggregation_differs(a, b, families):
        return True
    if a.peers and b.peers and not set(a.peers) & set(b.peers):
        return True
    return not share_nodes


def _ads_share_a_node(a: BGPAdvertisement, b: BGPAdvertisement, nodes: Sequence[NodeView]) -> bool:
    """MetalLB compares the selected Node objects; with none known nothing is shared."""
    return any(a.selects_node(n.labels) and b.selects_node(n.labels) for n in nodes)


def _echo_peer_for_v6(
    ad: BGPAdvertisement, peers: Sequence[BGPPeer], bfd_profiles: Mapping[str, BFDProfile]
) -> BGPPeer | None:
    for peer in peers:
        if not ad.matches_peer(peer.name) or peer.bfd_profile is None:
            continue
        profile = bfd_profiles.get(peer.bfd_profile)
        if profile is not None and profile.echo_mode:
            return peer
    return None


def check_advertisements(
    ads: Iterable[BGPAdvertisement],
    pools: Sequence[IPAddressPool],
    peers: Sequence[BGPPeer],
    bfd_profiles: Mapping[str, BFDProfile],
    nodes: Sequence[NodeView],
    out: list[ObjectProblem],
) -> list[BGPAdvertisement]:
    """Advertisements that fit every pool they apply to (aggregation length, LOCAL_PREF
    against the advertisements already kept, no BFD echo toward an IPv6 pool's peers)."""
    kept: list[BGPAdvertisement] = []
    for ad in sorted(ads, key=lambda a: a.name):
        problem: tuple[ProblemReason, str] | None = None
        for pool in pools:
            if not ad.applies_to_pool(pool.name, pool.labels):
                continue
            problem = _pool_problem(ad, pool, peers, bfd_profiles)
            if problem is None and not ad.service_selectors:
                clash = _local_pref_clash(ad, kept, pool, nodes)
                problem = None if clash is None else (ProblemReason.CONFLICT, clash)
            if problem is not None:
                break
        if problem is not None:
            reason, text = problem
            out.append(
                ObjectProblem(
                    "BGPAdvertisement",
                    ad.namespace,
                    ad.name,
                    reason,
                    f"BGPAdvertisement {ad.name}: {text}; ignored",
                )
            )
            continue
        kept.append(ad)
    return kept


def _pool_problem(
    ad: BGPAdvertisement,
    pool: IPAddressPool,
    peers: Sequence[BGPPeer],
    bfd_profiles: Mapping[str, BFDProfile],
) -> tuple[ProblemReason, str] | None:
    """What keeps `ad` from announcing `pool`'s addresses on its own terms."""
    text = _aggregation_problem(ad, pool)
    if text is not None:
        return ProblemReason.INVALID, text
    if 6 in pool.families:
        echo = _echo_peer_for_v6(ad, peers, bfd_profiles)
        if echo is not None:
            return ProblemReason.INVALID, (
                f"pool {pool.name} has IPv6 addresses and peer {echo.name} has BFD echo mode "
                "enabled, which FRR cannot do over IPv6"
            )
    return None


def _local_pref_clash(
    ad: BGPAdvertisement,
    kept: Sequence[BGPAdvertisement],
    pool: IPAddressPool,
    nodes: Sequence[NodeView],
) -> str | None:
    for other in kept:
        if other.service_selectors or not other.applies_to_pool(pool.name, pool.labels):
            continue
        if not local_prefs_compatible(
            ad, other, pool.families, _ads_share_a_node(ad, other, nodes)
        ):
            return (
                f"invalid localPref {ad.local_pref or 0}: BGPAdvertisement {other.name} "
                f"already sets {other.local_pref or 0} for the same prefixes of pool {pool.name}"
            )
    return None
