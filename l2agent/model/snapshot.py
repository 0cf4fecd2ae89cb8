"""`ClusterState`: one immutable snapshot of every input the plan reads.

`build_state` is the counterpart of MetalLB's `config.For`: it turns a bag of plain dicts
(static YAML files, or objects the Kubernetes glue converted) into validated values, and
reports what it could not use instead of raising.  Bad objects are dropped with a message;
the BGP-only kinds are reported as not supported yet; kinds we do not read are listed as
ignored.  The caller decides whether a result with errors replaces the last good state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from l2agent.errors import ConfigError
from l2agent.model import _meta
from l2agent.model.crds import IPAddressPool, L2Advertisement, ServiceL2Status, cidrs_overlap
from l2agent.model.types import IPAddress
from l2agent.model.views import EndpointSliceView, NamespaceView, NodeView, ServiceView

__all__ = ["BGP_KINDS", "BuildResult", "ClusterState", "build_state", "expand_lists"]

log = logging.getLogger(__name__)

#: MetalLB kinds that only BGP mode uses; read, reported, not acted on.
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
        )

    def pool(self, name: str) -> IPAddressPool | None:
        return next((p for p in self.pools if p.name == name), None)

    def pool_for(self, ip: IPAddress) -> IPAddressPool | None:
        """The pool an IP belongs to (pools never overlap, so at most one)."""
        return next((p for p in self.pools if p.contains(ip)), None)

    def service(self, key: str) -> ServiceView | None:
        return next((s for s in self.services if s.key == key), None)

    def slices_for(self, service_key: str) -> tuple[EndpointSliceView, ...]:
        return self._slices_index.get(service_key, ())

    def advertisements_for(self, pool: IPAddressPool) -> tuple[L2Advertisement, ...]:
        """The L2Advertisements that apply to a pool (none: allocated but never announced)."""
        return tuple(ad for ad in self.advertisements if ad.applies_to_pool(pool))

    def namespace_labels(self, name: str) -> Mapping[str, str]:
        """Labels of a namespace, with the label Kubernetes always sets on it."""
        labels = dict(self.namespaces[name].labels) if name in self.namespaces else {}
        labels.setdefault(NAMESPACE_NAME_LABEL, name)
        return labels


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What `build_state` made of its input.

    `errors`: objects rejected (the state was built without them); `unsupported`: BGP-only
    objects read and not acted on; `ignored`: kinds l2agent does not read (ConfigMaps, ...).
    """

    state: ClusterState
    errors: tuple[str, ...] = ()
    unsupported: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every input was valid (BGP kinds and ignored kinds do not count)."""
        return not self.errors


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
}


def build_state(objects: Iterable[Any]) -> BuildResult:
    """Validate every object and assemble a `ClusterState`; never raises on bad input.

    Cross-object rules (MetalLB's): pool names unique, CIDRs of different pools disjoint
    (containment counts: 10.0.0.0/8 and 10.0.0.0/16 clash), advertisement names unique.
    The first object wins a clash; the later one is dropped with an error.
    """
    errors: list[str] = []
    unsupported: list[str] = []
    ignored: list[str] = []
    parsed: dict[str, list[Any]] = {kind: [] for kind in _PARSERS}
    for obj in expand_lists(objects):
        if not isinstance(obj, Mapping):
            errors.append(f"expected a Kubernetes object (a mapping), got {type(obj).__name__}")
            continue
        kind = obj.get("kind")
        if not isinstance(kind, str) or not kind:
            errors.append(f"{_meta.ref(obj)}: kind is missing")
            continue
        if kind in BGP_KINDS:
            unsupported.append(
                f"{_meta.ref(obj)} ({obj.get('apiVersion', '?')}): BGP mode is not supported yet"
                " (l2agent implements layer 2 mode only); ignored"
            )
            continue
        parser = _PARSERS.get(kind)
        if parser is None:
            ignored.append(f"{_meta.ref(obj)}: kind {kind} is not read by l2agent")
            continue
        try:
            parsed[kind].append(parser(obj))
        except ConfigError as exc:
            errors.append(str(exc))
        except (TypeError, ValueError, AttributeError) as exc:  # defensive: never crash on input
            errors.append(f"{_meta.ref(obj)}: {exc}")

    pools = _unique_pools(parsed["IPAddressPool"], errors)
    ads = _unique(parsed["L2Advertisement"], lambda a: a.name, "L2Advertisement", errors)
    services = _unique(parsed["Service"], lambda s: s.key, "Service", errors)
    nodes = _unique(parsed["Node"], lambda n: n.name, "Node", errors)
    slices = _unique(
        parsed["EndpointSlice"], lambda e: f"{e.namespace}/{e.name}", "EndpointSlice", errors
    )
    namespaces = _unique(parsed["Namespace"], lambda n: n.name, "Namespace", errors)
    statuses = _unique(
        parsed["ServiceL2Status"], lambda s: f"{s.namespace}/{s.name}", "ServiceL2Status", errors
    )
    for msg in errors:
        log.warning("invalid input: %s", msg)
    for msg in unsupported:
        log.warning("%s", msg)
    state = ClusterState.of(
        pools=pools,
        advertisements=ads,
        services=services,
        nodes=nodes,
        endpoint_slices=slices,
        namespaces=namespaces,
        l2_statuses=statuses,
    )
    return BuildResult(state, tuple(errors), tuple(unsupported), tuple(ignored))


def _unique(items: list[Any], key: Any, kind: str, errors: list[str]) -> list[Any]:
    seen: set[str] = set()
    out = []
    for item in items:
        k = key(item)
        if k in seen:
            errors.append(f"{kind} {k}: duplicate name; the later definition is ignored")
            continue
        seen.add(k)
        out.append(item)
    return out


def _unique_pools(pools: list[IPAddressPool], errors: list[str]) -> list[IPAddressPool]:
    kept: list[IPAddressPool] = []
    for pool in _unique(pools, lambda p: p.name, "IPAddressPool", errors):
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
            errors.append(
                f"IPAddressPool {pool.name}: CIDR {a} overlaps with CIDR {b} of pool "
                f"{other.name}; pool {pool.name} is ignored"
            )
            continue
        kept.append(pool)
    return kept
