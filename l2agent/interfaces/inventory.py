"""Which interfaces may carry announcements: MetalLB's rules as pure functions over values.

MetalLB (``internal/layer2/announcer.go`` ``updateInterfaces``) skips names matching its
exclusion regexes outright (they do not even count as existing), then makes an ARP responder
for an interface that is up, has no master (bond slaves, bridge ports, VRF members are
skipped; the bond/bridge itself qualifies), is not NOARP and has BROADCAST, and an NDP
responder when it also has an IPv6 link-local address. ``L2Advertisement.spec.interfaces``
narrows that to exact names; the plan has already taken the union over advertisements and
hands us one :class:`InterfaceSelection` per IP.

Deliberate addition: ``carrier`` is kept so the speaker can re-announce when a cable comes
back (MetalLB issue #584); it does not affect eligibility, as in MetalLB.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv6Address
from typing import Protocol

from l2agent.model.types import IPAddress

__all__ = [
    "DEFAULT_EXCLUDE",
    "Family",
    "Ineligible",
    "Interface",
    "InterfaceSelection",
    "desired_by_interface",
    "eligible",
    "ineligibility",
    "missing_names",
    "reannounce_needed",
    "responder_interfaces",
    "select",
]

DEFAULT_EXCLUDE: tuple[str, ...] = (
    r"^docker.*",
    r"^cbr.*",
    r"^dummy.*",
    r"^virbr.*",
    r"^lxcbr.*",
    r"^veth.*",
    r"^lo$",
    r"^cali.*",
    r"^tunl.*",
    r"^flannel.*",
    r"^kube-ipvs.*",
    r"^cni.*",
    r"^nodelocaldns.*",
    r"^lxc.*",
)
"""MetalLB's shipped ``announcedInterfacesToExclude`` list (ConfigMap ``metallb-excludel2``)."""


class InterfaceSelection(Protocol):
    """Where the plan wants an IP: ``l2agent.model.crds.InterfaceSelection`` has this shape
    (every eligible interface when ``all``, else exactly ``names``)."""

    @property
    def all(self) -> bool: ...

    @property
    def names(self) -> frozenset[str]: ...


class Family(enum.IntEnum):
    """Address family, numbered as ``ipaddress`` versions so ``Family(ip.version)`` works."""

    IPV4 = 4
    IPV6 = 6


class Ineligible(enum.Enum):
    """Why an interface carries no announcements for a family (log/explain label values)."""

    EXCLUDED = "excluded"
    DOWN = "down"
    ENSLAVED = "enslaved"
    NOARP = "noarp"
    NO_BROADCAST = "noBroadcast"
    NO_LINK_LOCAL = "noLinkLocal"


@dataclass(frozen=True, slots=True)
class Interface:
    """One network interface as the kernel reports it.

    ``up`` is the administrative IFF_UP flag (what MetalLB checks); ``carrier`` is
    IFF_LOWER_UP (cable in). ``master`` is the ifindex of a bond/bridge/VRF it belongs to.
    ``link_local`` is one IPv6 link-local address (the lowest, for stability) or None.
    ``kind`` is the rtnetlink link kind ("veth", "bridge", "bond"...; "" for plain NICs).
    """

    index: int
    name: str
    mac: bytes
    up: bool
    broadcast: bool
    noarp: bool
    master: int | None
    link_local: IPv6Address | None
    kind: str = ""
    carrier: bool = True

    def __post_init__(self) -> None:
        if self.index <= 0:
            raise ValueError(f"interface {self.name!r}: ifindex must be positive")
        if not self.name:
            raise ValueError("interface name must not be empty")
        if self.link_local is not None and not self.link_local.is_link_local:
            raise ValueError(f"interface {self.name!r}: {self.link_local} is not link-local")


@lru_cache(maxsize=64)
def _compiled(exclude: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p) for p in exclude)


def is_excluded(name: str, exclude: Sequence[str] = DEFAULT_EXCLUDE) -> bool:
    """True when ``name`` matches any exclusion regex (searched, as Go's MatchString does)."""
    return any(p.search(name) for p in _compiled(tuple(exclude)))


def ineligibility(
    iface: Interface, family: Family, exclude: Sequence[str] = DEFAULT_EXCLUDE
) -> Ineligible | None:
    """The first reason ``iface`` cannot answer/announce for ``family``, or None if it can."""
    if is_excluded(iface.name, exclude):
        return Ineligible.EXCLUDED
    if not iface.up:
        return Ineligible.DOWN
    if iface.master is not None:
        return Ineligible.ENSLAVED
    if iface.noarp:
        return Ineligible.NOARP
    if family == Family.IPV4 and not iface.broadcast:
        return Ineligible.NO_BROADCAST
    if family == Family.IPV6 and iface.link_local is None:
        return Ineligible.NO_LINK_LOCAL
    return None


def eligible(iface: Interface, family: Family, exclude: Sequence[str] = DEFAULT_EXCLUDE) -> bool:
    return ineligibility(iface, family, exclude) is None


def select(
    selection: InterfaceSelection,
    inventory: Mapping[str, Interface],
    family: Family,
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
) -> frozenset[str]:
    """Names of the interfaces one IP of ``family`` is announced on.

    "All" means every eligible interface; named interfaces are taken only if they exist and
    are eligible (an explicitly named excluded interface does not exist for MetalLB either).
    """
    if selection.all:
        candidates: Iterable[Interface] = inventory.values()
    else:
        candidates = (inventory[n] for n in selection.names if n in inventory)
    return frozenset(i.name for i in candidates if eligible(i, family, exclude))


def missing_names(
    selection: InterfaceSelection,
    inventory: Mapping[str, Interface],
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
) -> frozenset[str]:
    """Requested names that do not exist on this node (excluded names count as missing).

    When every requested name is missing MetalLB skips the IP and emits ``announceFailed``.
    """
    if selection.all:
        return frozenset()
    return frozenset(n for n in selection.names if n not in inventory or is_excluded(n, exclude))


def desired_by_interface(
    announcements: Mapping[IPAddress, InterfaceSelection],
    inventory: Mapping[str, Interface],
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
) -> dict[str, frozenset[IPAddress]]:
    """Invert the plan into ``ifname -> owned IPs on it``: the shape both the announce
    schedule (``set_desired``) and the responders (per-interface owned set) take."""
    out: dict[str, set[IPAddress]] = {}
    for ip, selection in announcements.items():
        for name in select(selection, inventory, Family(ip.version), exclude):
            out.setdefault(name, set()).add(ip)
    return {name: frozenset(ips) for name, ips in out.items()}


def responder_interfaces(
    inventory: Mapping[str, Interface], exclude: Sequence[str] = DEFAULT_EXCLUDE
) -> frozenset[str]:
    """Interfaces that get a responder socket: eligible for at least one family."""
    return frozenset(
        i.name
        for i in inventory.values()
        if eligible(i, Family.IPV4, exclude) or eligible(i, Family.IPV6, exclude)
    )


def reannounce_needed(before: Interface | None, after: Interface) -> bool:
    """True when gratuitous packets must go out again on ``after``: it came up, got its
    carrier back, or changed MAC (clients and switches hold the old facts)."""
    if before is None:
        return after.up and after.carrier
    if after.mac != before.mac:
        return True
    came_up = after.up and not before.up
    carrier_back = after.carrier and not before.carrier
    return (came_up or carrier_back) and after.up and after.carrier
