"""IP allocation with MetalLB's rules, as a pure function of a `ClusterState`.

`allocate(state)` answers, for every LoadBalancer Service of our class, which IPs it gets
and from which pool, or why it gets none.  It follows MetalLB's controller
(`controller/service.go`, `internal/allocator`): requested IPs and pools from annotations
(stable `metallb.io/*` keys before the deprecated `metallb.universe.tf/*` ones) or
`spec.loadBalancerIP`; pinned pools (serviceAllocation) by priority, then the pools without
one; the lowest free address; sharing keys; dual stack from one pool.

Where MetalLB depends on Go map order or on event history, this module is deterministic
instead, so every node computes the same answer from the same files: services that already
hold IPs go first (more IPs first), then by `namespace/name`; pools tie-break by name.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from l2agent.model.crds import IPAddressPool
from l2agent.model.held import ANN_ALLOCATED_FROM_POOL
from l2agent.model.selectors import any_matches
from l2agent.model.snapshot import ClusterState
from l2agent.model.types import IPAddress
from l2agent.model.views import IPFamilyPolicy, Port, ServiceView, TrafficPolicy

__all__ = [
    "ANN_ADDRESS_POOL",
    "ANN_ALLOCATED_FROM_POOL",
    "ANN_LOADBALANCER_IPS",
    "ANN_SHARED_IP",
    "Allocation",
    "AllocationError",
    "AllocationFailure",
    "Assignment",
    "allocate",
    "annotation",
    "class_matches",
    "pool_compatible",
    "requested_ips",
    "service_families",
    "sharing_key",
]

log = logging.getLogger(__name__)

ANN_ADDRESS_POOL = "metallb.io/address-pool"
ANN_LOADBALANCER_IPS = "metallb.io/loadBalancerIPs"
ANN_SHARED_IP = "metallb.io/allow-shared-ip"
_DEPRECATED_PREFIX = "metallb.universe.tf/"


class AllocationFailure(enum.Enum):
    """Why a service got no IP; `.value` is a short camelCase label for logs and metrics."""

    CONFLICTING_REQUEST = "conflictingRequest"
    INVALID_REQUEST = "invalidRequest"
    FAMILY_MISMATCH = "familyMismatch"
    NOT_ENOUGH_CLUSTER_IPS = "notEnoughClusterIPs"
    UNKNOWN_POOL = "unknownPool"
    IP_NOT_ALLOWED = "ipNotAllowed"
    POOL_NOT_COMPATIBLE = "poolNotCompatible"
    SHARING_CONFLICT = "sharingConflict"
    NO_AVAILABLE_IPS = "noAvailableIPs"


@dataclass(frozen=True, slots=True)
class Assignment:
    """The IPs a service holds (primary family first) and the pool they come from.

    `pool` is None only for status IPs taken on trust that lie in no pool. `held`: the
    pool was left out of the configuration and the Service keeps the IPs it had from it
    (`ClusterState.held_pool_for`); nothing else may take them meanwhile.
    """

    ips: tuple[IPAddress, ...]
    pool: str | None
    held: bool = False


@dataclass(frozen=True, slots=True)
class AllocationError:
    """No IP for this service: a reason to branch on and MetalLB's message to show."""

    reason: AllocationFailure
    message: str


@dataclass(frozen=True, slots=True)
class Allocation:
    """Result for every considered service, by `namespace/name`, plus IPs in use per pool."""

    results: Mapping[str, Assignment | AllocationError] = field(
        default_factory=lambda: MappingProxyType({})
    )
    in_use: Mapping[str, frozenset[IPAddress]] = field(default_factory=lambda: MappingProxyType({}))

    def __getitem__(self, key: str) -> Assignment | AllocationError:
        return self.results[key]

    def get(self, key: str) -> Assignment | AllocationError | None:
        return self.results.get(key)


def annotation(svc: ServiceView, key: str) -> str | None:
    """A `metallb.io/<x>` annotation, falling back to the deprecated `metallb.universe.tf/<x>`."""
    value = svc.annotations.get(key)
    if value is None:
        value = svc.annotations.get(_DEPRECATED_PREFIX + key.split("/", 1)[1])
    return value


