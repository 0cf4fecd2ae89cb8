"""Events (MetalLB's reasons) and the status writers, over HTTP against the fake server."""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import ip_address
from typing import Any

import pytest
from kubernetes import client

from l2agent.kube.events import (
    CONTROLLER_COMPONENT,
    EventRecorder,
    EventType,
    ObjectRef,
    Reason,
    build_event,
)
from l2agent.kube.ratelimit import TokenBucket
from l2agent.kube.status import (
    ALLOCATED_FROM_POOL,
    LABEL_NODE,
    LABEL_SERVICE_NAME,
    LABEL_SERVICE_NAMESPACE,
    AllocationWrite,
    NodeStatusWriter,
    ServiceStatusWriter,
    plan_node_status,
)

NS = "metallb-system"


def test_build_event_shape() -> None:
    ref = ObjectRef.service("team/web", uid="u-1")
    body = build_event(
        ref,
        EventType.NORMAL,
        Reason.IP_ALLOCATED,
        'Assigned IP ["192.0.2.1"]',
        component=CONTROLLER_COMPONENT,
        host=None,
        now=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    assert body["metadata"] == {"generateName": "web.", "namespace": "team"}
    assert body["involvedObject"] == {
        "kind": "Service",
        "name": "web",
        "namespace": "team",
        "apiVersion": "v1",
        "uid": "u-1",
    }
    assert (body["reason"], body["type"]) == ("IPAllocated", "Normal")
    assert body["source"] == {"component": "metallb-controller"}
    assert body["firstTimestamp"] == "2026-01-02T03:04:05Z"
    node = build_event(
        ObjectRef("Node", "n1"),
        EventType.WARNING,
        Reason.ANNOUNCE_FAILED,
        "x",
        component="metallb-speaker",
        host="n1",
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert node["metadata"]["namespace"] == "default"  # cluster-scoped object


def test_reasons_are_metallbs_strings() -> None:
    assert {r.value for r in Reason} >= {
        "IPAllocated",
        "AllocationFailed",
        "ClearAssignment",
        "LoadBalancerFailed",
        "nodeAssigned",
        "announceFailed",
    }


def test_recorder_posts_dedupes_and_survives_errors(
    apiserver: Any, api_client: client.ApiClient
) -> None:
    uid = apiserver.put(service())["metadata"]["uid"]
    apiserver.fail_next("POST", "/events", 500)  # the first post fails
    rec = EventRecorder(api_client, component="metallb-speaker", host="node-1").start()
    try:
        ref = ObjectRef.service("default/web", uid)
        rec.normal(ref, Reason.NODE_ASSIGNED, 'announcing from node "node-1"')  # fails
        rec.normal(ref, Reason.NODE_ASSIGNED, 'announcing from node "node-1"')  # deduped
        rec.warning(ref, Reason.ANNOUNCE_FAILED, "no interface")
        rec.warning(ref, Reason.ANNOUNCE_FAILED, "still no interface")
        assert rec.flush()
    finally:
        rec.stop()
    events = apiserver.items("Event")
    assert sorted(e["message"] for e in events) == ["no interface", "still no interface"]
    assert {(e["reason"], e["type"]) for e in events} == {("announceFailed", "Warning")}
    assert all(e["source"]["host"] == "node-1" for e in events)
    assert all(e["involvedObject"]["uid"] == uid for e in events)
    assert (rec.sent, rec.failed) == (2, 1)


def test_fake_server_flags_events_without_their_objects_uid(
    apiserver: Any, api_client: client.ApiClient
) -> None:
    """The judge behind every kube test's teardown check (conftest) can fail."""
    uid = apiserver.put(service())["metadata"]["uid"]
    rec = EventRecorder(api_client, component="metallb-speaker", host="node-1").start()
    try:
        rec.normal(ObjectRef.service("default/web", uid), Reason.NODE_ASSIGNED, "right")
        rec.normal(ObjectRef.service("default/web"), Reason.NODE_ASSIGNED, "no uid")
        rec.normal(ObjectRef.service("default/web", "other"), Reason.NODE_ASSIGNED, "wrong")
        rec.normal(ObjectRef.service("default/gone", "x"), Reason.NODE_ASSIGNED, "no object")
        assert rec.flush()
    finally:
        rec.stop()
    wrong = apiserver.events_with_wrong_uid(clear=True)
    assert [(i["name"], i.get("uid"), u) for i, u in wrong] == [
        ("web", None, uid),
        ("web", "other", uid),
        ("gone", "x", None),
    ]


def service(name: str = "web", ns: str = "default") -> dict[str, Any]:
    return {
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "annotations": {"keep": "me"}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
    }


def test_service_status_and_annotation(apiserver: Any, api_client: client.ApiClient) -> None:
    """Pool annotation and ingress in one write, through services/status only."""
    rv = apiserver.put(service())["metadata"]["resourceVersion"]
    w = ServiceStatusWriter(api_client, namespace=NS)
    ips = (ip_address("192.0.2.1"), ip_address("2001:db8::1"))
    write = AllocationWrite("default/web", rv, ingress=ips, set_pool=True, pool="pool-a")
    assert w.write_allocation(write) is None
    svc = apiserver.get("Service", "default", "web")
    assert svc["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.1"}, {"ip": "2001:db8::1"}]
    assert svc["metadata"]["annotations"] == {"keep": "me", ALLOCATED_FROM_POOL: "pool-a"}
    assert svc["spec"]["ports"] == [{"port": 80}]
    assert [r.method for r in apiserver.requests if "/services/" in r.path] == ["PATCH"]
    assert apiserver.requests_for("PATCH", "/namespaces/default/services/web/status")
    rv = svc["metadata"]["resourceVersion"]
    clear = AllocationWrite("default/web", rv, ingress=(), set_pool=True, pool=None)
    assert w.write_allocation(clear) is None
    svc = apiserver.get("Service", "default", "web")
    assert "ingress" not in svc["status"]["loadBalancer"]
    assert svc["metadata"]["annotations"] == {"keep": "me"}
    assert all(r.path.endswith("/status") for r in apiserver.requests if "/services/" in r.path)


def test_allocation_write_on_a_stale_version_is_refused(
    apiserver: Any, api_client: client.ApiClient
) -> None:
    """A decision made on an old view of the Service (a stale leader's) never lands."""
    old = apiserver.put(service())["metadata"]["resourceVersion"]
    changed = service()
    changed["metadata"]["annotations"]["edited"] = "by someone else"
    apiserver.put(changed)
    w = ServiceStatusWriter(api_client, namespace=NS)
    stale = AllocationWrite(
        "default/web", old, ingress=(ip_address("192.0.2.1"),), set_pool=True, pool="p"
    )
    failure = w.write_allocation(stale)
    assert failure is not None and failure.conflict
    svc = apiserver.get("Service", "default", "web")
    assert "status" not in svc or not (svc["status"].get("loadBalancer") or {}).get("ingress")
    assert ALLOCATED_FROM_POOL not in svc["metadata"]["annotations"]


def test_service_writer_reports_failures(apiserver: Any, api_client: client.ApiClient) -> None:
    w = ServiceStatusWriter(api_client, namespace=NS)
    write = AllocationWrite("default/missing", None, ingress=(ip_address("192.0.2.1"),))
    failure = w.write_allocation(write)
    assert failure is not None and failure.not_found
    with apiserver.outage():
        failure = w.write_allocation(write)
    assert failure is not None and failure.unreachable


def test_pool_status(apiserver: Any, api_client: client.ApiClient) -> None:
    apiserver.put(
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": "p", "namespace": NS},
            "spec": {"addresses": ["192.0.2.0/30"]},
        }
    )
    w = ServiceStatusWriter(api_client, namespace=NS)
    counts = {"assignedIPv4": 1, "assignedIPv6": 0, "availableIPv4": 3, "availableIPv6": 0}
    assert w.set_pool_status("p", counts) is None
    pool = apiserver.get("IPAddressPool", NS, "p")
    assert pool["status"] == counts
    assert pool["spec"] == {"addresses": ["192.0.2.0/30"]}


