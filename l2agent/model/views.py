"""Read-only views of the core Kubernetes objects, holding only the fields we use.

Built from plain dicts as `kubectl get -o yaml` prints them (the Kubernetes glue converts
client objects to dicts first), never from client classes, so the model stays pure.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from l2agent.errors import ConfigError
from l2agent.model import _meta
from l2agent.model.types import IPAddress

__all__ = [
    "EXCLUDE_LB_LABEL",
    "Endpoint",
    "EndpointSliceView",
    "IPFamilyPolicy",
    "NamespaceView",
    "NodeView",
    "Port",
    "ServiceView",
    "TrafficPolicy",
]

#: Nodes with this label (any value) never announce, unless `--ignore-exclude-lb`.
EXCLUDE_LB_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
#: EndpointSlices name their Service with this label.
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class TrafficPolicy(enum.Enum):
    """`spec.externalTrafficPolicy`; `.value` is the YAML spelling."""

    CLUSTER = "Cluster"
    LOCAL = "Local"


class IPFamilyPolicy(enum.Enum):
    """`spec.ipFamilyPolicy`; `.value` is the YAML spelling."""

    SINGLE_STACK = "SingleStack"
    PREFER_DUAL_STACK = "PreferDualStack"
    REQUIRE_DUAL_STACK = "RequireDualStack"


@dataclass(frozen=True, slots=True)
class Port:
    """One service port as the allocator's sharing rules see it: (protocol, port)."""

    protocol: str
    port: int

    def __str__(self) -> str:
        return f"{self.protocol}/{self.port}"


def _ip(text: Any, where: str) -> IPAddress:
    try:
        return ipaddress.ip_address(str(text).strip())
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not an IP address") from None


def _family(text: Any, where: str) -> int:
    if text == "IPv4":
        return 4
    if text == "IPv6":
        return 6
    raise ConfigError(f"{where}: unknown IP family {text!r} (expected IPv4 or IPv6)")


@dataclass(frozen=True, slots=True)
class ServiceView:
    """The parts of a v1 Service that allocation and election read."""

    namespace: str
    name: str
    type: str = "ClusterIP"
    labels: Mapping[str, str] = field(default_factory=_meta.empty, hash=False)
    annotations: Mapping[str, str] = field(default_factory=_meta.empty, hash=False)
    load_balancer_class: str | None = None
    load_balancer_ip: str | None = None
    cluster_ips: tuple[IPAddress, ...] = ()
    ip_families: tuple[int, ...] = ()
    ip_family_policy: IPFamilyPolicy = IPFamilyPolicy.SINGLE_STACK
    external_traffic_policy: TrafficPolicy = TrafficPolicy.CLUSTER
    selector: Mapping[str, str] = field(default_factory=_meta.empty, hash=False)
    ports: tuple[Port, ...] = ()
    ingress_ips: tuple[IPAddress, ...] = ()

    @property
    def key(self) -> str:
        """`namespace/name`, MetalLB's service key."""
        return f"{self.namespace}/{self.name}"

    @property
    def is_load_balancer(self) -> bool:
        return self.type == "LoadBalancer"

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> ServiceView:
        """Parse a Service; a missing namespace means `default`, as kubectl applies it."""
        name, ns, labels, annotations = _meta.metadata(obj, default_namespace="default")
        where = f"Service {ns}/{name}"
        spec = _meta.mapping(obj.get("spec"), f"{where}: spec")
        cluster_ips: list[IPAddress] = []
        raw_cips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
        if not isinstance(raw_cips, list):
            raise ConfigError(f"{where}: spec.clusterIPs must be a list")
        for text in raw_cips:
            if text in ("None", ""):
                continue
            cluster_ips.append(_ip(text, f"{where}: spec.clusterIPs"))
        raw_fams = spec.get("ipFamilies") or []
        if not isinstance(raw_fams, list):
            raise ConfigError(f"{where}: spec.ipFamilies must be a list")
        families = tuple(_family(f, f"{where}: spec.ipFamilies") for f in raw_fams)
        try:
            policy = IPFamilyPolicy(spec.get("ipFamilyPolicy") or "SingleStack")
        except ValueError:
            raise ConfigError(
                f"{where}: unknown ipFamilyPolicy {spec.get('ipFamilyPolicy')!r}"
            ) from None
        try:
            etp = TrafficPolicy(spec.get("externalTrafficPolicy") or "Cluster")
        except ValueError:
            raise ConfigError(
                f"{where}: unknown externalTrafficPolicy {spec.get('externalTrafficPolicy')!r}"
            ) from None
        ports: list[Port] = []
        raw_ports = spec.get("ports") or []
        if not isinstance(raw_ports, list):
            raise ConfigError(f"{where}: spec.ports must be a list")
        for p in raw_ports:
            p = _meta.mapping(p, f"{where}: spec.ports[]")
            number = p.get("port")
            if not isinstance(number, int) or isinstance(number, bool):
                raise ConfigError(f"{where}: spec.ports[].port must be an integer")
            ports.append(Port(str(p.get("protocol") or "TCP"), number))
        status = _meta.mapping(obj.get("status"), f"{where}: status")
        lb = _meta.mapping(status.get("loadBalancer"), f"{where}: status.loadBalancer")
        ingress: list[IPAddress] = []
        raw_ingress = lb.get("ingress") or []
        if not isinstance(raw_ingress, list):
            raise ConfigError(f"{where}: status.loadBalancer.ingress must be a list")
        for entry in raw_ingress:
            entry = _meta.mapping(entry, f"{where}: status.loadBalancer.ingress[]")
            if entry.get("ip"):
                ingress.append(_ip(entry["ip"], f"{where}: status.loadBalancer.ingress"))
        lb_ip = spec.get("loadBalancerIP")
        lb_class = spec.get("loadBalancerClass")
        return cls(
            namespace=ns,
            name=name,
            type=str(spec.get("type") or "ClusterIP"),
            labels=labels,
            annotations=annotations,
            load_balancer_class=str(lb_class) if lb_class else None,
            load_balancer_ip=str(lb_ip).strip() if lb_ip else None,
            cluster_ips=tuple(cluster_ips),
            ip_families=families,
            ip_family_policy=policy,
            external_traffic_policy=etp,
            selector=_meta.string_map(spec.get("selector"), f"{where}: spec.selector"),
            ports=tuple(ports),
            ingress_ips=tuple(ingress),
        )