def class_matches(svc: ServiceView, lb_class: str | None) -> bool:
    """`--lb-class`: None serves only services without a class; X serves exactly class X."""
    return svc.load_balancer_class == lb_class


def sharing_key(svc: ServiceView) -> str:
    """The `allow-shared-ip` value, "" when sharing is not allowed."""
    return annotation(svc, ANN_SHARED_IP) or ""


def backend_key(svc: ServiceView) -> str:
    """ETP Local services may share an IP only with the same pod selector (Cluster: "")."""
    if svc.external_traffic_policy is not TrafficPolicy.LOCAL:
        return ""
    return ",".join(f"{k}={v}" for k, v in sorted(svc.selector.items()))


def requested_ips(svc: ServiceView) -> tuple[IPAddress, ...] | AllocationError:
    """IPs asked for by annotation or `spec.loadBalancerIP` (both set is an error)."""
    ann = annotation(svc, ANN_LOADBALANCER_IPS)
    if ann and svc.load_balancer_ip:
        return AllocationError(
            AllocationFailure.CONFLICTING_REQUEST,
            f"service can not have both {ANN_LOADBALANCER_IPS} and svc.Spec.LoadBalancerIP",
        )
    text = ann or svc.load_balancer_ip or ""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    ips: list[IPAddress] = []
    for part in parts:
        try:
            ips.append(ipaddress.ip_address(part))
        except ValueError:
            return AllocationError(
                AllocationFailure.INVALID_REQUEST, f"invalid requested loadBalancer IP {part!r}"
            )
    if len(ips) > 2 or (len(ips) == 2 and ips[0].version == ips[1].version):
        return AllocationError(
            AllocationFailure.INVALID_REQUEST,
            f"requested loadBalancer IPs {text!r}: give one IP, or one IP per family",
        )
    return tuple(ips)


def service_families(svc: ServiceView) -> tuple[tuple[int, ...], bool] | AllocationError:
    """(families wanted, primary first; whether all of them are required).

    From `spec.clusterIPs` as MetalLB does.  Static files often omit cluster IPs, so we then
    fall back to `spec.ipFamilies`, then the requested IPs, then IPv4; the family policy
    adds the second family for Prefer/RequireDualStack in that case.
    """
    policy = svc.ip_family_policy
    fams: tuple[int, ...]
    if svc.cluster_ips:
        fams = tuple(dict.fromkeys(ip.version for ip in svc.cluster_ips))
        if policy is IPFamilyPolicy.REQUIRE_DUAL_STACK and len(fams) < 2:
            return AllocationError(
                AllocationFailure.NOT_ENOUGH_CLUSTER_IPS,
                "Service requires dual stack but not enough clusterips "
                f"[{', '.join(map(str, svc.cluster_ips))}]",
            )
        return fams, len(fams) == 2 and policy is IPFamilyPolicy.REQUIRE_DUAL_STACK
    if svc.ip_families:
        fams = tuple(dict.fromkeys(svc.ip_families))
    else:
        req = requested_ips(svc)
        fams = tuple(ip.version for ip in req) if isinstance(req, tuple) and req else (4,)
    if policy is not IPFamilyPolicy.SINGLE_STACK and len(fams) == 1:
        fams = (fams[0], 6 if fams[0] == 4 else 4)
    elif policy is IPFamilyPolicy.SINGLE_STACK:
        fams = fams[:1]
    return fams, policy is IPFamilyPolicy.REQUIRE_DUAL_STACK


def pool_compatible(pool: IPAddressPool, svc: ServiceView, state: ClusterState) -> bool:
    """MetalLB's `isPoolCompatibleWithService`: namespaces and service selectors both hold."""
    sa = pool.service_allocation
    if sa is None:
        return True
    if sa.namespaces or sa.namespace_selectors:
        in_ns = svc.namespace in sa.namespaces or any_matches(
            sa.namespace_selectors, state.namespace_labels(svc.namespace)
        )
        if not in_ns:
            return False
    return not sa.service_selectors or any_matches(sa.service_selectors, svc.labels)