def l2obj(name: str, node: str, svc: str, ifaces: list[str] | None = None) -> dict[str, Any]:
    ns, _, sname = svc.partition("/")
    obj: dict[str, Any] = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "ServiceL2Status",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {LABEL_NODE: node, LABEL_SERVICE_NAME: sname, LABEL_SERVICE_NAMESPACE: ns},
        },
        "spec": {},
    }
    if ifaces is not None:
        obj["status"] = {
            "node": node,
            "serviceName": sname,
            "serviceNamespace": ns,
            "interfaces": [{"name": i} for i in ifaces],
        }
    return obj


@pytest.mark.parametrize(
    ("announcing", "existing", "create", "update", "delete"),
    [
        ({"d/a": ()}, [], [("d/a", ())], [], []),
        ({"d/a": ()}, [l2obj("l2-1", "me", "d/a", [])], [], [], []),
        (
            {"d/a": ("eth0",)},
            [l2obj("l2-1", "me", "d/a", [])],
            [],
            [("l2-1", "d/a", ("eth0",))],
            [],
        ),
        # created but its status never written (crash between create and patch)
        ({"d/a": ()}, [l2obj("l2-1", "me", "d/a")], [], [("l2-1", "d/a", ())], []),
        # no longer ours: delete our object, leave other nodes' alone
        ({}, [l2obj("l2-1", "me", "d/a", []), l2obj("l2-2", "other", "d/b", [])], [], [], ["l2-1"]),
        # ours now: delete our duplicates; the other node (still in the cluster) keeps its
        # own object, so two speakers that both claim a Service never delete each other's
        (
            {"d/a": ()},
            [
                l2obj("l2-1", "other", "d/a", []),
                l2obj("l2-2", "me", "d/a", []),
                l2obj("l2-3", "me", "d/a", []),
            ],
            [],
            [],
            ["l2-3"],
        ),
        # ... unless that node is gone from the cluster: then the announcer cleans up
        (
            {"d/a": ()},
            [l2obj("l2-1", "gone", "d/a", []), l2obj("l2-2", "me", "d/a", [])],
            [],
            [],
            ["l2-1"],
        ),
        # a gone node's object for a Service we do not announce is not ours to delete
        ({}, [l2obj("l2-1", "gone", "d/a", [])], [], [], []),
    ],
)
def test_l2_status_plan(
    announcing: dict[str, tuple[str, ...]],
    existing: list[dict[str, Any]],
    create: list[Any],
    update: list[Any],
    delete: list[str],
) -> None:
    plan = plan_node_status("me", announcing, existing, nodes={"me", "other"})
    assert list(plan.create) == create
    assert list(plan.update) == update
    assert list(plan.delete) == delete


