"""MetalLB's `metallb.io/v1beta1` layer 2 resources as validated frozen values.

Built from plain dicts (the shape `kubectl get -o yaml` prints) so that static files and
the Kubernetes watches feed the same code.  Validation follows MetalLB's
`internal/config` and webhooks: CIDRs or `a-b` ranges, host bits masked, ranges summarised
into the minimal CIDR list, no overlap inside a pool (overlap across pools is checked in
`snapshot`, which sees them all), duplicate names in lists rejected.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from l2agent.errors import ConfigError
from l2agent.model import _meta
from l2agent.model.selectors import LabelSelector, any_matches, parse_selectors
from l2agent.model.types import IPAddress

__all__ = [
    "ALL_INTERFACES",
    "IPAddressPool",
    "InterfaceSelection",
    "L2Advertisement",
    "Network",
    "PreferredNodeSelector",
    "ServiceAllocation",
    "ServiceL2Status",
    "cidrs_overlap",
    "is_buggy",
    "parse_address_entry",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def is_buggy(ip: IPAddress) -> bool:
    """MetalLB's `ipConfusesBuggyFirmwares`: IPv4 ending in .0 or .255 (IPv6 never)."""
    if ip.version != 4:
        return False
    last = int(ip) & 0xFF
    return last in (0, 255)


def parse_address_entry(text: str) -> tuple[Network, ...]:
    """One `spec.addresses` entry -> CIDRs: a CIDR (host bits masked) or a `start-end` range.

    A range becomes the minimal CIDR list (`40.0.0.150-40.0.0.200` -> 150/31, 152/29,
    160/27, 192/29, 200/32), as MetalLB's `ipaddr.Summarize` does.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"invalid address entry {text!r}")
    if "-" in text:
        start_text, _, end_text = text.partition("-")
        try:
            start = ipaddress.ip_address(start_text.strip())
            end = ipaddress.ip_address(end_text.strip())
        except ValueError:
            raise ConfigError(f"invalid IP range {text!r}") from None
        if start.version != end.version:
            raise ConfigError(f"invalid IP range {text!r}: start and end are different families")
        if int(start) > int(end):
            raise ConfigError(f"invalid IP range {text!r}: start {start} is after end {end}")
        return tuple(ipaddress.summarize_address_range(start, end))
    stripped = text.strip()
    if "/" not in stripped:
        raise ConfigError(f"invalid CIDR {text!r}: missing prefix length (use a/N or a-b)")
    try:
        return (ipaddress.ip_network(stripped, strict=False),)
    except ValueError:
        raise ConfigError(f"invalid CIDR {text!r}") from None


def cidrs_overlap(a: Network, b: Network) -> bool:
    """True when one CIDR contains the other (equal counts)."""
    return a.version == b.version and a.overlaps(b)


@dataclass(frozen=True, slots=True)
class InterfaceSelection:
    """Where to announce an IP: every eligible interface, or only these names."""

    all: bool
    names: frozenset[str] = frozenset()

    def union(self, other: InterfaceSelection) -> InterfaceSelection:
        """Union of two selections; "all interfaces" wins, as in MetalLB's `ipAdvertisementFor`."""
        if self.all or other.all:
            return ALL_INTERFACES
        return InterfaceSelection(False, self.names | other.names)


ALL_INTERFACES = InterfaceSelection(True)


