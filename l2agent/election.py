"""Who announces a service IP: MetalLB's layer 2 election, as a pure function.

Every speaker runs the same computation on its own copy of the inputs and announces only
if it ranks itself first (MetalLB `speaker/layer2_controller.go`, `ShouldAnnounce`):

1. no serving endpoint anywhere -> nobody announces;
2. applicable advertisements: the pool's ads whose serviceSelectors match the service;
3. a shared IP (allow-shared-ip) with a service-selecting ad -> nobody (MetalLB refuses);
4. candidates: live members that are Node objects (a member without one, e.g. a peer that
   joined the gossip but is no Node of the cluster, is never elected: MetalLB only elects
   among the Node objects an advertisement selects), minus nodes outside every applicable
   ad's node set, minus
   `NetworkUnavailable=True` nodes, minus nodes with the exclude-from-external-load-balancers
   label (unless `ignore_exclude_lb`); with `externalTrafficPolicy: Local`, only nodes with
   a serving endpoint;
5. rank by preference score descending, then `sha256(node + "#" + first_ip)` raw digest
   ascending; element 0 announces every IP of the service.

The hash key is the IP, so services sharing an IP land on the same node.  Each node that
does not announce gets a `NotAnnouncing` reason.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from l2agent.model.crds import L2Advertisement
from l2agent.model.types import IPAddress
from l2agent.model.views import (
    EXCLUDE_LB_LABEL,
    EndpointSliceView,
    NodeView,
    ServiceView,
    TrafficPolicy,
)

__all__ = [
    "Election",
    "ElectionInput",
    "NotAnnouncing",
    "applicable_ads",
    "elect",
    "has_serving_endpoint",
    "hash_key",
    "ip_text",
    "node_condition",
    "rank",
    "serving_nodes",
]


class NotAnnouncing(enum.Enum):
    """Why a node does not announce a service; `.value` is the label shown to operators.

    MetalLB's own strings where it has one (`notOwner`, `noMatchingAdvertisement`,
    `sharedIPWithServiceSelector`, `noIPAllocated`, `ipNotAllowed`); finer reasons where it
    folds several cases into `notOwner`.
    """

    NOT_OWNER = "notOwner"
    NO_MATCHING_ADVERTISEMENT = "noMatchingAdvertisement"
    NO_ADVERTISEMENT = "noAdvertisement"
    NO_ENDPOINTS = "noServingEndpoints"
    NO_LOCAL_ENDPOINT = "noLocalEndpoint"
    NO_IP = "noIPAllocated"
    IP_NOT_IN_POOL = "ipNotAllowed"
    ALLOCATION_FAILED = "allocationFailed"
    NETWORK_UNAVAILABLE = "networkUnavailable"
    EXCLUDED = "excludedFromExternalLoadBalancers"
    NOT_A_MEMBER = "notAMember"
    NO_NODE_OBJECT = "noNodeObject"
    NO_ELIGIBLE_NODE = "noEligibleNode"
    SHARED_IP_WITH_SERVICE_SELECTOR = "sharedIPWithServiceSelector"
    # BGP mode (MetalLB's `conflictingAdvertisements`; `noPeers`: eligible, but no BGP
    # session on the node receives the prefix)
    CONFLICTING_ADVERTISEMENTS = "conflictingAdvertisements"
    NO_PEERS = "noPeers"


def ip_text(ip: IPAddress) -> str:
    """The IP as Go's `net.IP.String()` prints it (IPv4-mapped IPv6 as dotted quad)."""
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def hash_key(node: str, ip: str) -> bytes:
    """`sha256(node + "#" + ip)`, the raw digest MetalLB sorts on."""
    return hashlib.sha256(f"{node}#{ip}".encode()).digest()


def rank(
    candidates: Iterable[str], ip: str, scores: Mapping[str, int] | None = None
) -> tuple[str, ...]:
    """Candidates in election order: score descending, then hash ascending."""
    scores = scores or {}
    return tuple(sorted(set(candidates), key=lambda n: (-scores.get(n, 0), hash_key(n, ip))))


def has_serving_endpoint(slices: Iterable[EndpointSliceView]) -> bool:
    """MetalLB's `activeEndpointExists`."""
    return any(ep.can_serve for s in slices for ep in s.endpoints)


def serving_nodes(slices: Iterable[EndpointSliceView]) -> frozenset[str]:
    """Nodes hosting an endpoint that can serve (MetalLB's `nodesWithEndpoint`)."""
    return frozenset(
        ep.node_name for s in slices for ep in s.endpoints if ep.can_serve and ep.node_name
    )


def node_condition(node: NodeView | None, ignore_exclude_lb: bool) -> NotAnnouncing | None:
    """Why a node may not announce anything at all: `NetworkUnavailable`, or the
    exclude-from-external-load-balancers label (unless ignored); None when it may."""
    if node is None:
        return None
    if node.network_unavailable:
        return NotAnnouncing.NETWORK_UNAVAILABLE
    if EXCLUDE_LB_LABEL in node.labels and not ignore_exclude_lb:
        return NotAnnouncing.EXCLUDED
    return None