def test_l2_status_writer_creates_like_metallb(
    apiserver: Any, api_client: client.ApiClient
) -> None:
    w = NodeStatusWriter(
        api_client, namespace=NS, node="node-1", pod_name="speaker-x", pod_uid="u9"
    )
    apiserver.put(l2obj("l2-old", "node-2", "default/web", []))  # node-2 has left
    existing = apiserver.items("ServiceL2Status")
    assert w.sync({"default/web": ("eth0",)}, existing, nodes={"node-1"}) == 0
    # The cache has not caught up yet: a second sync must not create a duplicate.
    assert w.sync({"default/web": ("eth0",)}, existing, nodes={"node-1"}) == 0
    (obj,) = apiserver.items("ServiceL2Status")
    assert obj["metadata"]["name"].startswith("l2-")
    assert obj["metadata"]["labels"] == {
        LABEL_NODE: "node-1",
        LABEL_SERVICE_NAME: "web",
        LABEL_SERVICE_NAMESPACE: "default",
    }
    assert obj["metadata"]["ownerReferences"][0]["uid"] == "u9"
    assert obj["status"] == {
        "node": "node-1",
        "serviceName": "web",
        "serviceNamespace": "default",
        "interfaces": [{"name": "eth0"}],
    }
    # Withdrawn: our object goes.
    assert w.sync({}, apiserver.items("ServiceL2Status")) == 0
    assert apiserver.items("ServiceL2Status") == []


def test_l2_status_objects_validate_against_our_crd(
    apiserver: Any, api_client: client.ApiClient
) -> None:
    """What the writer produces is accepted by deploy/'s ServiceL2Status schema."""
    import pathlib

    import jsonschema
    import yaml

    crd = yaml.safe_load(
        (
            pathlib.Path(__file__).resolve().parents[2] / "deploy/crds/servicel2statuses.yaml"
        ).read_text()
    )
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    w = NodeStatusWriter(api_client, namespace=NS, node="node-1")
    w.sync({"default/web": ()}, [])
    (obj,) = apiserver.items("ServiceL2Status")
    jsonschema.validate(obj, schema)


def test_l2_status_writes_are_rate_limited(apiserver: Any, api_client: client.ApiClient) -> None:
    """A burst of Services costs at most the bucket's burst now; the rest waits for tokens."""
    now = [0.0]
    w = NodeStatusWriter(
        api_client,
        namespace=NS,
        node="node-1",
        limiter=TokenBucket(rate=2.0, burst=3),
        clock=lambda: now[0],
    )
    wanted = {f"default/s{i}": () for i in range(4)}
    # 3 writes (s0 created with its status, s1 created); s1's status, s2 and s3 wait
    assert w.sync(wanted, []) == 3
    assert (w.writes, w.deferred) == (3, 3)
    assert len(apiserver.requests_for("POST", "/servicel2statuses")) == 2
    assert w.retry_in() == pytest.approx(0.5)
    now[0] = 10.0  # the bucket refills to its burst, never beyond
    assert w.sync(wanted, apiserver.items("ServiceL2Status")) == 2
    assert w.writes == 6
    now[0] = 20.0
    assert w.sync(wanted, apiserver.items("ServiceL2Status")) == 0
    assert all(o.get("status") for o in apiserver.items("ServiceL2Status"))
    assert len(apiserver.items("ServiceL2Status")) == 4