@dataclass(slots=True)
class _Use:
    """Who uses one IP: the sharing/backend key of its users and their ports."""

    sharing: str
    backend: str
    ports: dict[Port, str] = field(default_factory=dict)
    users: set[str] = field(default_factory=set)


class _Book:
    """IPs in use during one allocation pass (a private, mutable scratchpad)."""

    def __init__(self) -> None:
        self.uses: dict[IPAddress, _Use] = {}
        # (pool, version) -> raw position below which every address is in use or unusable:
        # a service that does not share can start its walk there (keeps a pass O(n)).
        self.full_below: dict[tuple[str, int], int] = {}

    def check(
        self, key: str, ip: IPAddress, ports: Sequence[Port], sharing: str, backend: str
    ) -> str | None:
        """None when `key` may use `ip`; else MetalLB's error text."""
        use = self.uses.get(ip)
        if use is None or use.users <= {key}:
            return None
        if not use.sharing:
            return "existing service does not allow sharing"
        if not sharing:
            return "new service does not allow sharing"
        if use.sharing != sharing:
            return f"sharing key {sharing!r} does not match existing sharing key {use.sharing!r}"
        if use.backend != backend:
            return f"backend key {backend!r} does not match existing sharing key {use.backend!r}"
        for port in ports:
            if use.ports.get(port, key) != key:
                return f'port {port} is already in use on "{ip}"'
        return None

    def add(
        self, key: str, ips: Iterable[IPAddress], ports: Sequence[Port], sharing: str, backend: str
    ) -> None:
        for ip in ips:
            use = self.uses.setdefault(ip, _Use(sharing, backend))
            use.users.add(key)
            for port in ports:
                use.ports.setdefault(port, key)


@dataclass(frozen=True, slots=True)
class _Request:
    """Everything about one service that allocation needs, resolved once."""

    svc: ServiceView
    families: tuple[int, ...]
    require_all: bool
    ips: tuple[IPAddress, ...]
    pool: str | None
    sharing: str
    backend: str


def allocate(
    state: ClusterState, *, lb_class: str | None = None, trust_status: bool = False
) -> Allocation:
    """Allocate IPs for every LoadBalancer Service of class `lb_class`.

    `trust_status=False` is the controller: a status IP still valid under the current
    pools and requests is kept, an invalid one is cleared and re-allocated.
    `trust_status=True` is the speaker's reading: status IPs are what the cluster says
    and are kept as they are; only services without any are allocated.
    """
    services = [s for s in state.services if s.is_load_balancer and class_matches(s, lb_class)]
    services.sort(key=lambda s: (-len(s.ingress_ips), s.namespace, s.name))
    book = _Book()
    results: dict[str, Assignment | AllocationError] = {}
    for svc in services:  # held Services first: their IPs are taken, whatever else happens
        held = state.held_pool_for(svc)
        if held is not None:
            book.add(svc.key, svc.ingress_ips, svc.ports, sharing_key(svc), backend_key(svc))
            results[svc.key] = Assignment(svc.ingress_ips, held.name, held=True)
    # Every IP a Service may keep is booked before any Service is given a new one, so a
    # Service whose IPs became invalid never takes the current IPs of one that keeps them.
    for keep_only in (True, False):
        for svc in services:
            if svc.key in results:
                continue
            result = _allocate_one(state, book, svc, trust_status, keep_only=keep_only)
            if result is None:
                continue
            results[svc.key] = result
            if isinstance(result, AllocationError):
                log.info("allocation failed for %s: %s", svc.key, result.message)
    in_use: dict[str, set[IPAddress]] = {}
    for result in results.values():
        if isinstance(result, Assignment) and result.pool is not None and not result.held:
            in_use.setdefault(result.pool, set()).update(result.ips)
    return Allocation(
        results=MappingProxyType(dict(sorted(results.items()))),
        in_use=MappingProxyType({k: frozenset(v) for k, v in sorted(in_use.items())}),
    )


