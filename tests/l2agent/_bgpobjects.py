"""Builders for MetalLB's BGP objects as plain dicts (the shape `kubectl get -o yaml` prints)."""

from __future__ import annotations

import base64
from typing import Any

NS = "metallb-system"


def peer(
    name: str,
    address: str = "192.0.2.1",
    *,
    my_asn: int = 64512,
    asn: int = 64513,
    version: str = "v1beta2",
    **spec: Any,
) -> dict:
    body: dict[str, Any] = {"myASN": my_asn, "peerAddress": address}
    if asn:
        body["peerASN"] = asn
    body.update(spec)
    return {
        "apiVersion": f"metallb.io/{version}",
        "kind": "BGPPeer",
        "metadata": {"name": name, "namespace": NS},
        "spec": body,
    }


def bgpad(name: str = "bgp", **spec: Any) -> dict:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "BGPAdvertisement",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def bfd(name: str, **spec: Any) -> dict:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "BFDProfile",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def community(name: str, **aliases: str) -> dict:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "Community",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"communities": [{"name": k, "value": v} for k, v in aliases.items()]},
    }


def secret(
    name: str,
    password: str | None,
    *,
    type: str = "kubernetes.io/basic-auth",
    string_data: bool = False,
) -> dict:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "type": type,
    }
    if password is not None:
        if string_data:
            obj["stringData"] = {"password": password}
        else:
            obj["data"] = {"password": base64.b64encode(password.encode()).decode()}
    return obj