@dataclass(frozen=True, slots=True)
class ServiceAllocation:
    """`spec.serviceAllocation`: which services a pool serves, and its priority.

    `priority` 0 means unset (sorted last); lower positive numbers win.  A present but empty
    `serviceAllocation` matches every service (MetalLB gives it an "everything" selector).
    """

    priority: int = 0
    namespaces: tuple[str, ...] = ()
    namespace_selectors: tuple[LabelSelector, ...] = ()
    service_selectors: tuple[LabelSelector, ...] = ()

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> ServiceAllocation:
        raw = _meta.mapping(raw, where)
        priority = raw.get("priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool) or priority < 0:
            raise ConfigError(f"{where}.priority must be a non-negative integer")
        return cls(
            priority=priority,
            namespaces=_meta.str_list(raw.get("namespaces"), f"{where}.namespaces", unique=True),
            namespace_selectors=parse_selectors(
                raw.get("namespaceSelectors"), where=f"{where}.namespaceSelectors"
            ),
            service_selectors=parse_selectors(
                raw.get("serviceSelectors"), where=f"{where}.serviceSelectors"
            ),
        )

    @property
    def matches_everything(self) -> bool:
        return not (self.namespaces or self.namespace_selectors or self.service_selectors)


@dataclass(frozen=True, slots=True)
class IPAddressPool:
    """A validated IPAddressPool; `cidrs` keeps spec order (allocation walks it in order)."""

    name: str
    namespace: str
    cidrs: tuple[Network, ...]
    auto_assign: bool = True
    avoid_buggy_ips: bool = False
    service_allocation: ServiceAllocation | None = None
    labels: Mapping[str, str] = field(default_factory=_meta.empty, hash=False)
    entry_sizes: tuple[int, ...] = field(default=(), compare=False)
    """How many CIDRs each `spec.addresses` entry became, in order (a range may become
    several); empty means one CIDR per entry.  BGP's aggregationLength check reads it."""

    def __post_init__(self) -> None:
        if self.entry_sizes and sum(self.entry_sizes) != len(self.cidrs):
            raise ConfigError(f"IPAddressPool {self.name}: entry_sizes do not add up to cidrs")
        if not self.cidrs:
            raise ConfigError(f"IPAddressPool {self.name}: spec.addresses is empty")
        for i, a in enumerate(self.cidrs):
            for b in self.cidrs[i + 1 :]:
                if cidrs_overlap(a, b):
                    raise ConfigError(
                        f"IPAddressPool {self.name}: CIDR {a} overlaps with CIDR {b}"
                        " in the same pool"
                    )

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> IPAddressPool:
        """Parse and validate; raises `ConfigError` naming the pool and the bad field."""
        name, ns, labels, _ = _meta.metadata(obj)
        where = f"IPAddressPool {name}"
        spec = _meta.mapping(obj.get("spec"), f"{where}: spec")
        raw_addrs = spec.get("addresses")
        if not raw_addrs:
            raise ConfigError(f"{where}: spec.addresses is empty")
        if not isinstance(raw_addrs, list):
            raise ConfigError(f"{where}: spec.addresses must be a list")
        cidrs: list[Network] = []
        sizes: list[int] = []
        for entry in raw_addrs:
            try:
                parsed = parse_address_entry(entry)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc.message}") from None
            cidrs.extend(parsed)
            sizes.append(len(parsed))
        alloc_raw = spec.get("serviceAllocation")
        return cls(
            name=name,
            namespace=ns,
            cidrs=tuple(cidrs),
            auto_assign=_meta.boolean(spec.get("autoAssign"), True, f"{where}: autoAssign"),
            avoid_buggy_ips=_meta.boolean(
                spec.get("avoidBuggyIPs"), False, f"{where}: avoidBuggyIPs"
            ),
            service_allocation=None
            if alloc_raw is None
            else ServiceAllocation.from_dict(alloc_raw, f"{where}: serviceAllocation"),
            labels=labels,
            entry_sizes=tuple(sizes),
        )

    def entries(self) -> tuple[tuple[Network, ...], ...]:
        """The CIDRs grouped by the `spec.addresses` entry they came from."""
        sizes = self.entry_sizes or (1,) * len(self.cidrs)
        out: list[tuple[Network, ...]] = []
        start = 0
        for n in sizes:
            out.append(self.cidrs[start : start + n])
            start += n
        return tuple(out)

    @property
    def families(self) -> frozenset[int]:
        """IP versions (4, 6) the pool has addresses for."""
        return frozenset(c.version for c in self.cidrs)

    def contains(self, ip: IPAddress) -> bool:
        """True when `ip` belongs to the pool and may be handed out (avoidBuggyIPs honoured)."""
        if self.avoid_buggy_ips and is_buggy(ip):
            return False
        return any(c.version == ip.version and ip in c for c in self.cidrs)

    def addresses(self, version: int) -> Iterator[IPAddress]:
        """Usable addresses of one family, CIDRs in spec order, each from its lowest address."""
        for _, ip in self.positions(version):
            yield ip

    def positions(self, version: int, start: int = 0) -> Iterator[tuple[int, IPAddress]]:
        """(position, address) of usable addresses from raw position `start` on.

        A position counts every address of the family's CIDRs in spec order (buggy ones
        included), so a caller can resume a walk where it stopped.
        """
        make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
        base = 0
        for cidr in self.cidrs:
            if cidr.version != version:
                continue
            count = cidr.num_addresses
            if start < base + count:
                first = int(cidr.network_address)
                for k in range(max(0, start - base), count):
                    ip = make(first + k)
                    if self.avoid_buggy_ips and is_buggy(ip):
                        continue
                    yield base + k, ip
            base += count

    def size(self, version: int | None = None) -> int:
        """Usable address count of one family (4 or 6), or of both (None): MetalLB's
        `poolCount` per family, without its 2^62 cap, avoidBuggyIPs honoured."""
        total = 0
        for cidr in self.cidrs:
            if version is not None and cidr.version != version:
                continue
            n = cidr.num_addresses
            if self.avoid_buggy_ips and cidr.version == 4:
                if cidr.prefixlen <= 24:
                    n -= 2 * 2 ** (24 - cidr.prefixlen)
                else:
                    n -= int(is_buggy(cidr.network_address)) + int(is_buggy(cidr.broadcast_address))
            total += n
        return total


@dataclass(frozen=True, slots=True)
class PreferredNodeSelector:
    """`preferredNodeSelectors` entry: `weight` (1..100) added when `preference` matches."""

    weight: int
    preference: LabelSelector


