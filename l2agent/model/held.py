"""Pools left out of the configuration, and the Services that keep their IPs meanwhile.

A bad IPAddressPool (a field that does not parse, or CIDRs that overlap an earlier pool's)
costs only itself: nothing new is allocated from it, but a Service that already holds IPs
from it keeps them, and every speaker keeps announcing them, until the pool is fixed.
Such a Service is *held*. What a held Service needs to be announced is what an
advertisement selects a pool by (its name and labels), read from the bad object as far as
it goes, so every node, a fresh one included, reaches the same answer from the same
objects: nothing here depends on history.

Pure: `HeldPool.from_raw`/`from_pool` build the record; `held_pool_for` decides.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from l2agent.errors import ConfigError
from l2agent.model import _meta
from l2agent.model.crds import IPAddressPool, Network, parse_address_entry
from l2agent.model.problems import ObjectProblem
from l2agent.model.views import ServiceView

__all__ = ["ANN_ALLOCATED_FROM_POOL", "HeldPool", "held_pool_for"]

ANN_ALLOCATED_FROM_POOL = "metallb.io/ip-allocated-from-pool"
_DEPRECATED_ALLOCATED_FROM_POOL = "metallb.universe.tf/ip-allocated-from-pool"


@dataclass(frozen=True, slots=True)
class HeldPool:
    """A pool left out: its name and labels (for the advertisements that select it), the
    address entries that still parse, and why it was left out."""

    name: str
    namespace: str
    problem: ObjectProblem
    labels: Mapping[str, str] = field(default_factory=_meta.empty, hash=False)
    cidrs: tuple[Network, ...] = ()

    @classmethod
    def from_pool(cls, pool: IPAddressPool, problem: ObjectProblem) -> HeldPool:
        """A pool that parsed but clashes with another (overlap, duplicate name)."""
        return cls(pool.name, pool.namespace, problem, pool.labels, pool.cidrs)

    @classmethod
    def from_raw(cls, obj: Any, problem: ObjectProblem) -> HeldPool | None:
        """A pool that does not parse: whatever of it still reads (None without a name)."""
        if not problem.name:
            return None
        meta = obj.get("metadata") if isinstance(obj, Mapping) else None
        spec = obj.get("spec") if isinstance(obj, Mapping) else None
        try:
            labels = _meta.string_map((meta or {}).get("labels"), "labels")
        except ConfigError:
            labels = _meta.EMPTY
        entries = spec.get("addresses") if isinstance(spec, Mapping) else None
        cidrs: list[Network] = []
        for entry in entries if isinstance(entries, list) else ():
            try:
                cidrs.extend(parse_address_entry(entry))
            except ConfigError:
                continue
        return cls(problem.name, problem.namespace, problem, labels, tuple(cidrs))

    def contains(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(c.version == ip.version and ip in c for c in self.cidrs)

    def stand_in(self, svc: ServiceView) -> IPAddressPool:
        """The pool as the plans see it for one held Service: its name and labels (what
        advertisements select by) and exactly the IPs the Service holds."""
        return IPAddressPool(
            name=self.name,
            namespace=self.namespace,
            cidrs=tuple(ipaddress.ip_network(ip) for ip in svc.ingress_ips),
            auto_assign=False,
            labels=self.labels,
        )


def held_pool_for(
    svc: ServiceView, held: Iterable[HeldPool], pools: Iterable[IPAddressPool]
) -> HeldPool | None:
    """The left-out pool whose IPs `svc` keeps, if any: the Service holds IPs and its
    allocated-from-pool annotation names a left-out pool (and no pool in force of that
    name), or no pool in force contains its IPs and a left-out pool's addresses do."""
    if not svc.ingress_ips:
        return None
    held = tuple(held)
    if not held:
        return None
    pools = tuple(pools)
    good = {p.name for p in pools}
    named = svc.annotations.get(ANN_ALLOCATED_FROM_POOL) or svc.annotations.get(
        _DEPRECATED_ALLOCATED_FROM_POOL
    )
    if named is not None and named not in good:
        found = next((h for h in held if h.name == named), None)
        if found is not None:
            return found
    if any(p.contains(ip) for p in pools for ip in svc.ingress_ips):
        return None
    return next((h for h in held if any(h.contains(ip) for ip in svc.ingress_ips)), None)
