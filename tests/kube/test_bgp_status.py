"""ServiceBGPStatus as MetalLB's speaker keeps it, through the fake API server and the real
client: per Service a node advertises, one object naming the node and the BGPPeers it
advertises to, written by the same own-node-only, rate-limited writer as ServiceL2Status."""

from __future__ import annotations

import asyncio
import pathlib
from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes import client
from prometheus_client import CollectorRegistry

from l2agent.kube.status import (
    BGP_STATUS,
    LABEL_NODE,
    LABEL_SERVICE_NAME,
    LABEL_SERVICE_NAMESPACE,
    NodeStatusWriter,
    plan_node_status,
)
from l2agent.plan import InputSource
from l2agent.speaker.bgp import BgpLink
from l2agent.speaker.kube import attach_kube_source
from l2agent.speaker.membership import StaticMembership
from l2agent.speaker.run import Speaker, SpeakerOptions

from .test_speaker_kube import CFG, StubDataPlane, seed_service, until

NS = "metallb-system"
CRD = pathlib.Path(__file__).resolve().parents[2] / "deploy/crds/servicebgpstatuses.yaml"


def bgpobj(name: str, node: str, svc: str, peers: list[str] | None = None) -> dict[str, Any]:
    ns, _, sname = svc.partition("/")
    obj: dict[str, Any] = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "ServiceBGPStatus",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {LABEL_NODE: node, LABEL_SERVICE_NAME: sname, LABEL_SERVICE_NAMESPACE: ns},
        },
        "spec": {},
    }
    if peers is not None:
        obj["status"] = {
            "node": node,
            "serviceName": sname,
            "serviceNamespace": ns,
            "peers": peers,
        }
    return obj


@pytest.mark.parametrize(
    ("announcing", "existing", "create", "update", "delete"),
    [
        ({"d/a": ("r1",)}, [], [("d/a", ("r1",))], [], []),
        ({"d/a": ("r1",)}, [bgpobj("bgp-1", "me", "d/a", ["r1"])], [], [], []),
        (
            {"d/a": ("r1", "r2")},
            [bgpobj("bgp-1", "me", "d/a", ["r1"])],
            [],
            [("bgp-1", "d/a", ("r1", "r2"))],
            [],
        ),
        ({"d/a": ("r1",)}, [bgpobj("bgp-1", "me", "d/a")], [], [("bgp-1", "d/a", ("r1",))], []),
        ({}, [bgpobj("bgp-1", "me", "d/a", ["r1"]), bgpobj("bgp-2", "other", "d/a", ["r1"])],
         [], [], ["bgp-1"]),
    ],
)  # fmt: skip
def test_bgp_status_plan(
    announcing: dict[str, tuple[str, ...]],
    existing: list[dict[str, Any]],
    create: list[Any],
    update: list[Any],
    delete: list[str],
) -> None:
    plan = plan_node_status("me", announcing, existing, {"me", "other"}, BGP_STATUS)
    assert (list(plan.create), list(plan.update), list(plan.delete)) == (create, update, delete)


def test_bgp_status_writer_creates_like_metallb(
    apiserver: Any, api_client: client.ApiClient
) -> None:
    w = NodeStatusWriter(
        api_client, namespace=NS, node="node-1", kind=BGP_STATUS, pod_name="sp", pod_uid="u1"
    )
    assert w.sync({"default/web": ("r1", "r2")}, []) == 0
    (obj,) = apiserver.items("ServiceBGPStatus")
    assert obj["metadata"]["name"].startswith("bgp-")
    assert obj["metadata"]["labels"] == {
        LABEL_NODE: "node-1",
        LABEL_SERVICE_NAME: "web",
        LABEL_SERVICE_NAMESPACE: "default",
    }
    assert obj["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert obj["status"] == {
        "node": "node-1",
        "serviceName": "web",
        "serviceNamespace": "default",
        "peers": ["r1", "r2"],
    }
    schema = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    jsonschema.validate(obj, schema)
    assert apiserver.items("ServiceL2Status") == []


class RecordingApplier:
    """Stands in for FRR's reloader: the texts BGP mode would apply."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def apply(self, config: str) -> None:
        self.texts.append(config)


def seed_bgp(api: Any, *, peers_of_ad: list[str] | None = None) -> None:
    api.put(
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": "bgp", "namespace": NS},
            "spec": {"addresses": ["203.0.113.0/24"]},
        }
    )
    for name, address in (("r1", "192.0.2.1"), ("r2", "192.0.2.2")):
        api.put(
            {
                "apiVersion": "metallb.io/v1beta2",
                "kind": "BGPPeer",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"myASN": 64512, "peerASN": 64513, "peerAddress": address},
            }
        )
    spec: dict[str, Any] = {"ipAddressPools": ["bgp"]}
    if peers_of_ad:
        spec["peers"] = peers_of_ad
    api.put(
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "BGPAdvertisement",
            "metadata": {"name": "ad", "namespace": NS},
            "spec": spec,
        }
    )


def test_the_speaker_mirrors_its_bgp_plan_into_service_bgp_status(apiserver: Any) -> None:
    for n in ("node-1", "node-2"):
        apiserver.put({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}})
    seed_bgp(apiserver)
    apiserver.put(seed_service(apiserver, "web", "203.0.113.10"))  # its endpoint: node-1
    other = apiserver.put(bgpobj("bgp-other", "node-2", "default/web", ["r1"]))

    def mine() -> list[dict[str, Any]]:
        return [
            o
            for o in apiserver.items("ServiceBGPStatus")
            if o["metadata"]["labels"][LABEL_NODE] == "node-1" and o.get("status")
        ]

    async def main() -> RecordingApplier:
        applier = RecordingApplier()
        speaker = Speaker(
            SpeakerOptions(node="node-1", source=InputSource.CLUSTER, metrics_addr=None),
            StaticMembership(),
            registry=CollectorRegistry(),
            dataplane=StubDataPlane(),  # type: ignore[arg-type]
        )
        bgp = BgpLink("node-1", applier, lambda: speaker.state, source=InputSource.CLUSTER)
        speaker.plan_listeners.append(bgp.plan_changed)
        link = attach_kube_source(
            speaker, kubeconfig=None, namespace=NS, config=CFG, host=apiserver.url, bgp=bgp
        )
        try:
            (obj,) = await until(mine, "node-1's ServiceBGPStatus")
            assert obj["status"]["peers"] == ["r1", "r2"]
            assert obj["status"]["node"] == "node-1"
            # The advertisement narrows to r2: the same object, its peers patched.
            seed_bgp(apiserver, peers_of_ad=["r2"])
            await until(lambda: [o["status"]["peers"] for o in mine()] == [["r2"]], "peers r2")
            assert [o["metadata"]["name"] for o in mine()] == [obj["metadata"]["name"]]
            # The Service goes: this node's object goes; node-2's is node-2's to keep.
            apiserver.remove("Service", "default", "web")
            await until(lambda: not mine(), "node-1's object deleted")
            await asyncio.sleep(0.2)
            assert apiserver.get("ServiceBGPStatus", NS, "bgp-other") == other
        finally:
            link.source.stop()
        return applier

    applier = asyncio.run(main())
    assert applier.texts and "network 203.0.113.10/32" in applier.texts[0]
    assert len(apiserver.requests_for("POST", "/servicebgpstatuses")) == 1
