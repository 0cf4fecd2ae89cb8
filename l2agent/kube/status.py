"""Writers of what l2agent tells the cluster: Service ingress, pool counts, ServiceL2Status.

Service allocations (`status.loadBalancer` and the `metallb.io/ip-allocated-from-pool`
annotation, in one conditional write) go through the Service's `status` subresource, pool
counts through the IPAddressPool status subresource. ServiceL2Status objects are kept as
MetalLB's speaker shapes them: the announcing node owns one object per Service
(`generateName: l2-`, labels `metallb.io/node`, `metallb.io/service-name`,
`metallb.io/service-namespace`); a node deletes its own objects for Services it no longer
announces, and its own duplicates. Unlike MetalLB, a node leaves other nodes' objects alone
unless that node is gone from the cluster: two speakers that both announce a Service for a
moment (a partition) then keep one object each instead of deleting each other's in a loop.
`plan_l2_status` is the pure diff; `L2StatusWriter` applies it, at most as fast as its
token bucket allows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from l2agent.kube.convert import ApiFailure, api_failure, call, call_json
from l2agent.model.types import IPAddress
from l2agent.ratelimit import TokenBucket

__all__ = [
    "ALLOCATED_FROM_POOL",
    "LABEL_NODE",
    "LABEL_SERVICE_NAME",
    "LABEL_SERVICE_NAMESPACE",
    "AllocationWrite",
    "L2StatusPlan",
    "L2StatusWriter",
    "ServiceStatusWriter",
    "plan_l2_status",
    "relevant_l2_statuses",
]

log = logging.getLogger(__name__)

ALLOCATED_FROM_POOL = "metallb.io/ip-allocated-from-pool"
DEPRECATED_ALLOCATED_FROM_POOL = "metallb.universe.tf/ip-allocated-from-pool"
LABEL_NODE = "metallb.io/node"
LABEL_SERVICE_NAME = "metallb.io/service-name"
LABEL_SERVICE_NAMESPACE = "metallb.io/service-namespace"
MERGE_PATCH = "application/merge-patch+json"
_L2_TIMEOUT = 10.0
"""Seconds one ServiceL2Status call may take (a hung API server must not wedge the
speaker's status thread)."""


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
class L2StatusPlan:
    """What to change: create (service key, interfaces), set status of existing objects
    (name, service key, interfaces), delete object names."""

    create: tuple[tuple[str, tuple[str, ...]], ...] = ()
    update: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    delete: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _interfaces(obj: Mapping[str, Any]) -> tuple[str, ...] | None:
    status = obj.get("status") or {}
    if not status.get("node"):
        return None  # created, status not written yet
    return tuple(str(i.get("name", "")) for i in status.get("interfaces") or [])


def plan_l2_status(
    node: str,
    announcing: Mapping[str, tuple[str, ...]],
    existing: Iterable[Mapping[str, Any]],
    nodes: Collection[str] | None = None,
) -> L2StatusPlan:
    """Pure diff. `announcing`: service key -> interfaces (sorted; empty = all) for what
    this node announces; `existing`: the ServiceL2Status objects in the namespace; `nodes`:
    the cluster's node names (None: unknown). Only this node's objects are created, changed
    or deleted, plus, for a Service this node announces, the objects of nodes not in
    `nodes` (gone from the cluster). Another live node's object is never touched: that node
    keeps its own, so a brief double claim costs no writes at all."""
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
        elif _interfaces(keep) != announcing[key]:
            update.append((str(keep["metadata"]["name"]), key, announcing[key]))
    for key in sorted(announcing):
        if key not in by_service:
            create.append((key, announcing[key]))
    return L2StatusPlan(tuple(create), tuple(update), tuple(sorted(set(delete))))


def relevant_l2_statuses(
    node: str, existing: Iterable[Mapping[str, Any]], nodes: Collection[str] | None
) -> tuple[tuple[str, str], ...]:
    """(name, resourceVersion) of the objects `plan_l2_status` may act on: this node's own,
    and those of nodes gone from the cluster. A change elsewhere is no reason to look."""
    out = []
    for obj in existing:
        owner = _labels(obj).get(LABEL_NODE)
        if owner == node or (nodes is not None and owner not in nodes):
            meta = obj.get("metadata") or {}
            out.append((str(meta.get("name")), str(meta.get("resourceVersion") or "")))
    return tuple(sorted(out))


class L2StatusWriter:
    """Applies `plan_l2_status` for one speaker. Owner reference: the speaker pod, when
    its name and uid are known, so the objects go when the pod goes."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        node: str,
        pod_name: str | None = None,
        pod_uid: str | None = None,
        limiter: TokenBucket | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.node = node
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

    def apply(self, plan: L2StatusPlan) -> int:
        """Apply the plan; returns how many writes failed or were deferred for want of a
        token (`deferred`): both are retried on the next sync."""
        failed = 0
        self.deferred = 0
        for name in plan.delete:
            failed += self._delete(name) if self._token() else 0
        for key, ifaces in plan.create:
            failed += self._create(key, ifaces) if self._token() else 0
        for name, key, ifaces in plan.update:
            failed += self._set_status(name, key, ifaces) if self._token() else 0
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
        return self.apply(plan_l2_status(self.node, announcing, view.values(), nodes))

    def _status(self, key: str, ifaces: tuple[str, ...]) -> dict[str, Any]:
        ns, _, name = key.partition("/")
        return {
            "node": self.node,
            "serviceName": name,
            "serviceNamespace": ns,
            "interfaces": [{"name": i} for i in ifaces],
        }

    def _create(self, key: str, ifaces: tuple[str, ...]) -> int:
        ns, _, name = key.partition("/")
        meta: dict[str, Any] = {
            "generateName": "l2-",
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
            "kind": "ServiceL2Status",
            "metadata": meta,
            "spec": {},
            "status": self._status(key, ifaces),
        }
        try:
            created = call_json(
                self.custom.create_namespaced_custom_object,
                "metallb.io",
                "v1beta1",
                self.namespace,
                "servicel2statuses",
                body,
                _request_timeout=_L2_TIMEOUT,
            )
        except Exception as exc:
            log.warning("ServiceL2Status for %s: create failed: %s", key, api_failure(exc).message)
            return 1
        # The status subresource ignores status on create: write it separately (without
        # a token now, the next sync sees an object with no status and writes it then).
        rv = str(created["metadata"].get("resourceVersion") or "")
        self._created[str(created["metadata"]["name"])] = (created, rv)
        if not self._token():
            return 0
        created["status"] = self._status(key, ifaces)
        return self._set_status(str(created["metadata"]["name"]), key, ifaces)

    def _set_status(self, obj_name: str, key: str, ifaces: tuple[str, ...]) -> int:
        try:
            call(
                self.custom.patch_namespaced_custom_object_status,
                "metallb.io",
                "v1beta1",
                self.namespace,
                "servicel2statuses",
                obj_name,
                {"status": self._status(key, ifaces)},
                _content_type=MERGE_PATCH,
                _request_timeout=_L2_TIMEOUT,
            )
        except Exception as exc:
            log.warning(
                "ServiceL2Status %s: status write failed: %s", obj_name, api_failure(exc).message
            )
            return 1
        return 0

    def _delete(self, obj_name: str) -> int:
        try:
            call(
                self.custom.delete_namespaced_custom_object,
                "metallb.io",
                "v1beta1",
                self.namespace,
                "servicel2statuses",
                obj_name,
                _request_timeout=_L2_TIMEOUT,
            )
        except Exception as exc:
            failure = api_failure(exc)
            if failure.not_found:
                self._deleted.add(obj_name)
                return 0
            log.warning("ServiceL2Status %s: delete failed: %s", obj_name, failure.message)
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