@dataclass(frozen=True, slots=True)
class NodeView:
    """A v1 Node: its labels and whether its `NetworkUnavailable` condition is True."""

    name: str
    labels: Mapping[str, str] = field(default_factory=_meta.empty, hash=False)
    network_unavailable: bool = False

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> NodeView:
        name, _, labels, _ = _meta.metadata(obj)
        status = _meta.mapping(obj.get("status"), f"Node {name}: status")
        conditions = status.get("conditions") or []
        if not isinstance(conditions, list):
            raise ConfigError(f"Node {name}: status.conditions must be a list")
        unavailable = any(
            isinstance(c, Mapping)
            and c.get("type") == "NetworkUnavailable"
            and str(c.get("status")) == "True"
            for c in conditions
        )
        return cls(name=name, labels=labels, network_unavailable=unavailable)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint of a slice; `ready`/`serving` keep Kubernetes' nil as None."""

    node_name: str | None
    ready: bool | None = None
    serving: bool | None = None

    @property
    def can_serve(self) -> bool:
        """MetalLB's `EndpointCanServe`: ready nil or true, or not ready but serving."""
        if self.ready is None or self.ready:
            return True
        return bool(self.serving)


@dataclass(frozen=True, slots=True)
class EndpointSliceView:
    """A discovery.k8s.io/v1 EndpointSlice, reduced to where its endpoints run."""

    namespace: str
    name: str
    service_name: str
    endpoints: tuple[Endpoint, ...] = ()

    @property
    def service_key(self) -> str:
        return f"{self.namespace}/{self.service_name}"

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> EndpointSliceView:
        name, ns, labels, _ = _meta.metadata(obj, default_namespace="default")
        where = f"EndpointSlice {ns}/{name}"
        service = labels.get(SERVICE_NAME_LABEL)
        if not service:
            raise ConfigError(f"{where}: label {SERVICE_NAME_LABEL} is missing")
        raw = obj.get("endpoints") or []
        if not isinstance(raw, list):
            raise ConfigError(f"{where}: endpoints must be a list")
        eps: list[Endpoint] = []
        for ep in raw:
            ep = _meta.mapping(ep, f"{where}: endpoints[]")
            cond = _meta.mapping(ep.get("conditions"), f"{where}: endpoints[].conditions")
            node = ep.get("nodeName")
            eps.append(
                Endpoint(
                    node_name=str(node) if node else None,
                    ready=_tristate(cond.get("ready"), where),
                    serving=_tristate(cond.get("serving"), where),
                )
            )
        return cls(namespace=ns, name=name, service_name=service, endpoints=tuple(eps))


def _tristate(raw: Any, where: str) -> bool | None:
    if raw is None or isinstance(raw, bool):
        return raw
    raise ConfigError(f"{where}: endpoint conditions must be true, false or absent")


@dataclass(frozen=True, slots=True)
class NamespaceView:
    """A v1 Namespace: only its labels (for `serviceAllocation.namespaceSelectors`)."""

    name: str
    labels: Mapping[str, str] = field(default_factory=_meta.empty, hash=False)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> NamespaceView:
        name, _, labels, _ = _meta.metadata(obj)
        return cls(name=name, labels=labels)
