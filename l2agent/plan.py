"""The plan: what this node announces, and why every service is announced where it is.

`plan(state, members, me)` composes allocation (`allocator`), eligibility and election
(`election`) into `Plan.announcements` ({ip: interfaces}) for this node, plus an
explanation of every LoadBalancer Service.  Pure: the speaker calls it on every config,
endpoint or membership change and hands the difference to the announcer.

Where a Service's IPs come from and which endpoints count is `service_ips`'s answer,
shared with the BGP plan; the `InputSource` (static files or a cluster) decides the gaps.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from l2agent.allocator import AllocationError, Assignment, allocate, class_matches
from l2agent.election import Election, ElectionInput, NotAnnouncing, applicable_ads, elect
from l2agent.model.crds import InterfaceSelection
from l2agent.model.snapshot import ClusterState
from l2agent.model.types import IPAddress
from l2agent.model.views import ServiceView
from l2agent.service_ips import InputSource, NoServiceIPs, known_slices, service_ips

__all__ = [
    "InputSource",
    "InterfaceSelection",
    "NodeReasons",
    "Plan",
    "ServicePlan",
    "announcements_for",
    "explain",
    "plan",
]


@dataclass(frozen=True, slots=True)
class ServicePlan:
    """One LoadBalancer Service: its IPs, pool, elected owner and why others do not announce.

    `interfaces` is where the owner announces (None when nobody does); `node_reasons` has
    every known node except the owner; `error` is the allocation error text, if any.
    """

    namespace: str
    name: str
    ips: tuple[IPAddress, ...] = ()
    pool: str | None = None
    owner: str | None = None
    candidates: tuple[str, ...] = ()
    reason: NotAnnouncing | None = None
    error: str | None = None
    interfaces: InterfaceSelection | None = None
    node_reasons: Mapping[str, NotAnnouncing] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Plan:
    """What node `me` announces ({ip: interfaces}) and the explanation of every service."""

    me: str
    announcements: Mapping[IPAddress, InterfaceSelection]
    services: tuple[ServicePlan, ...]

    def service(self, key: str) -> ServicePlan | None:
        return next((s for s in self.services if s.key == key), None)


class NodeReasons(Mapping[str, NotAnnouncing]):
    """Why each known name (a Node object or a live member) does not announce a service,
    computed when asked: a plan must not cost O(members) per service, since a gossip may
    hold many members that are no Node objects."""

    __slots__ = ("_members", "_nodes", "_reason")

    def __init__(
        self,
        nodes: Collection[str],
        members: Collection[str],
        reason: Callable[[str], NotAnnouncing | None],
    ) -> None:
        self._nodes = nodes
        self._members = members
        self._reason = reason

    def __getitem__(self, name: str) -> NotAnnouncing:
        reason = self._reason(name) if name in self._nodes or name in self._members else None
        if reason is None:
            raise KeyError(name)
        return reason

    def __iter__(self) -> Iterator[str]:
        names = set(self._nodes) | set(self._members)
        return iter(sorted(n for n in names if self._reason(n) is not None))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def explain(
    state: ClusterState,
    members: Collection[str],
    *,
    ignore_exclude_lb: bool = False,
    lb_class: str | None = None,
    source: InputSource = InputSource.STATIC,
) -> tuple[ServicePlan, ...]:
    """Owner and reasons for every LoadBalancer Service of class `lb_class` (node-neutral)."""
    allocation = allocate(state, lb_class=lb_class, trust_status=True)
    out: list[ServicePlan] = []
    for svc in state.services:
        if not svc.is_load_balancer or not class_matches(svc, lb_class):
            continue
        result = allocation.get(svc.key)
        out.append(
            _explain_one(
                state,
                svc,
                result,
                members,
                ignore_exclude_lb=ignore_exclude_lb,
                source=source,
            )
        )
    return tuple(out)


def _explain_one(
    state: ClusterState,
    svc: ServiceView,
    result: Assignment | AllocationError | None,
    members: Collection[str],
    *,
    ignore_exclude_lb: bool,
    source: InputSource,
) -> ServicePlan:
    def nobody(reason: NotAnnouncing, **kw: object) -> ServicePlan:
        return ServicePlan(
            svc.namespace,
            svc.name,
            reason=reason,
            node_reasons=NodeReasons(state.nodes.keys(), members, lambda _: reason),
            **kw,  # type: ignore[arg-type]
        )

    held = service_ips(state, svc, result, source=source)
    if isinstance(held, NoServiceIPs):
        return nobody(held.reason, ips=held.ips, error=held.error)
    pool = held.pool
    pool_ads = state.advertisements_for(pool)
    election: Election = elect(
        ElectionInput(
            service=svc,
            ip=held.ips[0],
            ads=pool_ads,
            members=members,
            nodes=state.nodes,
            slices=known_slices(state, svc, source=source),
            ignore_exclude_lb=ignore_exclude_lb,
        )
    )
    interfaces = None
    if election.owner is not None:
        owner_node = state.nodes.get(election.owner)
        labels = owner_node.labels if owner_node is not None else {}
        for ad in applicable_ads(pool_ads, svc):
            if ad.selects_node(labels):
                sel = ad.interface_selection
                interfaces = sel if interfaces is None else interfaces.union(sel)
    reasons = NodeReasons(state.nodes.keys(), members, election.reason_for)
    return ServicePlan(
        namespace=svc.namespace,
        name=svc.name,
        ips=held.ips,
        pool=pool.name,
        owner=election.owner,
        candidates=election.ranked,
        reason=election.reason,
        interfaces=interfaces,
        node_reasons=reasons,
    )


def announcements_for(
    services: Collection[ServicePlan], node: str
) -> Mapping[IPAddress, InterfaceSelection]:
    """{ip: interfaces} that `node` announces; a shared IP gets the union of its services'."""
    out: dict[IPAddress, InterfaceSelection] = {}
    for sp in services:
        if sp.owner != node or sp.interfaces is None:
            continue
        for ip in sp.ips:
            prev = out.get(ip)
            out[ip] = sp.interfaces if prev is None else prev.union(sp.interfaces)
    return MappingProxyType(dict(sorted(out.items(), key=lambda kv: (kv[0].version, kv[0]))))


def plan(
    state: ClusterState,
    members: Collection[str],
    me: str,
    *,
    ignore_exclude_lb: bool = False,
    lb_class: str | None = None,
    source: InputSource = InputSource.STATIC,
) -> Plan:
    """The plan for node `me`: its announcements and every service's explanation.

    `members`: live gossip members (alive or suspect), node names; without gossip, the Node
    names in the state.
    """
    services = explain(
        state,
        members,
        ignore_exclude_lb=ignore_exclude_lb,
        lb_class=lb_class,
        source=source,
    )
    return Plan(me=me, announcements=announcements_for(services, me), services=services)