def _allocate_one(
    state: ClusterState, book: _Book, svc: ServiceView, trust_status: bool, *, keep_only: bool
) -> Assignment | AllocationError | None:
    """One Service's IPs. `keep_only`: only its current IPs, if still allowed (None: it
    needs new ones, asked again in the second pass)."""
    if keep_only and not svc.ingress_ips:
        return None
    ports = svc.ports
    sharing, backend = sharing_key(svc), backend_key(svc)
    if trust_status and svc.ingress_ips:
        pool = state.pool_for(svc.ingress_ips[0])
        book.add(svc.key, svc.ingress_ips, ports, sharing, backend)
        return Assignment(svc.ingress_ips, pool.name if pool else None)
    fams = service_families(svc)
    if isinstance(fams, AllocationError):
        return fams
    req_ips = requested_ips(svc)
    if isinstance(req_ips, AllocationError):
        return req_ips
    families, require_all = fams
    if req_ips:
        extra = sorted({ip.version for ip in req_ips} - set(families))
        if extra or (require_all and len(req_ips) < len(families)):
            return AllocationError(
                AllocationFailure.FAMILY_MISMATCH,
                f"requested loadBalancer IP(s) {[str(i) for i in req_ips]} does not match "
                f"the ipFamily of the service",
            )
    pool_name = annotation(svc, ANN_ADDRESS_POOL)
    if pool_name is not None and state.pool(pool_name) is None:
        held = state.held_pool(pool_name)
        if held is not None:
            return AllocationError(
                AllocationFailure.UNKNOWN_POOL,
                f'pool "{pool_name}" is left out of the configuration: {held.problem.message}',
            )
        return AllocationError(AllocationFailure.UNKNOWN_POOL, f'unknown pool "{pool_name}"')
    req = _Request(svc, families, require_all, req_ips, pool_name, sharing, backend)

    if svc.ingress_ips:
        kept = _keep_existing(state, book, req)
        if kept is not None:
            return kept
        if keep_only:
            return None
        log.info(
            "current IP for %s not allowed by config, will attempt for new IP assignment",
            svc.key,
        )
    if req_ips:
        return _assign(state, book, req, req_ips)
    if pool_name is not None:
        pool = state.pool(pool_name)
        assert pool is not None
        if not pool_compatible(pool, svc, state):
            return AllocationError(
                AllocationFailure.POOL_NOT_COMPATIBLE,
                f"pool {pool_name} not compatible for ip assignment",
            )
        got = _from_pools(book, req, [pool])
        if got is None:
            return AllocationError(
                AllocationFailure.NO_AVAILABLE_IPS, f'no available IPs in pool "{pool_name}"'
            )
        return got
    pinned = [
        p
        for p in state.pools
        if p.service_allocation is not None and p.auto_assign and pool_compatible(p, svc, state)
    ]
    pinned.sort(key=_priority_key)
    unpinned = [p for p in state.pools if p.service_allocation is None and p.auto_assign]
    got = _from_pools(book, req, pinned) or _from_pools(book, req, unpinned)
    if got is None:
        return AllocationError(AllocationFailure.NO_AVAILABLE_IPS, "no available IPs")
    return got


def _priority_key(pool: IPAddressPool) -> tuple[bool, int, str]:
    """MetalLB's `sortPools`: priority > 0 first, lower wins, unset (0) last; then name."""
    prio = pool.service_allocation.priority if pool.service_allocation else 0
    return (prio == 0, prio, pool.name)


