"""Builders for the plain Kubernetes dicts the model reads (as `kubectl get -o yaml` prints)."""

from __future__ import annotations

from typing import Any

from l2agent.model import ClusterState, build_state


def pool(name: str, *addresses: str, labels: dict[str, str] | None = None, **spec: Any) -> dict:
    meta: dict[str, Any] = {"name": name, "namespace": "metallb-system"}
    if labels:
        meta["labels"] = labels
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": meta,
        "spec": {"addresses": list(addresses), **spec},
    }


def l2ad(name: str = "l2", **spec: Any) -> dict:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "L2Advertisement",
        "metadata": {"name": name, "namespace": "metallb-system"},
        "spec": spec,
    }


def service(
    name: str,
    namespace: str = "default",
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    ports: list[tuple[str, int]] | None = None,
    ingress: list[str] | None = None,
    **spec: Any,
) -> dict:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels or {},
            "annotations": annotations or {},
        },
        "spec": {
            "type": "LoadBalancer",
            "ports": [{"protocol": p, "port": n} for p, n in (ports or [("TCP", 80)])],
            **spec,
        },
    }
    if ingress:
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ingress]}}
    return obj


def node(name: str, labels: dict[str, str] | None = None, *, network_unavailable: bool = False):
    conditions = [{"type": "Ready", "status": "True"}]
    if network_unavailable:
        conditions.append({"type": "NetworkUnavailable", "status": "True"})
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels or {}},
        "status": {"conditions": conditions},
    }


def endpoint_slice(
    service_name: str, endpoints: list[tuple[str | None, bool | None, bool | None]], **kw: Any
) -> dict:
    """`endpoints` are (nodeName, ready, serving); None leaves the field out."""
    eps = []
    for node_name, ready, serving in endpoints:
        cond: dict[str, Any] = {}
        if ready is not None:
            cond["ready"] = ready
        if serving is not None:
            cond["serving"] = serving
        ep: dict[str, Any] = {"addresses": ["10.244.0.1"], "conditions": cond}
        if node_name is not None:
            ep["nodeName"] = node_name
        eps.append(ep)
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": kw.get("name", f"{service_name}-abcde"),
            "namespace": kw.get("namespace", "default"),
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "endpoints": eps,
    }


def namespace(name: str, labels: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def state(*objects: dict) -> ClusterState:
    result = build_state(objects)
    assert result.ok, result.errors
    return result.state
