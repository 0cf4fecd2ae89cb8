"""The speaker's Kubernetes source: snapshots from watches; broken watches change nothing."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from l2agent.kube.source import KubeSource, SourceConfig
from l2agent.kube.status import LABEL_NODE
from l2agent.kube.watch import WatchConfig
from l2agent.model.crds import InterfaceSelection
from l2agent.model.snapshot import BuildResult

from ._util import WAIT, wait_until

NS = "metallb-system"
CFG = SourceConfig(
    watch=WatchConfig(watch_timeout=30, backoff_initial=0.02, backoff_max=0.2), debounce=0.02
)


def pool(name: str = "pool", addresses: tuple[str, ...] = ("192.0.2.0/28",)) -> dict[str, Any]:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"addresses": list(addresses)},
    }


def advert() -> dict[str, Any]:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "L2Advertisement",
        "metadata": {"name": "l2", "namespace": NS},
        "spec": {"ipAddressPools": ["pool"]},
    }


def service(name: str, ip: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "ports": [{"port": 80}]},
    }
    if ip:
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": ip}]}}
    return obj


def node(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {}}}


def slice_for(svc: str, node_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{svc}-abc",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": svc},
        },
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.1.0.5"], "conditions": {"ready": True}, "nodeName": node_name}
        ],
    }


def seed(api: Any) -> None:
    api.put(pool())
    api.put(advert())
    api.put(node("node-1"))
    api.put(node("node-2"))
    api.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
    api.put(service("web", "192.0.2.1"))
    api.put(slice_for("web", "node-1"))


class Collector:
    def __init__(self) -> None:
        self.q: queue.Queue[BuildResult] = queue.Queue()

    def __call__(self, result: BuildResult) -> None:
        self.q.put(result)

    def next(self) -> BuildResult:
        return self.q.get(timeout=WAIT)

    def latest_where(self, pred: Any) -> BuildResult:
        while True:
            r = self.next()
            if pred(r):
                return r


@pytest.fixture
def source(apiserver: Any, api_client: client.ApiClient) -> Iterator[tuple[KubeSource, Collector]]:
    seed(apiserver)
    got = Collector()
    src = KubeSource(api_client, namespace=NS, node_name="node-1", on_snapshot=got, config=CFG)
    src.start()
    yield src, got
    src.stop()


def service_names(r: BuildResult) -> list[str]:
    return [s.key for s in r.state.services]


def test_first_snapshot_has_everything(source: tuple[KubeSource, Collector]) -> None:
    src, got = source
    r = got.next()
    assert r.ok, r.errors
    assert service_names(r) == ["default/web"]
    assert [p.name for p in r.state.pools] == ["pool"]
    assert [a.name for a in r.state.advertisements] == ["l2"]
    assert sorted(r.state.nodes) == ["node-1", "node-2"]
    assert [s.service_key for s in r.state.endpoint_slices] == ["default/web"]
    assert src.synced and src.connected


def test_changes_make_new_snapshots(apiserver: Any, source: tuple[KubeSource, Collector]) -> None:
    _, got = source
    got.next()
    apiserver.put(service("api", "192.0.2.2"))
    r = got.latest_where(lambda r: len(r.state.services) == 2)
    assert service_names(r) == ["default/api", "default/web"]
    apiserver.remove("Service", "default", "web")
    r = got.latest_where(lambda r: len(r.state.services) == 1)
    assert service_names(r) == ["default/api"]


def test_bad_pool_is_reported_not_fatal(
    apiserver: Any, source: tuple[KubeSource, Collector]
) -> None:
    _, got = source
    got.next()
    apiserver.put(pool("zz-overlapping", ("192.0.2.0/24",)))
    r = got.latest_where(lambda r: r.problems)
    assert any("overlap" in p.message for p in r.problems)
    assert [p.name for p in r.state.pools] == ["pool"]


def test_api_outage_keeps_the_last_snapshot(
    apiserver: Any, source: tuple[KubeSource, Collector]
) -> None:
    src, got = source
    first = got.next()
    apiserver.wait_for_watches("services")
    with apiserver.outage():
        apiserver.remove("Service", "default", "web")  # the server changes while unreachable
        wait_until(lambda: not src.connected, what="source notices the outage")
        wait_until(
            lambda: all(src.watched.watcher(n).failures >= 2 for n in ("services", "nodes")),
            what="several failed reconnects",
        )
        # No snapshot during the outage, and the last one still holds the service.
        assert got.q.empty()
        assert src.last_result is first
        assert service_names(src.last_result) == ["default/web"]
    # Back: the deletion arrives through the resumed watch.
    r = got.latest_where(lambda r: not r.state.services)
    assert r.ok
    wait_until(lambda: src.connected, what="reconnected")


def test_outage_with_compaction_relists(
    apiserver: Any, source: tuple[KubeSource, Collector]
) -> None:
    src, got = source
    got.next()
    apiserver.wait_for_watches("services")
    with apiserver.outage():
        apiserver.remove("Node", "", "node-2")
        apiserver.put(service("api", "192.0.2.3"))
        apiserver.compact()
    r = got.latest_where(lambda r: "node-2" not in r.state.nodes and len(r.state.services) == 2)
    assert sorted(r.state.nodes) == ["node-1"]
    assert src.watched.watcher("nodes").relists >= 1


def test_dropped_watches_publish_nothing_spurious(
    apiserver: Any, source: tuple[KubeSource, Collector]
) -> None:
    src, got = source
    got.next()
    for name in ("services", "nodes", "endpointslices"):
        apiserver.wait_for_watches(name)
    before = src.snapshots
    apiserver.drop_watches()
    wait_until(lambda: src.watched.watcher("services").failures >= 1, what="drop noticed")
    apiserver.wait_for_watches("services")
    assert src.snapshots == before  # reconnecting alone changes nothing
    apiserver.put(service("api", "192.0.2.2"))
    got.latest_where(lambda r: len(r.state.services) == 2)


def test_service_l2_status_follows_announcements(
    apiserver: Any, source: tuple[KubeSource, Collector]
) -> None:
    src, got = source
    got.next()
    src.report_announcements({"default/web": InterfaceSelection(False, frozenset({"eth1"}))})
    objs = wait_until(lambda: apiserver.items("ServiceL2Status"), what="ServiceL2Status")
    (obj,) = objs
    assert obj["metadata"]["labels"][LABEL_NODE] == "node-1"
    wait_until(lambda: apiserver.items("ServiceL2Status")[0].get("status"), what="status")
    assert apiserver.items("ServiceL2Status")[0]["status"]["interfaces"] == [{"name": "eth1"}]
    # Someone deletes it: the speaker puts it back.
    apiserver.remove("ServiceL2Status", NS, obj["metadata"]["name"])
    wait_until(lambda: apiserver.items("ServiceL2Status"), what="recreated")
    # Withdrawn: gone.
    src.report_announcements({})
    wait_until(lambda: not apiserver.items("ServiceL2Status"), what="deleted")
    # Events reach the API server.
    src.node_assigned("default/web")
    assert src.events.flush()
    (ev,) = apiserver.items("Event")
    assert ev["reason"] == "nodeAssigned"
    assert ev["message"] == 'announcing from node "node-1" with protocol "layer2"'


def _bgp_peer(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "metallb.io/v1beta2",
        "kind": "BGPPeer",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"myASN": 64512, "peerASN": 64513, "peerAddress": "192.0.2.254", **spec},
    }


def _secret(name: str, stype: str, namespace: str = NS) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": stype,
        "data": {"password": "czNjcmV0"},  # base64 of s3cret
    }


def test_bgp_objects_and_basic_auth_secrets_reach_the_snapshot(
    apiserver: Any, source: tuple[KubeSource, Collector]
) -> None:
    """BGP kinds are watched in our namespace; of the Secrets, only basic-auth ones there
    (a field selector: the memberlist key or any other Secret never reaches the speaker)."""
    _, got = source
    got.next()
    apiserver.put(
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "BFDProfile",
            "metadata": {"name": "fast", "namespace": NS},
            "spec": {"receiveInterval": 50},
        }
    )
    apiserver.put(
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "Community",
            "metadata": {"name": "c", "namespace": NS},
            "spec": {"communities": [{"name": "tag", "value": "64512:1"}]},
        }
    )
    apiserver.put(
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "BGPAdvertisement",
            "metadata": {"name": "bgp", "namespace": NS},
            "spec": {"communities": ["tag"]},
        }
    )
    apiserver.put(_bgp_peer("auth", passwordSecret={"name": "auth"}, bfdProfile="fast"))
    apiserver.put(_bgp_peer("opaque", peerAddress="192.0.2.253", passwordSecret={"name": "op"}))
    apiserver.put(_secret("auth", "kubernetes.io/basic-auth"))
    apiserver.put(_secret("op", "Opaque"))
    apiserver.put(_secret("elsewhere", "kubernetes.io/basic-auth", namespace="default"))
    r = got.latest_where(lambda r: [p.name for p in r.state.bgp_peers] == ["auth"])
    (peer,) = r.state.bgp_peers
    assert peer.password is not None and peer.password.reveal() == "s3cret"
    assert [a.name for a in r.state.bgp_advertisements] == ["bgp"]
    assert [b.name for b in r.state.bfd_profiles] == ["fast"]
    waiting = [p for p in r.problems if p.name == "opaque"]
    assert waiting and "passwordSecret metallb-system/op not found" in waiting[0].message
