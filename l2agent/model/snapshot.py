"""`ClusterState`: one immutable snapshot of every input the plan reads.

`build_state` is the counterpart of MetalLB's `config.For`: it turns a bag of plain dicts
(static YAML files, or objects the Kubernetes glue converted) into validated values, and
reports what it could not use instead of raising: every object left out is an
`ObjectProblem` (kinds we do not read are reported too; an object that names a Secret,
BFDProfile or Community alias that is not there waits, as `MISSING_REFERENCE`). What a
problem costs is `l2agent.model.problems.cost`'s decision (today: only its own object); a
pool left out is kept as a `HeldPool`, so the Services holding its IPs keep them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from l2agent.errors import ConfigError
from l2agent.model import _meta
from l2agent.model.bgp import (
    BFDProfile,
    BGPAdvertisement,
    BGPPeer,
    CommunityAliases,
    ServiceBGPStatus,
)
from l2agent.model.bgp_checks import check_advertisements, check_peers
from l2agent.model.community import BGPCommunity, CommunityFormatError
from l2agent.model.crds import IPAddressPool, L2Advertisement, ServiceL2Status, cidrs_overlap
from l2agent.model.held import HeldPool, held_pool_for
from l2agent.model.problems import Cost, ObjectProblem, ProblemReason, cost, stale
from l2agent.model.secrets import SecretView
from l2agent.model.types import IPAddress
from l2agent.model.views import EndpointSliceView, NamespaceView, NodeView, ServiceView

__all__ = ["BGP_KINDS", "BuildResult", "ClusterState", "build_state", "expand_lists"]

log = logging.getLogger(__name__)

#: MetalLB kinds that only BGP mode uses.
BGP_KINDS = frozenset({"BGPPeer", "BGPAdvertisement", "BFDProfile", "Community"})
#: Namespaces carry this label automatically; used when no Namespace object was given.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
_NO_NODES: Mapping[str, NodeView] = MappingProxyType({})
_NO_NAMESPACES: Mapping[str, NamespaceView] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ClusterState:
    """Everything the plan reads, validated and sorted so every node iterates alike.

    Pools and advertisements are sorted by name, services by `namespace/name`; `nodes`
    and `namespaces` are read-only mappings by name.
    """

    pools: tuple[IPAddressPool, ...] = ()
    advertisements: tuple[L2Advertisement, ...] = ()
    services: tuple[ServiceView, ...] = ()
    nodes: Mapping[str, NodeView] = field(default_factory=lambda: _NO_NODES, hash=False)
    endpoint_slices: tuple[EndpointSliceView, ...] = ()
    namespaces: Mapping[str, NamespaceView] = field(
        default_factory=lambda: _NO_NAMESPACES, hash=False
    )
    l2_statuses: tuple[ServiceL2Status, ...] = ()
    bgp_peers: tuple[BGPPeer, ...] = ()
    bgp_advertisements: tuple[BGPAdvertisement, ...] = ()
    bfd_profiles: tuple[BFDProfile, ...] = ()
    communities: tuple[CommunityAliases, ...] = ()
    bgp_statuses: tuple[ServiceBGPStatus, ...] = ()
    held_pools: tuple[HeldPool, ...] = ()
    """Pools left out (bad, or in conflict with an earlier one): see `held_pool_for`."""
    _slices_index: Mapping[str, tuple[EndpointSliceView, ...]] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        index: dict[str, list[EndpointSliceView]] = {}
        for s in self.endpoint_slices:
            index.setdefault(s.service_key, []).append(s)
        frozen = MappingProxyType({k: tuple(v) for k, v in index.items()})
        object.__setattr__(self, "_slices_index", frozen)

    @classmethod
    def of(
        cls,
        *,
        pools: Iterable[IPAddressPool] = (),
        advertisements: Iterable[L2Advertisement] = (),
        services: Iterable[ServiceView] = (),
        nodes: Iterable[NodeView] = (),
        endpoint_slices: Iterable[EndpointSliceView] = (),
        namespaces: Iterable[NamespaceView] = (),
        l2_statuses: Iterable[ServiceL2Status] = (),
        bgp_peers: Iterable[BGPPeer] = (),
        bgp_advertisements: Iterable[BGPAdvertisement] = (),
        bfd_profiles: Iterable[BFDProfile] = (),
        communities: Iterable[CommunityAliases] = (),
        bgp_statuses: Iterable[ServiceBGPStatus] = (),
        held_pools: Iterable[HeldPool] = (),
    ) -> ClusterState:
        """Build from already-validated values (sorting them); no cross-object checks."""
        return cls(
            pools=tuple(sorted(pools, key=lambda p: p.name)),
            advertisements=tuple(sorted(advertisements, key=lambda a: a.name)),
            services=tuple(sorted(services, key=lambda s: (s.namespace, s.name))),
            nodes=MappingProxyType({n.name: n for n in sorted(nodes, key=lambda n: n.name)}),
            endpoint_slices=tuple(
                sorted(endpoint_slices, key=lambda e: (e.namespace, e.service_name, e.name))
            ),
            namespaces=MappingProxyType({n.name: n for n in namespaces}),
            l2_statuses=tuple(sorted(l2_statuses, key=lambda s: (s.namespace, s.name))),
            bgp_peers=tuple(sorted(bgp_peers, key=lambda p: p.name)),
            bgp_advertisements=tuple(sorted(bgp_advertisements, key=lambda a: a.name)),
            bfd_profiles=tuple(sorted(bfd_profiles, key=lambda b: b.name)),
            communities=tuple(sorted(communities, key=lambda c: c.name)),
            bgp_statuses=tuple(sorted(bgp_statuses, key=lambda s: (s.namespace, s.name))),
            held_pools=tuple(sorted(held_pools, key=lambda h: h.name)),
        )

    def pool(self, name: str) -> IPAddressPool | None:
        return next((p for p in self.pools if p.name == name), None)

    def pool_for(self, ip: IPAddress) -> IPAddressPool | None:
        """The pool an IP belongs to (pools never overlap, so at most one)."""
        return next((p for p in self.pools if p.contains(ip)), None)

    def held_pool_for(self, svc: ServiceView) -> HeldPool | None:
        """The left-out pool whose IPs `svc` keeps (None: the Service is not held)."""
        return held_pool_for(svc, self.held_pools, self.pools)

    def held_pool(self, name: str) -> HeldPool | None:
        return next((h for h in self.held_pools if h.name == name), None)

    def service(self, key: str) -> ServiceView | None:
        return next((s for s in self.services if s.key == key), None)

    def slices_for(self, service_key: str) -> tuple[EndpointSliceView, ...]:
        return self._slices_index.get(service_key, ())

    def advertisements_for(self, pool: IPAddressPool) -> tuple[L2Advertisement, ...]:
        """The L2Advertisements that apply to a pool (none: allocated but never announced)."""
        return tuple(ad for ad in self.advertisements if ad.applies_to_pool(pool))

    def bgp_advertisements_for(self, pool: IPAddressPool) -> tuple[BGPAdvertisement, ...]:
        """The BGPAdvertisements that apply to a pool (none: never announced over BGP)."""
        return tuple(
            ad for ad in self.bgp_advertisements if ad.applies_to_pool(pool.name, pool.labels)
        )

    def bgp_peer(self, name: str) -> BGPPeer | None:
        return next((p for p in self.bgp_peers if p.name == name), None)

    def bfd_profile(self, name: str) -> BFDProfile | None:
        return next((b for b in self.bfd_profiles if b.name == name), None)

    def namespace_labels(self, name: str) -> Mapping[str, str]:
        """Labels of a namespace, with the label Kubernetes always sets on it."""
        labels = dict(self.namespaces[name].labels) if name in self.namespaces else {}
        labels.setdefault(NAMESPACE_NAME_LABEL, name)
        return labels


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What `build_state` made of its input: the state without the bad objects, and why
    each object was left out (or, for kinds we do not act on, only reported)."""

    state: ClusterState
    problems: tuple[ObjectProblem, ...] = ()
    _stale: tuple[ObjectProblem, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Decided where the result is built (a worker thread for files and watches), not
        # each time the speaker's event loop asks: a file may hold 100,000 problems.
        object.__setattr__(self, "_stale", stale(self.problems))

    @property
    def dropped(self) -> tuple[ObjectProblem, ...]:
        """Objects left out of `state` (every problem but the report-only ones)."""
        return tuple(p for p in self.problems if cost(p) is not Cost.NOTHING)

    @property
    def stale(self) -> tuple[ObjectProblem, ...]:
        """Configuration objects left out (the configuration in force is not all that was
        asked for: the stale-config metric)."""
        return self._stale

    @property
    def ok(self) -> bool:
        """True when every input was valid (kinds we only report do not count)."""
        return not self.dropped


def expand_lists(objects: Iterable[Any]) -> Iterator[Any]:
    """Flatten `kind: List` (and `*List`) objects, as `kubectl get -o yaml` prints them."""
    for obj in objects:
        if isinstance(obj, Mapping) and str(obj.get("kind", "")).endswith("List"):
            items = obj.get("items")
            if isinstance(items, list):
                yield from expand_lists(items)
                continue
        yield obj


_PARSERS: Mapping[str, Any] = {
    "IPAddressPool": IPAddressPool.from_dict,
    "L2Advertisement": L2Advertisement.from_dict,
    "ServiceL2Status": ServiceL2Status.from_dict,
    "Service": ServiceView.from_dict,
    "Node": NodeView.from_dict,
    "EndpointSlice": EndpointSliceView.from_dict,
    "Namespace": NamespaceView.from_dict,
    "BGPPeer": BGPPeer.from_dict,
    "BFDProfile": BFDProfile.from_dict,
    "Community": CommunityAliases.from_dict,
    "ServiceBGPStatus": ServiceBGPStatus.from_dict,
    "Secret": SecretView.from_dict,
}
#: Parsed after every other object, once all Community aliases are known.
_DEFERRED = "BGPAdvertisement"


def build_state(objects: Iterable[Any]) -> BuildResult:
    """Validate every object and assemble a `ClusterState`; never raises on bad input.

    Cross-object rules (MetalLB's): pool names unique, CIDRs of different pools disjoint
    (containment counts: 10.0.0.0/8 and 10.0.0.0/16 clash), advertisement names unique.
    The earlier object wins a clash (pools: the older by creationTimestamp, then by name,
    so every node picks the same one whatever order its watches saw them in); the later
    one is dropped with a problem. A pool left out is kept as a `HeldPool`.
    """
    problems: list[ObjectProblem] = []
    parsed: dict[str, list[Any]] = {kind: [] for kind in _PARSERS}
    deferred: list[Mapping[str, Any]] = []
    held: list[HeldPool] = []
    created: dict[tuple[str, str], str] = {}
    for obj in expand_lists(objects):
        if isinstance(obj, Mapping) and obj.get("kind") == _DEFERRED:
            deferred.append(obj)
            continue
        before = len(problems)
        item = _parse_one(obj, problems)
        if item is not None:
            parsed[obj["kind"]].append(item)
            if isinstance(item, IPAddressPool):
                created.setdefault((item.namespace, item.name), _created(obj))
        elif isinstance(obj, Mapping) and obj.get("kind") == "IPAddressPool":
            found = HeldPool.from_raw(obj, problems[before]) if len(problems) > before else None
            held.extend([found] if found is not None else [])

    by_age = sorted(
        parsed["IPAddressPool"], key=lambda p: (created.get((p.namespace, p.name), ""), p.name)
    )
    pools = _unique_pools(by_age, problems, held)
    ads = _unique(
        parsed["L2Advertisement"],
        lambda a: (a.namespace, a.name),
        "L2Advertisement",
        problems,
        per_namespace=False,
    )
    services = _unique(parsed["Service"], lambda s: (s.namespace, s.name), "Service", problems)
    nodes = _unique(parsed["Node"], lambda n: ("", n.name), "Node", problems)
    slices = _unique(
        parsed["EndpointSlice"], lambda e: (e.namespace, e.name), "EndpointSlice", problems
    )
    namespaces = _unique(parsed["Namespace"], lambda n: ("", n.name), "Namespace", problems)
    statuses = _unique(
        parsed["ServiceL2Status"], lambda s: (s.namespace, s.name), "ServiceL2Status", problems
    )
    bgp = _build_bgp(parsed, deferred, pools, nodes, problems)
    for problem in problems:
        if cost(problem) is not Cost.NOTHING:
            log.debug("invalid input: %s", problem.message)
    state = ClusterState.of(
        pools=pools,
        advertisements=ads,
        services=services,
        nodes=nodes,
        endpoint_slices=slices,
        namespaces=namespaces,
        l2_statuses=statuses,
        bgp_peers=bgp.peers,
        bgp_advertisements=bgp.ads,
        bfd_profiles=bgp.profiles,
        communities=bgp.communities,
        bgp_statuses=bgp.statuses,
        held_pools=held,
    )
    return BuildResult(state, tuple(problems))


def _created(obj: Mapping[str, Any]) -> str:
    """metadata.creationTimestamp (RFC 3339, so text order is time order), "" if none."""
    meta = obj.get("metadata")
    stamp = meta.get("creationTimestamp") if isinstance(meta, Mapping) else None
    return stamp if isinstance(stamp, str) else ""


@dataclass(slots=True)
class _BGPObjects:
    peers: list[BGPPeer]
    ads: list[BGPAdvertisement]
    profiles: list[BFDProfile]
    communities: list[CommunityAliases]
    statuses: list[ServiceBGPStatus]


def _build_bgp(
    parsed: Mapping[str, list[Any]],
    raw_ads: list[Mapping[str, Any]],
    pools: list[IPAddressPool],
    nodes: list[NodeView],
    problems: list[ObjectProblem],
) -> _BGPObjects:
    """The BGP half of `build_state`: Community aliases first, then the advertisements that
    use them, then the checks across objects (`bgp_checks`)."""
    ns_name = _ns_name
    profiles = _unique(parsed["BFDProfile"], ns_name, "BFDProfile", problems, per_namespace=False)
    communities = _communities(
        _unique(parsed["Community"], ns_name, "Community", problems, per_namespace=False),
        problems,
    )
    aliases: dict[str, BGPCommunity] = {a: v for c in communities for a, v in c.aliases}
    ads = _unique(
        [ad for obj in raw_ads if (ad := _parse_ad(obj, aliases, problems)) is not None],
        ns_name,
        "BGPAdvertisement",
        problems,
        per_namespace=False,
    )
    secrets = {
        (s.namespace, s.name): s for s in _unique(parsed["Secret"], ns_name, "Secret", problems)
    }
    by_name = {p.name: p for p in profiles}
    peers = check_peers(
        _unique(parsed["BGPPeer"], ns_name, "BGPPeer", problems, per_namespace=False),
        secrets,
        by_name,
        nodes,
        problems,
    )
    ads = check_advertisements(ads, pools, peers, by_name, nodes, problems)
    statuses = _unique(parsed["ServiceBGPStatus"], ns_name, "ServiceBGPStatus", problems)
    return _BGPObjects(peers, ads, profiles, communities, statuses)


def _ns_name(obj: Any) -> tuple[str, str]:
    return (obj.namespace, obj.name)


def _communities(
    objects: list[CommunityAliases], problems: list[ObjectProblem]
) -> list[CommunityAliases]:
    """Alias names are unique across every Community object; a later clash is left out."""
    seen: set[str] = set()
    kept: list[CommunityAliases] = []
    for obj in objects:
        clash = next((a for a, _ in obj.aliases if a in seen), None)
        if clash is not None:
            problems.append(
                ObjectProblem(
                    "Community",
                    obj.namespace,
                    obj.name,
                    ProblemReason.DUPLICATE,
                    f"Community {obj.name}: duplicate definition of community {clash!r}; ignored",
                )
            )
            continue
        seen.update(a for a, _ in obj.aliases)
        kept.append(obj)
    return kept


def _parse_ad(
    obj: Mapping[str, Any], aliases: Mapping[str, BGPCommunity], problems: list[ObjectProblem]
) -> BGPAdvertisement | None:
    """A community that is neither a value nor a known alias waits for its Community."""
    try:
        return BGPAdvertisement.from_dict(obj, aliases)
    except CommunityFormatError as exc:
        problems.append(
            ObjectProblem.about(
                obj, ProblemReason.MISSING_REFERENCE, f"{exc}; advertisement not used yet"
            )
        )
    except ConfigError as exc:
        problems.append(ObjectProblem.about(obj, ProblemReason.INVALID, str(exc)))
    except (TypeError, ValueError, AttributeError) as exc:  # defensive: never crash on input
        problems.append(ObjectProblem.about(obj, ProblemReason.INVALID, f"{_meta.ref(obj)}: {exc}"))
    return None


def _parse_one(obj: Any, problems: list[ObjectProblem]) -> Any | None:
    """One object as its model value, or None with the reason appended to `problems`."""
    if not isinstance(obj, Mapping):
        problems.append(
            ObjectProblem.about(
                obj,
                ProblemReason.NOT_AN_OBJECT,
                f"expected a Kubernetes object (a mapping), got {type(obj).__name__}",
            )
        )
        return None
    kind = obj.get("kind")
    if not isinstance(kind, str) or not kind:
        problems.append(
            ObjectProblem.about(obj, ProblemReason.NOT_AN_OBJECT, f"{_meta.ref(obj)}: no kind")
        )
        return None
    parser = _PARSERS.get(kind)
    if parser is None:
        problems.append(
            ObjectProblem.about(
                obj, ProblemReason.UNKNOWN_KIND, f"{_meta.ref(obj)}: kind {kind} is not read"
            )
        )
        return None
    try:
        return parser(obj)
    except ConfigError as exc:
        problems.append(ObjectProblem.about(obj, ProblemReason.INVALID, str(exc)))
    except (TypeError, ValueError, AttributeError) as exc:  # defensive: never crash on input
        problems.append(ObjectProblem.about(obj, ProblemReason.INVALID, f"{_meta.ref(obj)}: {exc}"))
    return None


def _unique(
    items: list[Any],
    key: Callable[[Any], tuple[str, str]],
    kind: str,
    problems: list[ObjectProblem],
    *,
    per_namespace: bool = True,
) -> list[Any]:
    """The first of each name (`key` gives namespace and name); later ones are problems.

    `per_namespace=False`: names must be unique across namespaces (MetalLB's own kinds)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for item in items:
        namespace, name = key(item)
        ident = (namespace if per_namespace else "", name)
        if ident in seen:
            where = f"{namespace}/{name}" if namespace else name
            problems.append(
                ObjectProblem(
                    kind,
                    namespace,
                    name,
                    ProblemReason.DUPLICATE,
                    f"{kind} {where}: duplicate name; the later definition is ignored",
                )
            )
            continue
        seen.add(ident)
        out.append(item)
    return out


def _unique_pools(
    pools: list[IPAddressPool], problems: list[ObjectProblem], held: list[HeldPool]
) -> list[IPAddressPool]:
    """The first pool of each name whose CIDRs overlap no earlier pool's; every other one
    is a problem and a `HeldPool`."""
    kept: list[IPAddressPool] = []
    seen = len(problems)
    unique = _unique(
        pools, lambda p: (p.namespace, p.name), "IPAddressPool", problems, per_namespace=False
    )
    kept_ids = {id(p) for p in unique}
    dropped = [p for p in pools if id(p) not in kept_ids]
    held.extend(HeldPool.from_pool(p, q) for p, q in zip(dropped, problems[seen:], strict=True))
    for pool in unique:
        clash = next(
            (
                (other, a, b)
                for other in kept
                for a in pool.cidrs
                for b in other.cidrs
                if cidrs_overlap(a, b)
            ),
            None,
        )
        if clash is not None:
            other, a, b = clash
            problem = ObjectProblem(
                "IPAddressPool",
                pool.namespace,
                pool.name,
                ProblemReason.OVERLAP,
                f"IPAddressPool {pool.name}: CIDR {a} overlaps with CIDR {b} of pool "
                f"{other.name}; pool {pool.name} is ignored",
            )
            problems.append(problem)
            held.append(HeldPool.from_pool(pool, problem))
            continue
        kept.append(pool)
    return kept