@dataclass(frozen=True, slots=True)
class L2Advertisement:
    """A validated L2Advertisement.

    Empty `ip_address_pools` and `ip_address_pool_selectors` mean "every pool"; empty
    `node_selectors` means every node; empty `interfaces` means every eligible interface;
    empty `service_selectors` means every service.
    """

    name: str
    namespace: str
    ip_address_pools: tuple[str, ...] = ()
    ip_address_pool_selectors: tuple[LabelSelector, ...] = ()
    node_selectors: tuple[LabelSelector, ...] = ()
    interfaces: tuple[str, ...] = ()
    service_selectors: tuple[LabelSelector, ...] = ()
    preferred_node_selectors: tuple[PreferredNodeSelector, ...] = ()

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> L2Advertisement:
        """Parse and validate; raises `ConfigError` naming the advertisement."""
        name, ns, _, _ = _meta.metadata(obj)
        where = f"L2Advertisement {name}"
        spec = _meta.mapping(obj.get("spec"), f"{where}: spec")
        prefs: list[PreferredNodeSelector] = []
        raw_prefs = spec.get("preferredNodeSelectors") or []
        if not isinstance(raw_prefs, list):
            raise ConfigError(f"{where}: preferredNodeSelectors must be a list")
        for i, raw in enumerate(raw_prefs):
            raw = _meta.mapping(raw, f"{where}: preferredNodeSelectors[{i}]")
            weight = raw.get("weight")
            if not isinstance(weight, int) or isinstance(weight, bool) or not 1 <= weight <= 100:
                raise ConfigError(f"{where}: preferredNodeSelectors[{i}].weight must be 1..100")
            prefs.append(
                PreferredNodeSelector(
                    weight,
                    LabelSelector.from_dict(
                        raw.get("preference"),
                        where=f"{where}: preferredNodeSelectors[{i}].preference",
                    ),
                )
            )
        return cls(
            name=name,
            namespace=ns,
            ip_address_pools=_meta.str_list(
                spec.get("ipAddressPools"), f"{where}: ipAddressPools", unique=True
            ),
            ip_address_pool_selectors=parse_selectors(
                spec.get("ipAddressPoolSelectors"), where=f"{where}: ipAddressPoolSelectors"
            ),
            node_selectors=parse_selectors(
                spec.get("nodeSelectors"), where=f"{where}: nodeSelectors"
            ),
            interfaces=_meta.str_list(spec.get("interfaces"), f"{where}: interfaces", unique=True),
            service_selectors=parse_selectors(
                spec.get("serviceSelectors"), where=f"{where}: serviceSelectors"
            ),
            preferred_node_selectors=tuple(prefs),
        )

    def applies_to_pool(self, pool: IPAddressPool) -> bool:
        """Named pools or selected pools; both empty means all pools."""
        if not self.ip_address_pools and not self.ip_address_pool_selectors:
            return True
        return pool.name in self.ip_address_pools or any_matches(
            self.ip_address_pool_selectors, pool.labels
        )

    def selects_node(self, labels: Mapping[str, str]) -> bool:
        """Is a node with these labels allowed to announce for this advertisement?"""
        return not self.node_selectors or any_matches(self.node_selectors, labels)

    def matches_service(self, labels: Mapping[str, str]) -> bool:
        """Does this advertisement cover a service with these labels?"""
        return not self.service_selectors or any_matches(self.service_selectors, labels)

    def preference_score(self, labels: Mapping[str, str]) -> int:
        """Sum of the weights of matching preferences (0 for nodes outside `node_selectors`)."""
        if not self.selects_node(labels):
            return 0
        return sum(p.weight for p in self.preferred_node_selectors if p.preference.matches(labels))

    @property
    def interface_selection(self) -> InterfaceSelection:
        if not self.interfaces:
            return ALL_INTERFACES
        return InterfaceSelection(False, frozenset(self.interfaces))


@dataclass(frozen=True, slots=True)
class ServiceL2Status:
    """MetalLB's ServiceL2Status: which node announces a service, on which interfaces.

    An empty `interfaces` tuple means "all interfaces", as MetalLB writes it.
    """

    name: str
    namespace: str
    node: str
    service_name: str
    service_namespace: str
    interfaces: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> ServiceL2Status:
        name, ns, _, _ = _meta.metadata(obj)
        where = f"ServiceL2Status {name}"
        status = _meta.mapping(obj.get("status"), f"{where}: status")
        ifaces = status.get("interfaces") or []
        if not isinstance(ifaces, list):
            raise ConfigError(f"{where}: status.interfaces must be a list")
        names = []
        for item in ifaces:
            item = _meta.mapping(item, f"{where}: status.interfaces[]")
            names.append(str(item.get("name", "")))
        return cls(
            name=name,
            namespace=ns,
            node=str(status.get("node") or ""),
            service_name=str(status.get("serviceName") or ""),
            service_namespace=str(status.get("serviceNamespace") or ""),
            interfaces=tuple(names),
        )

    def to_dict(self) -> dict[str, Any]:
        """The status block as MetalLB writes it (for the Kubernetes status writer)."""
        return {
            "node": self.node,
            "serviceName": self.service_name,
            "serviceNamespace": self.service_namespace,
            "interfaces": [{"name": n} for n in self.interfaces],
        }
