"""The BGP lab's cluster as MetalLB objects, and each node's frr.conf rendered from them.

What a user writes (IPAddressPool, BGPPeer, BGPAdvertisement, BFDProfile, Community, Secret,
Node, Service, EndpointSlice) is built here as plain dicts; ``frr_conf(objects, node)`` runs
them through the speaker's own pipeline (``build_state`` -> ``bgp.plan.plan_bgp`` ->
``bgp.frr_config.render``), so the lab exercises exactly the text a speaker would apply. The
same objects written as YAML are what ``l2agent speaker --config`` reads.

Lab defaults: every node peers with router1 over IPv4 and IPv6 and (``gobgp``) with router2
over IPv4; hold 3 s / keepalive 1 s / connect 1 s (MetalLB's minimum hold; re-peering in a
test must not take minutes); service IPs from ``topology.bgp_vip``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from l2agent.bgp.frr_config import FrrOptions, render
from l2agent.bgp.plan import plan_bgp
from l2agent.lab.topology import IPAddress, router_address
from l2agent.model import build_state

NS = "metallb-system"
POOL_V4 = "203.0.113.0/24"
POOL_V6 = "2001:db8:113::/64"


@dataclass(frozen=True, slots=True)
class LabPeer:
    """One BGPPeer: a router address seen from every node it selects."""

    name: str
    address: IPAddress
    peer_asn: int
    my_asn: int
    hold: str | None = "3s"
    keepalive: str | None = "1s"
    connect: str | None = "1s"
    bfd_profile: str | None = None
    password: str | None = None
    password_secret: str | None = None
    """Name of a ``kubernetes.io/basic-auth`` Secret holding the password (MetalLB's
    ``passwordSecret``); its value is ``password``."""
    graceful_restart: bool = False
    node_selector: Mapping[str, str] | None = None

    def objects(self) -> list[dict[str, Any]]:
        spec: dict[str, Any] = {
            "myASN": self.my_asn,
            "peerASN": self.peer_asn,
            "peerAddress": str(self.address),
        }
        for key, value in (
            ("holdTime", self.hold),
            ("keepaliveTime", self.keepalive),
            ("connectTime", self.connect),
            ("bfdProfile", self.bfd_profile),
        ):
            if value is not None:
                spec[key] = value
        if self.graceful_restart:
            spec["enableGracefulRestart"] = True
        if self.node_selector is not None:
            spec["nodeSelectors"] = [{"matchLabels": dict(self.node_selector)}]
        out: list[dict[str, Any]] = []
        if self.password_secret is not None:
            spec["passwordSecret"] = {"name": self.password_secret, "namespace": NS}
            out.append(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": self.password_secret, "namespace": NS},
                    "type": "kubernetes.io/basic-auth",
                    "stringData": {"password": self.password or ""},
                }
            )
        elif self.password is not None:
            spec["password"] = self.password
        out.append(_obj("metallb.io/v1beta2", "BGPPeer", self.name, spec))
        return out


@dataclass(frozen=True, slots=True)
class LabService:
    """A LoadBalancer Service holding ``ips`` (status set, as the controller would)."""

    name: str
    ips: tuple[IPAddress, ...]
    local: bool = False
    """``externalTrafficPolicy: Local``: only nodes in ``endpoints`` announce."""
    endpoints: tuple[str, ...] | None = None
    """Nodes with a ready endpoint (an EndpointSlice is written); None writes none (static
    mode then treats the Service as served everywhere)."""
    labels: Mapping[str, str] = field(default_factory=dict)

    def objects(self) -> list[dict[str, Any]]:
        families = ["IPv4" if ip.version == 4 else "IPv6" for ip in self.ips]
        spec: dict[str, Any] = {
            "type": "LoadBalancer",
            "ports": [{"port": 7777, "protocol": "UDP"}],
            "ipFamilies": families,
            "ipFamilyPolicy": "RequireDualStack" if len(families) > 1 else "SingleStack",
        }
        if self.local:
            spec["externalTrafficPolicy"] = "Local"
        svc = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": self.name, "namespace": "default", "labels": dict(self.labels)},
            "spec": spec,
            "status": {"loadBalancer": {"ingress": [{"ip": str(ip)} for ip in self.ips]}},
        }
        out = [svc]
        if self.endpoints is not None:
            for version in sorted({ip.version for ip in self.ips}):
                out.append(self._slice(version))
        return out

    def _slice(self, version: int) -> dict[str, Any]:
        endpoints = [
            {
                "addresses": [f"10.244.{i}.10" if version == 4 else f"fd00:244::{i}:10"],
                "conditions": {"ready": True, "serving": True},
                "nodeName": node,
            }
            for i, node in enumerate(self.endpoints or (), start=1)
        ]
        return {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{self.name}-v{version}",
                "namespace": "default",
                "labels": {"kubernetes.io/service-name": self.name},
            },
            "addressType": f"IPv{version}",
            "endpoints": endpoints,
            "ports": [{"port": 7777, "protocol": "UDP"}],
        }


def _obj(api: str, kind: str, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": NS},
            "spec": dict(spec)}  # fmt: skip


def bfd_profile(name: str, interval_ms: int, multiplier: int = 3, **extra: Any) -> dict[str, Any]:
    """A BFDProfile (``extra``: echoMode, minimumTtl, passiveMode, ... as MetalLB spells them)."""
    spec = {"receiveInterval": interval_ms, "transmitInterval": interval_ms,
            "detectMultiplier": multiplier, **extra}  # fmt: skip
    return _obj("metallb.io/v1beta1", "BFDProfile", name, spec)


def advertisement(name: str = "all", **spec: Any) -> dict[str, Any]:
    """A BGPAdvertisement (``spec`` as MetalLB spells it: communities, localPref, peers...)."""
    return _obj("metallb.io/v1beta1", "BGPAdvertisement", name, spec)


def community(name: str, aliases: Mapping[str, str]) -> dict[str, Any]:
    items = [{"name": k, "value": v} for k, v in aliases.items()]
    return _obj("metallb.io/v1beta1", "Community", name, {"communities": items})


def router_peers(
    my_asn: int,
    router_asn: int,
    *,
    gobgp: bool = False,
    bfd: str | None = None,
    password: str | None = None,
    **options: Any,
) -> list[LabPeer]:
    """The lab's usual peers: router1 over IPv4 and IPv6 (BFD ``bfd``), router2 over IPv4
    (GoBGP has no BFD)."""
    peers = [
        LabPeer(f"router1-v{v}", router_address(1, v), router_asn, my_asn, bfd_profile=bfd,
                password=password, **options)
        for v in (4, 6)
    ]  # fmt: skip
    if gobgp:
        peers.append(
            LabPeer("router2-v4", router_address(2, 4), router_asn, my_asn, password=password,
                    **options)
        )  # fmt: skip
    return peers


def cluster_objects(
    nodes: Sequence[str],
    peers: Sequence[LabPeer],
    services: Sequence[LabService],
    *,
    extra: Sequence[dict[str, Any]] = (),
    node_labels: Mapping[str, Mapping[str, str]] | None = None,
    advertisements: Sequence[dict[str, Any]] | None = None,
    pool: Sequence[str] = (POOL_V4, POOL_V6),
) -> list[dict[str, Any]]:
    """Every object of the lab's cluster; one advertisement for the pool by default.

    ``pool``: the addresses of the one IPAddressPool (IPv4 only when a BFD profile uses
    echo mode: MetalLB refuses echo mode towards IPv6 prefixes)."""
    out: list[dict[str, Any]] = [
        _obj("metallb.io/v1beta1", "IPAddressPool", "lab", {"addresses": list(pool)})
    ]
    for peer in peers:
        out += peer.objects()
    out += list(advertisements) if advertisements is not None else [advertisement()]
    out += list(extra)
    for node in nodes:
        labels = dict((node_labels or {}).get(node, {}))
        out.append({"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": node, "labels": labels}})  # fmt: skip
    for svc in services:
        out += svc.objects()
    return out


def to_yaml(objects: Sequence[Mapping[str, Any]]) -> str:
    return yaml.safe_dump_all([dict(o) for o in objects], sort_keys=False)


def frr_conf(objects: Sequence[Mapping[str, Any]], node: str, *, withdrawn: bool = False) -> str:
    """The frr.conf the speaker of ``node`` renders for these objects (problems raise);
    ``withdrawn``: the same sessions announcing nothing (the speaker's planned stop)."""
    built = build_state(objects)
    if built.problems:
        raise ValueError(f"lab cluster has problems: {[p.message for p in built.problems]}")
    plan = plan_bgp(built.state, node)
    if plan.problems:
        raise ValueError(f"lab BGP plan has problems: {[p.message for p in plan.problems]}")
    return render(
        plan.withdrawn() if withdrawn else plan, FrrOptions(hostname=None, log_level=None)
    )


def dual_stack(n: int) -> tuple[IPAddress, IPAddress]:
    """The lab's n-th service IP pair (IPv4, IPv6)."""
    from l2agent.lab.topology import bgp_vip

    return (bgp_vip(n, 4), bgp_vip(n, 6))


def prefix(ip: IPAddress) -> str:
    """The host route a service IP is announced as (/32, /128)."""
    return str(ipaddress.ip_network(ip))
