"""deploy/rbac.yaml against what the code really calls: every request the controller and
the speaker's source make is allowed, and every verb granted is one they use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from helpers.fake_apiserver import RESOURCES, _parse_path
from kubernetes import client

from l2agent.controller.runner import Controller, ControllerConfig
from l2agent.kube.lease import LeaseConfig
from l2agent.kube.source import KubeSource, SourceConfig
from l2agent.kube.watch import WatchConfig
from l2agent.model.crds import InterfaceSelection

from ._util import wait_until

NS = "metallb-system"
RBAC = Path(__file__).resolve().parents[2] / "deploy" / "rbac.yaml"
WATCH = WatchConfig(watch_timeout=30, backoff_initial=0.02, backoff_max=0.2)

Grant = tuple[str, str, str, str | None, str | None]  # group, resource, verb, ns, name


def grants(component: str) -> set[Grant]:
    out: set[Grant] = set()
    for doc in yaml.safe_load_all(RBAC.read_text()):
        if doc["kind"] not in ("ClusterRole", "Role") or component not in doc["metadata"]["name"]:
            continue
        ns = doc["metadata"].get("namespace") if doc["kind"] == "Role" else None
        for rule in doc["rules"]:
            for group in rule["apiGroups"]:
                for res in rule["resources"]:
                    for verb in rule["verbs"]:
                        for name in rule.get("resourceNames") or [None]:
                            out.add((group, res, verb, ns, name))
    return out


def used(apiserver: Any) -> set[Grant]:
    out: set[Grant] = set()
    for r in apiserver.requests:
        route = _parse_path(r.path)
        group = RESOURCES[route.plural][0]
        res = route.plural + (f"/{route.subresource}" if route.subresource else "")
        if r.method == "GET":
            verb = "get" if route.name else ("watch" if "watch" in r.query else "list")
        else:
            verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[
                r.method
            ]
        out.add((group, res, verb, route.namespace, route.name))
    return out


def allowed(req: Grant, granted: set[Grant]) -> Grant | None:
    group, res, verb, ns, name = req
    for g in granted:
        if g[:3] != (group, res, verb):
            continue
        if g[3] is not None and g[3] != ns:
            continue
        if g[4] is not None and g[4] != name:
            continue
        return g
    return None


def check(apiserver: Any, component: str) -> None:
    granted = grants(component)
    needed = used(apiserver)
    denied = [req for req in needed if allowed(req, granted) is None]
    assert not denied, f"{component} would be forbidden: {sorted(map(str, denied))}"
    matched = {allowed(req, granted) for req in needed}
    unused = granted - matched
    assert not unused, f"{component} is granted verbs it never uses: {sorted(map(str, unused))}"


def seed(api: Any) -> None:
    api.put(
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": "pool", "namespace": NS},
            "spec": {"addresses": ["192.0.2.4/31"]},
        }
    )
    api.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
    api.put(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.1", "ports": [{"port": 80}]},
        }
    )


def test_controller_rbac_is_exact(apiserver: Any, api_client: client.ApiClient) -> None:
    seed(apiserver)
    cfg = ControllerConfig(
        namespace=NS,
        identity="pod-a",
        lease=LeaseConfig(lease_duration=2, renew_deadline=1, retry_period=0.05),
        watch=WATCH,
        debounce=0.02,
    )
    c = Controller(api_client, cfg).start()
    try:
        wait_until(
            lambda: (
                (apiserver.get("IPAddressPool", NS, "pool").get("status") or {}).get("assignedIPv4")
                == 1
            ),
            what="allocation",
        )
        wait_until(lambda: len(apiserver.requests_for("PUT", "/leases/")) >= 1, what="renewal")
        assert c.events.flush()
    finally:
        c.stop()
    check(apiserver, "controller")


def test_speaker_rbac_is_exact(apiserver: Any, api_client: client.ApiClient) -> None:
    seed(apiserver)
    src = KubeSource(
        api_client,
        namespace=NS,
        node_name="node-1",
        on_snapshot=lambda r: None,
        config=SourceConfig(watch=WATCH, debounce=0.02),
    ).start()
    try:
        wait_until(lambda: src.synced, what="synced")
        src.report_announcements({"default/web": InterfaceSelection(True, frozenset())})
        wait_until(lambda: apiserver.items("ServiceL2Status"), what="created")
        src.node_assigned("default/web")
        src.report_announcements({})
        wait_until(lambda: not apiserver.items("ServiceL2Status"), what="deleted")
        src.report_bgp_announcements({"default/web": ("r1",)})
        wait_until(
            lambda: [o for o in apiserver.items("ServiceBGPStatus") if o.get("status")],
            what="ServiceBGPStatus written",
        )
        src.report_bgp_announcements({})
        wait_until(lambda: not apiserver.items("ServiceBGPStatus"), what="bgp status deleted")
        assert src.events.flush()
    finally:
        src.stop()
    check(apiserver, "speaker")
