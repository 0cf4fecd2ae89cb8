"""The BGP plan: which prefixes node `me` announces to which peers, with which attributes.

MetalLB's rule (`speaker/bgp_controller.go`), with no election: every node decides alone
and every eligible node announces, so the router sees one path per node (ECMP).  A node
announces a Service's IPs when

1. the Service holds IPs from a pool (`service_ips`, shared with layer 2 mode);
2. a BGPAdvertisement of that pool matches the Service (serviceSelectors) and selects the
   node (nodeSelectors), and those advertisements do not clash on LOCAL_PREF;
3. the node has no `NetworkUnavailable` condition and no exclude-from-external-load-balancers
   label (unless ignored);
4. `externalTrafficPolicy: Local` needs a serving endpoint on the node, `Cluster` any
   serving endpoint anywhere.

Each advertisement turns each IP into a prefix (the IP masked to `aggregationLength`) for
every peer it names (`peers`; none named: all) that has a session on the node (BGPPeer
`nodeSelectors`) and carries the prefix's family, with its communities and LOCAL_PREF
(sent to iBGP peers only: BGP never carries LOCAL_PREF over eBGP).  What one peer gets for
one prefix from several services or advertisements is merged into one `Route`.

`plan_bgp(state, me)` is what a speaker renders into frr.conf; `explain_bgp(state, nodes)`
answers the same question for every node at once, for `l2agent plan`.  Pure.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from l2agent.allocator import AllocationError, Assignment, allocate, class_matches
from l2agent.election import NotAnnouncing, has_serving_endpoint, node_condition, serving_nodes
from l2agent.model.bgp import BFDProfile, BGPAdvertisement, BGPPeer
from l2agent.model.bgp_checks import local_prefs_compatible, peers_conflict
from l2agent.model.community import BGPCommunity
from l2agent.model.crds import IPAddressPool, Network
from l2agent.model.snapshot import ClusterState
from l2agent.model.types import IPAddress
from l2agent.model.views import EndpointSliceView, ServiceView, TrafficPolicy
from l2agent.service_ips import InputSource, NoServiceIPs, known_slices, service_ips

__all__ = [
    "Advert",
    "BgpPlan",
    "BgpProblem",
    "BgpProblemKind",
    "BgpServicePlan",
    "Route",
    "Session",
    "explain_bgp",
    "network_key",
    "plan_bgp",
    "sessions_on",
]


def network_key(net: Network) -> tuple[int, int, int]:
    """Sort prefixes IPv4 first, then by address, then shorter first."""
    return (net.version, int(net.network_address), net.prefixlen)


@dataclass(frozen=True, slots=True)
class Session:
    """A BGP session that exists on the node: the peer and its BFD profile, if any."""

    peer: BGPPeer
    bfd: BFDProfile | None = None

    @property
    def name(self) -> str:
        return self.peer.name


@dataclass(frozen=True, slots=True)
class Advert:
    """One prefix of one Service to one peer, as one BGPAdvertisement asks for it.

    `local_pref` is what the advertisement sets (None: unset), whether or not the session
    can carry it (`Route` drops it for eBGP).
    """

    peer: str
    prefix: Network
    advertisement: str
    local_pref: int | None = None
    communities: tuple[BGPCommunity, ...] = ()


@dataclass(frozen=True, slots=True)
class BgpServicePlan:
    """One LoadBalancer Service in BGP mode: its IPs and pool, what each announcing node
    sends to which peer, and why every other node announces nothing.

    `reason`/`error` say why nobody announces before any node is looked at (no IP, IP in
    no pool, allocation failed); `bgp` is False when the pool has no BGPAdvertisement (a
    layer 2 only Service).
    """

    namespace: str
    name: str
    ips: tuple[IPAddress, ...] = ()
    pool: str | None = None
    bgp: bool = False
    reason: NotAnnouncing | None = None
    error: str | None = None
    announcing: Mapping[str, tuple[Advert, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    node_reasons: Mapping[str, NotAnnouncing] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def peers_of(self, node: str) -> tuple[str, ...]:
        """The peers `node` advertises this Service to (MetalLB's ServiceBGPStatus.peers)."""
        return tuple(sorted({a.peer for a in self.announcing.get(node, ())}))


@dataclass(frozen=True, slots=True)
class Route:
    """What FRR sends one peer for one prefix: every `Advert` for it merged.

    `local_pref` is None when unset or when the session is eBGP; `communities` is the
    union, in MetalLB's order; `services` are the `namespace/name`s behind the prefix.
    """

    peer: str
    prefix: Network
    local_pref: int | None = None
    communities: tuple[BGPCommunity, ...] = ()
    services: tuple[str, ...] = ()


class BgpProblemKind(enum.Enum):
    """What went wrong on this node; `.value` is the label shown to operators."""

    PEER_CONFLICT = "peerConflict"
    LOCAL_PREF_CONFLICT = "localPrefConflict"


@dataclass(frozen=True, slots=True)
class BgpProblem:
    """A conflict found while planning one node (the later object is left out)."""

    kind: BgpProblemKind
    subject: str
    message: str


@dataclass(frozen=True, slots=True)
class BgpPlan:
    """Everything node `me` needs in FRR: its sessions, the routes per peer, every BFD
    profile (MetalLB renders them all), and the explanation of every Service."""

    me: str
    sessions: tuple[Session, ...] = ()
    routes: tuple[Route, ...] = ()
    bfd_profiles: tuple[BFDProfile, ...] = ()
    services: tuple[BgpServicePlan, ...] = ()
    problems: tuple[BgpProblem, ...] = ()

    def routes_to(self, peer: str) -> tuple[Route, ...]:
        return tuple(r for r in self.routes if r.peer == peer)

    @property
    def prefixes(self) -> tuple[Network, ...]:
        """Every prefix announced to at least one peer, sorted."""
        return tuple(sorted({r.prefix for r in self.routes}, key=network_key))

    def service_peers(self) -> Mapping[str, tuple[str, ...]]:
        """`namespace/name` -> peers this node advertises it to (only non-empty ones)."""
        out = {s.key: s.peers_of(self.me) for s in self.services}
        return MappingProxyType({k: v for k, v in out.items() if v})

    def withdrawn(self) -> BgpPlan:
        """The same sessions with nothing announced: what a stopping speaker applies first."""
        return BgpPlan(self.me, self.sessions, (), self.bfd_profiles, (), self.problems)


def sessions_on(
    state: ClusterState, node: str
) -> tuple[tuple[Session, ...], tuple[BgpProblem, ...]]:
    """The peers whose `nodeSelectors` select `node` (MetalLB's `syncPeers`).

    `build_state` already left out peers that cannot share a node; a node whose labels
    still bring two incompatible peers together (no Node objects were known then) keeps
    the first by name and reports the other.
    """
    view = state.nodes.get(node)
    labels = view.labels if view is not None else {}
    kept: list[Session] = []
    problems: list[BgpProblem] = []
    for peer in state.bgp_peers:
        if not peer.selects_node(labels):
            continue
        clash = next((why for s in kept if (why := peers_conflict(s.peer, peer)) is not None), None)
        if clash is not None:
            problems.append(
                BgpProblem(
                    BgpProblemKind.PEER_CONFLICT,
                    peer.name,
                    f"BGPPeer {peer.name}: {clash}; no session on {node}",
                )
            )
            continue
        profile = state.bfd_profile(peer.bfd_profile) if peer.bfd_profile else None
        kept.append(Session(peer, profile))
    return tuple(kept), tuple(problems)


@dataclass(frozen=True, slots=True)
class _Options:
    ignore_exclude_lb: bool
    source: InputSource


def explain_bgp(
    state: ClusterState,
    nodes: Collection[str],
    *,
    ignore_exclude_lb: bool = False,
    lb_class: str | None = None,
    source: InputSource = InputSource.STATIC,
) -> tuple[BgpServicePlan, ...]:
    """What every node in `nodes` announces for every LoadBalancer Service of `lb_class`.

    `source`: static files or a cluster (see `service_ips`).
    """
    opts = _Options(ignore_exclude_lb, source)
    allocation = allocate(state, lb_class=lb_class, trust_status=True)
    sessions = {n: sessions_on(state, n)[0] for n in sorted(set(nodes))}
    return tuple(
        _explain_one(state, svc, allocation.get(svc.key), sessions, opts)
        for svc in state.services
        if svc.is_load_balancer and class_matches(svc, lb_class)
    )


def _explain_one(
    state: ClusterState,
    svc: ServiceView,
    result: Assignment | AllocationError | None,
    sessions: Mapping[str, tuple[Session, ...]],
    opts: _Options,
) -> BgpServicePlan:
    held = service_ips(state, svc, result, source=opts.source)
    if isinstance(held, NoServiceIPs):
        return BgpServicePlan(
            svc.namespace,
            svc.name,
            ips=held.ips,
            reason=held.reason,
            error=held.error,
            node_reasons=MappingProxyType(dict.fromkeys(sessions, held.reason)),
        )
    pool_ads = state.bgp_advertisements_for(held.pool)
    ads = tuple(ad for ad in pool_ads if ad.matches_service(svc.labels))
    slices = known_slices(state, svc, source=opts.source)
    announcing: dict[str, tuple[Advert, ...]] = {}
    reasons: dict[str, NotAnnouncing] = {}
    for node, node_sessions in sessions.items():
        chosen = _eligible_ads(state, svc, node, ads, held.pool, slices, opts)
        if isinstance(chosen, NotAnnouncing):
            reasons[node] = chosen
            continue
        adverts = _adverts(held.ips, chosen, node_sessions)
        if adverts:
            announcing[node] = adverts
        else:
            reasons[node] = NotAnnouncing.NO_PEERS
    return BgpServicePlan(
        svc.namespace,
        svc.name,
        ips=held.ips,
        pool=held.pool.name,
        bgp=bool(pool_ads),
        announcing=MappingProxyType(announcing),
        node_reasons=MappingProxyType(reasons),
    )


def _eligible_ads(
    state: ClusterState,
    svc: ServiceView,
    node: str,
    ads: Sequence[BGPAdvertisement],
    pool: IPAddressPool,
    slices: Sequence[EndpointSliceView] | None,
    opts: _Options,
) -> tuple[BGPAdvertisement, ...] | NotAnnouncing:
    """MetalLB's `ShouldAnnounce` for one node: the advertisements it announces with, or why
    it announces nothing."""
    if not ads:
        return NotAnnouncing.NO_ADVERTISEMENT
    view = state.nodes.get(node)
    labels = view.labels if view is not None else {}
    chosen = tuple(ad for ad in ads if ad.selects_node(labels))
    if not chosen:
        return NotAnnouncing.NO_MATCHING_ADVERTISEMENT
    for i, a in enumerate(chosen):
        for b in chosen[i + 1 :]:
            if not local_prefs_compatible(a, b, pool.families, share_nodes=True):
                return NotAnnouncing.CONFLICTING_ADVERTISEMENTS
    condition = node_condition(view, opts.ignore_exclude_lb)
    if condition is not None:
        return condition
    if slices is not None:
        if svc.external_traffic_policy is TrafficPolicy.LOCAL:
            if node not in serving_nodes(slices):
                return NotAnnouncing.NO_LOCAL_ENDPOINT
        elif not has_serving_endpoint(slices):
            return NotAnnouncing.NO_ENDPOINTS
    return chosen


def _adverts(
    ips: Sequence[IPAddress], ads: Sequence[BGPAdvertisement], sessions: Sequence[Session]
) -> tuple[Advert, ...]:
    """Every (IP x advertisement x peer) the node sends (MetalLB's `SetBalancer` then
    `adsForPeer`, and FRR mode's family filter: a peer only gets prefixes of its families)."""
    out: list[Advert] = []
    for ip in ips:
        for ad in ads:
            prefix = ipaddress.ip_network((ip, ad.aggregation_for(ip.version)), strict=False)
            for s in sessions:
                if ad.matches_peer(s.name) and ip.version in s.peer.families:
                    out.append(Advert(s.name, prefix, ad.name, ad.local_pref, ad.communities))
    return tuple(out)


def _routes(
    services: Sequence[BgpServicePlan], me: str, sessions: Sequence[Session]
) -> tuple[tuple[Route, ...], tuple[BgpProblem, ...]]:
    """Merge every Advert of node `me` into one Route per (peer, prefix)."""
    ibgp = {s.name: s.peer.is_ibgp for s in sessions}
    merged: dict[tuple[str, Network], tuple[set[int], set[BGPCommunity], set[str]]] = {}
    for sp in services:
        for a in sp.announcing.get(me, ()):
            prefs, comms, svcs = merged.setdefault((a.peer, a.prefix), (set(), set(), set()))
            if a.local_pref is not None:
                prefs.add(a.local_pref)
            comms.update(a.communities)
            svcs.add(sp.key)
    routes: list[Route] = []
    problems: list[BgpProblem] = []
    for (peer, prefix), (prefs, comms, svcs) in merged.items():
        if len(prefs) > 1 and ibgp.get(peer, False):
            problems.append(
                BgpProblem(
                    BgpProblemKind.LOCAL_PREF_CONFLICT,
                    str(prefix),
                    f"{prefix} to {peer}: services {', '.join(sorted(svcs))} ask for "
                    f"LOCAL_PREF {', '.join(map(str, sorted(prefs)))}; {max(prefs)} is sent",
                )
            )
        routes.append(
            Route(
                peer,
                prefix,
                max(prefs) if prefs and ibgp.get(peer, False) else None,
                tuple(sorted(comms, key=lambda c: c.sort_key)),
                tuple(sorted(svcs)),
            )
        )
    routes.sort(key=lambda r: (r.peer, network_key(r.prefix)))
    return tuple(routes), tuple(problems)


def plan_bgp(
    state: ClusterState,
    me: str,
    *,
    ignore_exclude_lb: bool = False,
    lb_class: str | None = None,
    source: InputSource = InputSource.STATIC,
) -> BgpPlan:
    """The BGP plan of node `me`: its sessions, its routes per peer, every BFD profile."""
    sessions, session_problems = sessions_on(state, me)
    services = explain_bgp(
        state,
        [me],
        ignore_exclude_lb=ignore_exclude_lb,
        lb_class=lb_class,
        source=source,
    )
    routes, route_problems = _routes(services, me, sessions)
    return BgpPlan(
        me=me,
        sessions=sessions,
        routes=routes,
        bfd_profiles=state.bfd_profiles,
        services=services,
        problems=(*session_problems, *route_problems),
    )