def _keep_existing(state: ClusterState, book: _Book, req: _Request) -> Assignment | None:
    """The service's status IPs if they are still allowed; None to re-allocate."""
    ips = req.svc.ingress_ips
    if req.ips and set(req.ips) != set(ips):
        return None
    if any(ip.version not in req.families for ip in ips):
        return None
    if len({ip.version for ip in ips}) != len(ips):
        return None
    if req.require_all and len(ips) < len(req.families):
        return None
    result = _assign(state, book, req, ips)
    if isinstance(result, AllocationError):
        return None
    if len(req.families) == 2 and len(ips) == 1 and result.pool is not None:
        # PreferDualStack with one IP: try the other family in the same pool.
        pool = state.pool(result.pool)
        assert pool is not None
        other = next(f for f in req.families if f != ips[0].version)
        extra = _free(book, req, pool, other)
        if extra is not None:
            book.add(req.svc.key, [extra], req.svc.ports, req.sharing, req.backend)
            ordered = sorted((*ips, extra), key=lambda ip: req.families.index(ip.version))
            return Assignment(tuple(ordered), result.pool)
    return result


def _assign(
    state: ClusterState, book: _Book, req: _Request, ips: Sequence[IPAddress]
) -> Assignment | AllocationError:
    """MetalLB's `Assign`: all IPs in one compatible pool, sharing rules satisfied."""
    pools = {ip: state.pool_for(ip) for ip in ips}
    missing = [str(ip) for ip, p in pools.items() if p is None]
    if missing:
        return AllocationError(
            AllocationFailure.IP_NOT_ALLOWED, f"{missing} is not allowed in config"
        )
    names = {p.name for p in pools.values() if p is not None}
    if len(names) > 1:
        return AllocationError(
            AllocationFailure.IP_NOT_ALLOWED,
            f"{[str(i) for i in ips]} belong to different pools {sorted(names)}",
        )
    pool = next(p for p in pools.values() if p is not None)
    if req.pool is not None and pool.name != req.pool:
        return AllocationError(
            AllocationFailure.POOL_NOT_COMPATIBLE,
            f"requested IPs {[str(i) for i in ips]} are not compatible with requested "
            f"address pool {req.pool}",
        )
    if not pool_compatible(pool, req.svc, state):
        return AllocationError(
            AllocationFailure.POOL_NOT_COMPATIBLE,
            f"pool {pool.name} not compatible for ip assignment",
        )
    for ip in ips:
        problem = book.check(req.svc.key, ip, req.svc.ports, req.sharing, req.backend)
        if problem is not None:
            return AllocationError(AllocationFailure.SHARING_CONFLICT, problem)
    ordered = sorted(ips, key=lambda ip: req.families.index(ip.version))
    book.add(req.svc.key, ordered, req.svc.ports, req.sharing, req.backend)
    return Assignment(tuple(ordered), pool.name)


def _free(book: _Book, req: _Request, pool: IPAddressPool, version: int) -> IPAddress | None:
    """The lowest address of `version` in `pool` that this service may use."""
    key = (pool.name, version)
    start = book.full_below.get(key, 0) if not req.sharing else 0
    walked = start
    for pos, ip in pool.positions(version, start):
        if ip not in book.uses:
            if not req.sharing:
                book.full_below[key] = pos
            return ip
        if book.check(req.svc.key, ip, req.svc.ports, req.sharing, req.backend) is None:
            return ip
        walked = pos + 1
    if not req.sharing:
        book.full_below[key] = walked
    return None


def _from_pools(book: _Book, req: _Request, pools: Sequence[IPAddressPool]) -> Assignment | None:
    """MetalLB's `findBestPoolForService`: the first pool with every wanted family; for
    PreferDualStack, failing that, the first pool with the primary family, then secondary."""
    found: Assignment | None = None
    for pool in pools:
        ips = [_free(book, req, pool, fam) for fam in req.families]
        if all(ip is not None for ip in ips):
            found = Assignment(tuple(ip for ip in ips if ip is not None), pool.name)
            break
    if found is None and len(req.families) == 2 and not req.require_all:
        for fam in req.families:
            for pool in pools:
                ip = _free(book, req, pool, fam)
                if ip is not None:
                    found = Assignment((ip,), pool.name)
                    break
            if found is not None:
                break
    if found is not None:
        book.add(req.svc.key, found.ips, req.svc.ports, req.sharing, req.backend)
    return found