def applicable_ads(
    pool_ads: Iterable[L2Advertisement], svc: ServiceView
) -> tuple[L2Advertisement, ...]:
    """The pool's advertisements that cover this service (MetalLB's `l2AdsForService`)."""
    return tuple(ad for ad in pool_ads if ad.matches_service(svc.labels))


@dataclass(frozen=True, slots=True)
class ElectionInput:
    """Everything one election reads.

    `ads` are the L2Advertisements of the IP's pool (unfiltered); `members` the live
    gossip members (alive or suspect); `nodes` the Node objects by name (in static mode the
    configuration's Node objects): only members that are Node objects can be elected;
    `slices` the service's EndpointSlices, or None when they are unknown, which counts as
    "served on every node" (static mode).
    """

    service: ServiceView
    ip: IPAddress
    ads: Sequence[L2Advertisement]
    members: Collection[str]
    nodes: Mapping[str, NodeView] = field(default_factory=dict)
    slices: Sequence[EndpointSliceView] | None = None
    ignore_exclude_lb: bool = False


@dataclass(frozen=True, slots=True)
class Election:
    """The outcome: `owner` (None when nobody announces) and the ranked candidates.

    `reason` says why nobody announces; `excluded` gives, for every node that is not a
    candidate, why not.  `reason_for(node)` answers for any node.
    """

    owner: str | None
    ranked: tuple[str, ...] = ()
    reason: NotAnnouncing | None = None
    excluded: Mapping[str, NotAnnouncing] = field(default_factory=lambda: MappingProxyType({}))
    scores: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    members: Collection[str] = field(default=(), compare=False, repr=False)
    """The live members the election saw (not copied), to explain those without a Node."""

    def reason_for(self, node: str) -> NotAnnouncing | None:
        """None for the owner; otherwise why `node` does not announce."""
        if self.owner is not None and node == self.owner:
            return None
        if node in self.ranked:
            return NotAnnouncing.NOT_OWNER
        if node in self.excluded:
            return self.excluded[node]
        if self.reason in (None, NotAnnouncing.NO_ELIGIBLE_NODE) and node in self.members:
            return NotAnnouncing.NO_NODE_OBJECT  # the rest are reasons for every node
        return self.reason or NotAnnouncing.NOT_A_MEMBER


def _nobody(reason: NotAnnouncing, everyone: Iterable[str]) -> Election:
    return Election(None, (), reason, MappingProxyType(dict.fromkeys(sorted(everyone), reason)))


def elect(inp: ElectionInput) -> Election:
    """Run MetalLB's election for one service IP (see the module docstring for the steps).

    Only Node objects are walked: a member without one can never be elected, so however
    many such members a gossip holds (a flood of invented names), the work is the Node
    count's (`Election.reason_for` still explains them).
    """
    svc = inp.service
    everyone = inp.nodes.keys()
    if inp.slices is not None and not has_serving_endpoint(inp.slices):
        return _nobody(NotAnnouncing.NO_ENDPOINTS, everyone)
    ads = applicable_ads(inp.ads, svc)
    if not ads:
        return _nobody(NotAnnouncing.NO_ADVERTISEMENT, everyone)
    if _shares_ip(svc) and any(ad.service_selectors for ad in ads):
        return _nobody(NotAnnouncing.SHARED_IP_WITH_SERVICE_SELECTOR, everyone)
    local = svc.external_traffic_policy is TrafficPolicy.LOCAL and inp.slices is not None
    with_endpoint = serving_nodes(inp.slices) if local and inp.slices is not None else frozenset()
    members = set(inp.members)
    excluded: dict[str, NotAnnouncing] = {}
    candidates: list[str] = []
    for name in sorted(everyone):
        node = inp.nodes[name]
        if not any(ad.selects_node(node.labels) for ad in ads):
            excluded[name] = NotAnnouncing.NO_MATCHING_ADVERTISEMENT
        elif name not in members:
            excluded[name] = NotAnnouncing.NOT_A_MEMBER
        elif (condition := node_condition(node, inp.ignore_exclude_lb)) is not None:
            excluded[name] = condition
        elif local and name not in with_endpoint:
            excluded[name] = NotAnnouncing.NO_LOCAL_ENDPOINT
        else:
            candidates.append(name)
    scores = {}
    for name in candidates:
        score = sum(ad.preference_score(inp.nodes[name].labels) for ad in ads)
        if score:
            scores[name] = score
    ranked = rank(candidates, ip_text(inp.ip), scores)
    frozen_excluded = MappingProxyType(excluded)
    if not ranked:
        return Election(
            None, (), NotAnnouncing.NO_ELIGIBLE_NODE, frozen_excluded, members=inp.members
        )
    return Election(
        ranked[0], ranked, None, frozen_excluded, MappingProxyType(scores), members=inp.members
    )


def _shares_ip(svc: ServiceView) -> bool:
    return "metallb.io/allow-shared-ip" in svc.annotations or (
        "metallb.universe.tf/allow-shared-ip" in svc.annotations
    )
