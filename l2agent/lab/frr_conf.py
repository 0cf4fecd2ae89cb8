"""Hand-written frr.conf for the lab, shaped like MetalLB's (interim: until ``l2agent.bgp``'s
renderer is on main, the lab tests and the BGP benchmark configure the nodes' FRR with this).

The shape follows MetalLB's FRR-mode templates: ``no bgp ebgp-requires-policy``, ``no bgp
network import-check``, ``no bgp default ipv4-unicast``; per neighbor a ``-in`` route-map that
rejects everything and a ``-out`` route-map that lets through the prefix-list of allowed
prefixes, setting communities and local preference per prefix with ``on-match next``;
``bgp graceful-restart-disable`` unless graceful restart is asked for (a dead node's routes
must go at once); ``network`` lines per family.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class LabBfdProfile:
    """A BFD profile (milliseconds), as MetalLB's BFDProfile."""

    name: str
    receive_ms: int = 300
    transmit_ms: int = 300
    multiplier: int = 3
    echo: bool = False
    minimum_ttl: int | None = None


@dataclass(frozen=True, slots=True)
class LabNeighbor:
    """One BGP peer of a node."""

    address: str
    asn: int
    password: str | None = None
    bfd_profile: str | None = None
    hold: int = 3
    keepalive: int = 1
    graceful_restart: bool = False

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.address).version


@dataclass(frozen=True, slots=True)
class LabAdvert:
    """One prefix announced to every neighbor of its family, with its attributes."""

    prefix: str
    communities: tuple[str, ...] = ()
    local_pref: int | None = None

    @property
    def version(self) -> int:
        return ipaddress.ip_network(self.prefix).version


@dataclass(frozen=True, slots=True)
class LabNodeConfig:
    asn: int
    router_id: str
    neighbors: tuple[LabNeighbor, ...]
    adverts: tuple[LabAdvert, ...] = ()
    profiles: tuple[LabBfdProfile, ...] = field(default=())


def _route_map_out(n: LabNeighbor, adverts: Sequence[LabAdvert]) -> list[str]:
    fam = "ip" if n.version == 4 else "ipv6"
    mine = [a for a in adverts if a.version == n.version]
    lines: list[str] = []
    seq = 1
    for a in mine:
        sets = [f"set community {c} additive" for c in a.communities]
        if a.local_pref is not None:
            sets.append(f"set local-preference {a.local_pref}")
        if not sets:
            continue
        plist = f"{n.address}-{seq}-attrs"
        lines += [
            f"{fam} prefix-list {plist} seq 1 permit {a.prefix}",
            f"route-map {n.address}-out permit {seq}",
            f"  match {fam} address prefix-list {plist}",
            *(f"  {s}" for s in sets),
            "  on-match next",
            "exit",
        ]
        seq += 1
    allowed = f"{n.address}-allowed-ipv{n.version}"
    if mine:
        lines += [f"{fam} prefix-list {allowed} seq {i} permit {a.prefix}" for i, a in
                  enumerate(mine, start=1)]  # fmt: skip
    else:
        lines.append(f"{fam} prefix-list {allowed} seq 1 deny any")
    lines += [
        f"route-map {n.address}-out permit {seq}",
        f"  match {fam} address prefix-list {allowed}",
        "exit",
        f"route-map {n.address}-in deny 20",
        "exit",
    ]
    return lines


def render(config: LabNodeConfig) -> str:
    """The node's whole frr.conf."""
    lines = ["frr defaults traditional", "log timestamp precision 3", "!"]
    for n in config.neighbors:
        lines += _route_map_out(n, config.adverts)
    lines += [
        f"router bgp {config.asn}",
        "  no bgp ebgp-requires-policy",
        "  no bgp network import-check",
        "  no bgp default ipv4-unicast",
        f"  bgp router-id {config.router_id}",
    ]
    if not any(n.graceful_restart for n in config.neighbors):
        lines.append("  bgp graceful-restart-disable")
    for n in config.neighbors:
        lines += [
            f"  neighbor {n.address} remote-as {n.asn}",
            f"  neighbor {n.address} timers {n.keepalive} {n.hold}",
            f"  neighbor {n.address} timers connect 1",
        ]
        if n.password is not None:
            lines.append(f"  neighbor {n.address} password {n.password}")
        if n.bfd_profile is not None:
            lines += [f"  neighbor {n.address} bfd", f"  neighbor {n.address} bfd profile "
                      f"{n.bfd_profile}"]  # fmt: skip
        if n.graceful_restart:
            lines.append(f"  neighbor {n.address} graceful-restart")
    for version in (4, 6):
        peers = [n for n in config.neighbors if n.version == version]
        if not peers:
            continue
        lines.append(f"  address-family ipv{version} unicast")
        for n in peers:
            lines += [
                f"    neighbor {n.address} activate",
                f"    neighbor {n.address} route-map {n.address}-in in",
                f"    neighbor {n.address} route-map {n.address}-out out",
            ]
        lines += [f"    network {a.prefix}" for a in config.adverts if a.version == version]
        lines.append("  exit-address-family")
    lines.append("exit")
    if config.profiles:
        lines.append("bfd")
        for p in config.profiles:
            lines += [
                f"  profile {p.name}",
                f"    receive-interval {p.receive_ms}",
                f"    transmit-interval {p.transmit_ms}",
                f"    detect-multiplier {p.multiplier}",
            ]
            if p.echo:
                lines.append("    echo-mode")
            if p.minimum_ttl is not None:
                lines.append(f"    minimum-ttl {p.minimum_ttl}")
            lines.append("  exit")
        lines.append("exit")
    return "\n".join(lines) + "\n"
