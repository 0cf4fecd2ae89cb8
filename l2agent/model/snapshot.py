"""`ClusterState`: one immutable snapshot of every input the plan reads.

`build_state` is the counterpart of MetalLB's `config.For`: it turns a bag of plain dicts
(static YAML files, or objects the Kubernetes glue converted) into validated values, and
reports what it could not use instead of raising: every object left out is an
`ObjectProblem` (the BGP-only kinds and kinds we do not read are reported too). Whether a
problem refuses the whole configuration is `l2agent.model.problems.cost`'s decision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from l2agent.errors import ConfigError
from l2agent.model import _meta
from l2agent.model.crds import IPAddressPool, L2Advertisement, ServiceL2Status, cidrs_overlap
from l2agent.model.problems import Cost, ObjectProblem, ProblemReason, blocking, cost
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
    """What `build_state` made of its input: the state without the bad objects, and why
    each object was left out (or, for kinds we do not act on, only reported)."""

    state: ClusterState
    problems: tuple[ObjectProblem, ...] = ()

    @property
    def dropped(self) -> tuple[ObjectProblem, ...]:
        """Objects left out of `state` (every problem but the report-only ones)."""
        return tuple(p for p in self.problems if cost(p) is not Cost.NOTHING)

    @property
    def blocking(self) -> tuple[ObjectProblem, ...]:
        """Problems that refuse the whole configuration under the policy (`cost`)."""
        return blocking(self.problems)

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
}


def build_state(objects: Iterable[Any]) -> BuildResult:
    """Validate every object and assemble a `ClusterState`; never raises on bad input.

    Cross-object rules (MetalLB's): pool names unique, CIDRs of different pools disjoint
    (containment counts: 10.0.0.0/8 and 10.0.0.0/16 clash), advertisement names unique.
    The first object wins a clash; the later one is dropped with a problem.
    """
    problems: list[ObjectProblem] = []
    parsed: dict[str, list[Any]] = {kind: [] for kind in _PARSERS}
    for obj in expand_lists(objects):
        item = _parse_one(obj, problems)
        if item is not None:
            parsed[obj["kind"]].append(item)

    pools = _unique_pools(parsed["IPAddressPool"], problems)
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
    )
    return BuildResult(state, tuple(problems))


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
    if kind in BGP_KINDS:
        problems.append(
            ObjectProblem.about(
                obj,
                ProblemReason.UNSUPPORTED_KIND,
                f"{_meta.ref(obj)} ({obj.get('apiVersion', '?')}): BGP mode is not supported"
                " yet (l2agent implements layer 2 mode only); ignored",
            )
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


def _unique_pools(pools: list[IPAddressPool], problems: list[ObjectProblem]) -> list[IPAddressPool]:
    kept: list[IPAddressPool] = []
    unique = _unique(
        pools, lambda p: (p.namespace, p.name), "IPAddressPool", problems, per_namespace=False
    )
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
            problems.append(
                ObjectProblem(
                    "IPAddressPool",
                    pool.namespace,
                    pool.name,
                    ProblemReason.OVERLAP,
                    f"IPAddressPool {pool.name}: CIDR {a} overlaps with CIDR {b} of pool "
                    f"{other.name}; pool {pool.name} is ignored",
                )
            )
            continue
        kept.append(pool)
    return kept
