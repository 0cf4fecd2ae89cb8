"""Writers of what l2agent tells the cluster: Service ingress, pool counts, per-node statuses.

Service allocations (`status.loadBalancer` and the `metallb.io/ip-allocated-from-pool`
annotation, in one conditional write) go through the Service's `status` subresource, pool
counts through the IPAddressPool status subresource.

ServiceL2Status and ServiceBGPStatus (`NodeStatusKind`: `L2_STATUS`, `BGP_STATUS`) are kept
as MetalLB's speaker shapes them: each announcing node owns one object per Service
(`generateName: l2-` / `bgp-`, labels `metallb.io/node`, `metallb.io/service-name`,
`metallb.io/service-namespace`; the status names the node and the interfaces, or the BGP
peers the Service is advertised to); a node deletes its own objects for Services it no
longer announces, and its own duplicates. Unlike MetalLB, a node leaves other nodes'
objects alone unless that node is gone from the cluster: two speakers that both announce a
Service for a moment (a partition) then keep one object each instead of deleting each
other's in a loop. `plan_node_status` is the pure diff; `NodeStatusWriter` applies it, at
most as fast as its token bucket allows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from l2agent.kube.convert import ApiFailure, api_failure, call, call_json
from l2agent.kube.ratelimit import TokenBucket
from l2agent.model.types import IPAddress

__all__ = [
    "ALLOCATED_FROM_POOL",
    "BGP_STATUS",
    "L2_STATUS",
    "LABEL_NODE",
    "LABEL_SERVICE_NAME",
    "LABEL_SERVICE_NAMESPACE",
    "AllocationWrite",
    "NodeStatusKind",
    "NodeStatusPlan",
    "NodeStatusWriter",
    "ServiceStatusWriter",
    "plan_node_status",
    "relevant_node_statuses",
]

log = logging.getLogger(__name__)

ALLOCATED_FROM_POOL = "metallb.io/ip-allocated-from-pool"
DEPRECATED_ALLOCATED_FROM_POOL = "metallb.universe.tf/ip-allocated-from-pool"
LABEL_NODE = "metallb.io/node"
LABEL_SERVICE_NAME = "metallb.io/service-name"
LABEL_SERVICE_NAMESPACE = "metallb.io/service-namespace"
MERGE_PATCH = "application/merge-patch+json"
_STATUS_TIMEOUT = 10.0
"""Seconds one ServiceL2Status/ServiceBGPStatus call may take (a hung API server must not
wedge the speaker's status thread)."""


@dataclass(frozen=True, slots=True)
class AllocationWrite:
    """One Service's allocation as a single conditional write.

    `ingress`: the new `status.loadBalancer.ingress` IPs (empty clears it), None to leave
    it; `pool`: the `metallb.io/ip-allocated-from-pool` value (None removes it), written
    only when `set_pool`. `resource_version`: the version the decision was made on; the
    API server refuses the write (409) if the Service changed since, so a decision made on
    a stale view, or by a leader that is no longer one, never lands."""

    key: str
    resource_version: str | None
    ingress: tuple[IPAddress, ...] | None = None
    set_pool: bool = False
    pool: str | None = None

    def body(self) -> dict[str, Any]:
        meta: dict[str, Any] = {}
        if self.resource_version:
            meta["resourceVersion"] = self.resource_version
        if self.set_pool:
            meta["annotations"] = {ALLOCATED_FROM_POOL: self.pool}
        body: dict[str, Any] = {"metadata": meta}
        if self.ingress is not None:
            ingress = [{"ip": str(ip)} for ip in self.ingress] if self.ingress else None
            body["status"] = {"loadBalancer": {"ingress": ingress}}
        return body


class ServiceStatusWriter:
    """Controller-side writes. Each method returns None on success, else the failure.

    Everything goes through status subresources, as MetalLB's controller does: the
    Service's pool annotation and ingress in one merge patch of `services/status` (the
    Service status strategy keeps metadata changes and only protects the spec), so the
    controller needs no write access to Services themselves. Each write carries the
    resourceVersion it was decided on and a request timeout."""

    def __init__(
        self, api: client.ApiClient, *, namespace: str, request_timeout: float = 10.0
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.request_timeout = request_timeout

    def write_allocation(self, write: AllocationWrite) -> ApiFailure | None:
        """Apply one `AllocationWrite` (pool annotation and ingress land together)."""
        ns, _, name = write.key.partition("/")
        try:
            call(
                self.core.patch_namespaced_service_status,
                name,
                ns,
                write.body(),
                _content_type=MERGE_PATCH,
                _request_timeout=self.request_timeout,
            )
        except Exception as exc:
            return self._failed("Service status", write.key, exc)
        return None

    def set_pool_status(
        self, pool: str, counts: Mapping[str, int], resource_version: str | None = None
    ) -> ApiFailure | None:
        """Patch IPAddressPool status (assignedIPv4, assignedIPv6, availableIPv4, ...),
        conditional on `resource_version` when given."""
        body: dict[str, Any] = {"status": dict(counts)}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            call(
                self.custom.patch_namespaced_custom_object_status,
                "metallb.io",
                "v1beta1",
                self.namespace,
                "ipaddresspools",
                pool,
                body,
                _content_type=MERGE_PATCH,
                _request_timeout=self.request_timeout,
            )
        except Exception as exc:
            return self._failed("IPAddressPool status", pool, exc)
        return None

    @staticmethod
    def _failed(what: str, target: str, exc: BaseException) -> ApiFailure:
        failure = api_failure(exc)
        if failure.conflict:
            log.info("%s %s changed since it was read; retrying on the newer one", what, target)
        else:
            log.warning("%s %s failed: %s", what, target, failure.message)
        return failure


@dataclass(frozen=True, slots=True)
class NodeStatusKind:
    """One of MetalLB's per-node status kinds: which resource, and where its values (the
    interfaces a node announces on, or the peers it advertises to) sit in the status."""

    kind: str
    plural: str
    generate_name: str
    field: str
    """The status field that holds the values (`interfaces`, `peers`)."""
    named_items: bool
    """Each value is written as `{"name": value}` (interfaces), else as plain text (peers)."""

    def values(self, obj: Mapping[str, Any]) -> tuple[str, ...] | None:
        """The values an object's status holds; None before its status was written."""
        status = obj.get("status") or {}
        if not status.get("node"):
            return None  # created, status not written yet
        items = status.get(self.field) or []
        if self.named_items:
            return tuple(str(i.get("name", "")) if isinstance(i, dict) else "" for i in items)
        return tuple(str(i) for i in items)

    def status(self, node: str, key: str, values: tuple[str, ...]) -> dict[str, Any]:
        ns, _, name = key.partition("/")
        items: list[Any] = [{"name": v} for v in values] if self.named_items else list(values)
        return {"node": node, "serviceName": name, "serviceNamespace": ns, self.field: items}


L2_STATUS = NodeStatusKind("ServiceL2Status", "servicel2statuses", "l2-", "interfaces", True)
"""Interfaces a node announces a Service on (empty: all)."""
BGP_STATUS = NodeStatusKind("ServiceBGPStatus", "servicebgpstatuses", "bgp-", "peers", False)
"""BGPPeers a node advertises a Service to (MetalLB: configured, whatever the session state)."""


@dataclass(frozen=True, slots=True)
class NodeStatusPlan:
    """What to change: create (service key, values), set status of existing objects
    (name, service key, values), delete object names."""

    create: tuple[tuple[str, tuple[str, ...]], ...] = ()
    update: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    delete: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def plan_node_status(
    node: str,
    announcing: Mapping[str, tuple[str, ...]],
    existing: Iterable[Mapping[str, Any]],
    nodes: Collection[str] | None = None,
    kind: NodeStatusKind = L2_STATUS,
) -> NodeStatusPlan:
    """Pure diff. `announcing`: service key -> values (sorted interfaces, empty = all; or
    sorted peers) for what this node announces; `existing`: the objects of `kind` in the
    namespace; `nodes`: the cluster's node names (None: unknown). Only this node's objects
    are created, changed or deleted, plus, for a Service this node announces, the objects
    of nodes not in `nodes` (gone from the cluster). Another live node's object is never
    touched: that node keeps its own, so a brief double claim costs no writes at all."""
    by_service: dict[str, list[Mapping[str, Any]]] = {}
    for obj in existing:
        labels = _labels(obj)
        key = f"{labels.get(LABEL_SERVICE_NAMESPACE, '')}/{labels.get(LABEL_SERVICE_NAME, '')}"
        by_service.setdefault(key, []).append(obj)
    create: list[tuple[str, tuple[str, ...]]] = []
    update: list[tuple[str, str, tuple[str, ...]]] = []
    delete: list[str] = []
    for key, objs in sorted(by_service.items()):
        mine = sorted(
            (o for o in objs if _labels(o).get(LABEL_NODE) == node),
            key=lambda o: str(o["metadata"]["name"]),
        )
        if key not in announcing:
            delete.extend(str(o["metadata"]["name"]) for o in mine)
            continue
        if nodes is not None:
            delete.extend(
                str(o["metadata"]["name"])
                for o in objs
                if _labels(o).get(LABEL_NODE) != node and _labels(o).get(LABEL_NODE) not in nodes
            )
        keep, extra = (mine[0], mine[1:]) if mine else (None, [])
        delete.extend(str(o["metadata"]["name"]) for o in extra)
        if keep is None:
            create.append((key, announcing[key]))
        elif kind.values(keep) != announcing[key]:
            update.append((str(keep["metadata"]["name"]), key, announcing[key]))
    for key in sorted(announcing):
        if key not in by_service:
            create.append((key, announcing[key]))
    return NodeStatusPlan(tuple(create), tuple(update), tuple(sorted(set(delete))))


def relevant_node_statuses(
    node: str, existing: Iterable[Mapping[str, Any]], nodes: Collection[str] | None
) -> tuple[tuple[str, str], ...]:
    """(name, resourceVersion) of the objects `plan_node_status` may act on: this node's
    own, and those of nodes gone from the cluster. A change elsewhere is no reason to look."""
    out = []
    for obj in existing:
        owner = _labels(obj).get(LABEL_NODE)
        if owner == node or (nodes is not None and owner not in nodes):
            meta = obj.get("metadata") or {}
            out.append((str(meta.get("name")), str(meta.get("resourceVersion") or "")))
    return tuple(sorted(out))


class NodeStatusWriter:
    """Applies `plan_node_status` for one speaker and one kind. Owner reference: the
    speaker pod, when its name and uid are known, so the objects go when the pod goes.
    Writers of several kinds may share one `limiter` (one write budget per speaker)."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        node: str,
        kind: NodeStatusKind = L2_STATUS,
        pod_name: str | None = None,
        pod_uid: str | None = None,
        limiter: TokenBucket | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.node = node
        self.kind = kind
        self.pod_name = pod_name
        self.pod_uid = pod_uid
        self.limiter = limiter
        """Every API write spends a token; a write without one waits for a later sync."""
        self._clock = clock
        self.failures = 0
        self.writes = 0
        self.deferred = 0
        """Writes the last `apply` left for later for want of a token."""
        self._created: dict[str, tuple[Mapping[str, Any], str]] = {}
        self._deleted: set[str] = set()

    def apply(self, plan: NodeStatusPlan) -> int:
        """Apply the plan; returns how many writes failed or were deferred for want of a
        token (`deferred`): both are retried on the next sync."""
        failed = 0
        self.deferred = 0
        for name in plan.delete:
            failed += self._delete(name) if self._token() else 0
        for key, values in plan.create:
            failed += self._create(key, values) if self._token() else 0
        for name, key, values in plan.update:
            failed += self._set_status(name, key, values) if self._token() else 0
        self.failures += failed
        return failed + self.deferred

    def retry_in(self) -> float:
        """Seconds until the next write may go (0 without a limiter)."""
        return 0.0 if self.limiter is None else self.limiter.wait(self._clock())

    def _token(self) -> bool:
        if self.limiter is None or self.limiter.take(self._clock()):
            self.writes += 1
            return True
        self.deferred += 1
        return False

    def sync(
        self,
        announcing: Mapping[str, tuple[str, ...]],
        existing: Iterable[Mapping[str, Any]],
        cache_version: str | None = None,
        nodes: Collection[str] | None = None,
    ) -> int:
        """Diff and apply. `existing` usually comes from a watch cache that lags our own
        writes (`cache_version`: the resourceVersion the cache has reached), so objects we
        created or deleted that the cache has not caught up with are folded in; without
        this a quick second sync would create duplicates."""
        seen: dict[str, Mapping[str, Any]] = {str(o["metadata"]["name"]): o for o in existing}
        self._created = {
            n: (o, rv)
            for n, (o, rv) in self._created.items()
            if n not in seen and not _reached(cache_version, rv)
        }
        self._deleted &= set(seen)
        view = {n: o for n, o in seen.items() if n not in self._deleted}
        view.update({n: o for n, (o, _) in self._created.items()})
        plan = plan_node_status(self.node, announcing, view.values(), nodes, self.kind)
        return self.apply(plan)

    def _api_args(self) -> tuple[str, str, str, str]:
        return ("metallb.io", "v1beta1", self.namespace, self.kind.plural)

    def _create(self, key: str, values: tuple[str, ...]) -> int:
        ns, _, name = key.partition("/")
        meta: dict[str, Any] = {
            "generateName": self.kind.generate_name,
            "namespace": self.namespace,
            "labels": {
                LABEL_NODE: self.node,
                LABEL_SERVICE_NAME: name,
                LABEL_SERVICE_NAMESPACE: ns,
            },
        }
        if self.pod_name and self.pod_uid:
            meta["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Pod", "name": self.pod_name, "uid": self.pod_uid}
            ]
        body = {
            "apiVersion": "metallb.io/v1beta1",
            "kind": self.kind.kind,
            "metadata": meta,
            "spec": {},
            "status": self.kind.status(self.node, key, values),
        }
        try:
            created = call_json(
                self.custom.create_namespaced_custom_object,
                *self._api_args(),
                body,
                _request_timeout=_STATUS_TIMEOUT,
            )
        except Exception as exc:
            log.warning(
                "%s for %s: create failed: %s", self.kind.kind, key, api_failure(exc).message
            )
            return 1
        # The status subresource ignores status on create: write it separately (without
        # a token now, the next sync sees an object with no status and writes it then).
        rv = str(created["metadata"].get("resourceVersion") or "")
        self._created[str(created["metadata"]["name"])] = (created, rv)
        if not self._token():
            return 0
        created["status"] = self.kind.status(self.node, key, values)
        return self._set_status(str(created["metadata"]["name"]), key, values)

    def _set_status(self, obj_name: str, key: str, values: tuple[str, ...]) -> int:
        try:
            call(
                self.custom.patch_namespaced_custom_object_status,
                *self._api_args(),
                obj_name,
                {"status": self.kind.status(self.node, key, values)},
                _content_type=MERGE_PATCH,
                _request_timeout=_STATUS_TIMEOUT,
            )
        except Exception as exc:
            log.warning(
                "%s %s: status write failed: %s",
                self.kind.kind,
                obj_name,
                api_failure(exc).message,
            )
            return 1
        return 0

    def _delete(self, obj_name: str) -> int:
        try:
            call(
                self.custom.delete_namespaced_custom_object,
                *self._api_args(),
                obj_name,
                _request_timeout=_STATUS_TIMEOUT,
            )
        except Exception as exc:
            failure = api_failure(exc)
            if failure.not_found:
                self._deleted.add(obj_name)
                return 0
            log.warning("%s %s: delete failed: %s", self.kind.kind, obj_name, failure.message)
            return 1
        self._deleted.add(obj_name)
        self._created.pop(obj_name, None)
        return 0


def _reached(cache_version: str | None, rv: str) -> bool:
    """Has a watch cache at `cache_version` seen the write that produced `rv`? Kubernetes
    resourceVersions are opaque, but every real server (etcd revisions) and our fake use
    integers; anything else counts as not reached (the entry then waits to be seen)."""
    if not cache_version or not rv:
        return False
    try:
        return int(cache_version) >= int(rv)
    except ValueError:
        return False
