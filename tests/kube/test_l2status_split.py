"""Two speakers that both claim a Service (a forced split, as during a partition) through the
fake API server: each keeps its own ServiceL2Status and neither touches the other's, so the
API sees a handful of writes, not a create/delete ping-pong. The announcer deletes another
node's object only once that node is gone from the cluster.

`bench/l2status_split.py` measures the write rate of the same scenario for the record."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from l2agent.kube.convert import new_api_client
from l2agent.kube.source import KubeSource, SourceConfig
from l2agent.kube.status import LABEL_NODE
from l2agent.kube.watch import WatchConfig
from l2agent.model.crds import InterfaceSelection

from ._util import wait_until

NS = "metallb-system"
CFG = SourceConfig(
    watch=WatchConfig(watch_timeout=30, backoff_initial=0.02, backoff_max=0.2), debounce=0.02
)
WEB = {"default/web": InterfaceSelection(True)}


def seed(api: Any) -> None:
    for name in ("node-1", "node-2"):
        api.put({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    api.put(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}},
        }
    )


@pytest.fixture
def speakers(apiserver: Any) -> Iterator[dict[str, KubeSource]]:
    seed(apiserver)
    out = {}
    clients = []
    for name in ("node-1", "node-2"):
        api = new_api_client(None, host=apiserver.url)
        clients.append(api)
        out[name] = KubeSource(
            api, namespace=NS, node_name=name, on_snapshot=lambda r: None, config=CFG
        ).start()
    wait_until(lambda: all(s.synced for s in out.values()), what="both synced")
    yield out
    for s in out.values():
        s.stop()
    for api in clients:
        api.close()


def writes(apiserver: Any) -> int:
    return sum(
        len(apiserver.requests_for(m, "/servicel2statuses")) for m in ("POST", "PATCH", "DELETE")
    )


def owners(apiserver: Any) -> list[str]:
    return sorted(
        o["metadata"]["labels"][LABEL_NODE]
        for o in apiserver.items("ServiceL2Status")
        if o.get("status")
    )


def test_a_double_claim_settles_at_one_object_per_node(
    apiserver: Any, speakers: dict[str, KubeSource]
) -> None:
    for s in speakers.values():
        s.report_announcements(WEB)
    wait_until(lambda: owners(apiserver) == ["node-1", "node-2"], what="one object each")
    settled = writes(apiserver)
    # Today's main ping-pongs here (each deletes the other's and recreates its own).
    time.sleep(1.0)
    assert writes(apiserver) == settled
    assert settled == 4  # per node: one create, one status write
    assert apiserver.requests_for("DELETE", "/servicel2statuses") == []
    # The split heals: node-2 withdraws and deletes its own; node-1's stays.
    speakers["node-2"].report_announcements({})
    wait_until(lambda: owners(apiserver) == ["node-1"], what="node-2 withdrew")
    time.sleep(0.3)
    assert writes(apiserver) == settled + 1


def test_the_announcer_removes_a_gone_nodes_object(
    apiserver: Any, speakers: dict[str, KubeSource]
) -> None:
    speakers["node-2"].report_announcements(WEB)
    wait_until(lambda: owners(apiserver) == ["node-2"], what="node-2 announces")
    speakers["node-2"].stop()  # node-2 dies; its object stays behind
    speakers["node-1"].report_announcements(WEB)
    wait_until(lambda: owners(apiserver) == ["node-1", "node-2"], what="node-1 announces too")
    time.sleep(0.3)
    assert owners(apiserver) == ["node-1", "node-2"]  # node-2 is still a cluster member
    apiserver.remove("Node", "", "node-2")
    wait_until(lambda: owners(apiserver) == ["node-1"], what="gone node's object deleted")
