"""The controller: pure write planning, then whole replicas against the fake API server."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import ip_address
from typing import Any

import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry, generate_latest

from l2agent.allocator import ANN_ALLOCATED_FROM_POOL, allocate
from l2agent.controller.planner import KEEP, plan_writes, pool_status, pool_usage
from l2agent.controller.runner import Controller, ControllerConfig
from l2agent.kube.events import Reason
from l2agent.kube.lease import LeaseConfig
from l2agent.kube.watch import WatchConfig
from l2agent.model.snapshot import build_state

from ._util import wait_until

NS = "metallb-system"


def pool(name: str, *addresses: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"addresses": list(addresses), **spec},
    }


def service(
    name: str,
    *,
    ingress: tuple[str, ...] = (),
    annotations: dict[str, str] | None = None,
    type_: str = "LoadBalancer",
    **spec: Any,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations or {}},
        "spec": {
            "type": type_,
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"],
            "ipFamilies": ["IPv4"],
            "ports": [{"port": 80, "protocol": "TCP"}],
            **spec,
        },
    }
    if ingress:
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ingress]}}
    return obj


def writes_for(*objs: dict[str, Any], lb_class: str | None = None) -> dict[str, Any]:
    result = build_state(objs)
    assert result.ok, result.errors
    alloc = allocate(result.state, lb_class=lb_class)
    return {w.key: w for w in plan_writes(result.state, alloc, lb_class=lb_class)}


P = pool("pool", "192.0.2.4/31")


def test_new_service_gets_ip_pool_and_event() -> None:
    (w,) = writes_for(P, service("web")).values()
    assert w.ingress == (ip_address("192.0.2.4"),)
    assert w.pool == "pool"
    assert [(e.reason, e.message) for e in w.events] == [
        (Reason.IP_ALLOCATED, 'Assigned IP ["192.0.2.4"]')
    ]


def test_settled_service_needs_no_write() -> None:
    done = service("web", ingress=("192.0.2.4",), annotations={ANN_ALLOCATED_FROM_POOL: "pool"})
    assert writes_for(P, done) == {}


def test_missing_annotation_alone_is_written() -> None:
    (w,) = writes_for(P, service("web", ingress=("192.0.2.4",))).values()
    assert (w.ingress, w.pool, w.events) == (KEEP, "pool", ())


def test_ip_no_longer_in_any_pool_is_cleared_and_reallocated() -> None:
    stale = service("web", ingress=("198.51.100.7",), annotations={ANN_ALLOCATED_FROM_POOL: "old"})
    (w,) = writes_for(P, stale).values()
    assert w.ingress == (ip_address("192.0.2.4"),)
    assert w.pool == "pool"
    assert [e.reason for e in w.events] == [Reason.CLEAR_ASSIGNMENT, Reason.IP_ALLOCATED]
    assert '["198.51.100.7"]' in w.events[0].message


def test_exhausted_pool_fails_with_metallbs_message() -> None:
    w = writes_for(P, service("a"), service("b"), service("c"))
    failed = w["default/c"]
    assert (failed.ingress, failed.pool) == (KEEP, KEEP)
    (ev,) = failed.events
    assert ev.reason is Reason.ALLOCATION_FAILED
    assert ev.message == 'Failed to allocate IP for "default/c": no available IPs'


def test_invalid_request_on_a_service_with_an_ip_is_loadbalancerfailed() -> None:
    both = service(
        "web",
        ingress=("192.0.2.4",),
        annotations={"metallb.io/loadBalancerIPs": "192.0.2.5", ANN_ALLOCATED_FROM_POOL: "pool"},
        loadBalancerIP="192.0.2.4",
    )
    (w,) = writes_for(P, both).values()
    assert w.ingress == () and w.pool is None
    assert [e.reason for e in w.events] == [Reason.LOAD_BALANCER_FAILED]


def test_type_change_clears_what_we_wrote_and_other_classes_are_not_ours() -> None:
    was_lb = service(
        "web",
        type_="ClusterIP",
        ingress=("192.0.2.4",),
        annotations={ANN_ALLOCATED_FROM_POOL: "pool"},
    )
    other = service("other", loadBalancerClass="example.com/else")
    w = writes_for(P, was_lb, other)
    assert set(w) == {"default/web"}
    assert (w["default/web"].ingress, w["default/web"].pool) == ((), None)


def test_prefer_dual_stack_with_a_v4_only_pool_reports_the_missing_family() -> None:
    dual = service(
        "web",
        clusterIPs=["10.96.0.10", "fd00::10"],
        ipFamilies=["IPv4", "IPv6"],
        ipFamilyPolicy="PreferDualStack",
    )
    (w,) = writes_for(P, dual).values()
    assert w.ingress == (ip_address("192.0.2.4"),)
    assert [e.reason for e in w.events] == [Reason.IP_ALLOCATED, Reason.ADDITIONAL_ASSIGN_FAILED]
    settled = dual | {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.4"}]}}}
    settled["metadata"] = settled["metadata"] | {"annotations": {ANN_ALLOCATED_FROM_POOL: "pool"}}
    (w,) = writes_for(P, settled).values()
    assert (w.ingress, w.pool) == (KEEP, KEEP)
    assert [e.reason for e in w.events] == [Reason.ADDITIONAL_ASSIGN_FAILED]
    both = pool("pool", "192.0.2.4/31", "2001:db8::/127")
    (w,) = writes_for(both, dual).values()
    assert w.ingress == (ip_address("192.0.2.4"), ip_address("2001:db8::"))
    assert [e.reason for e in w.events] == [Reason.IP_ALLOCATED]


def test_pool_usage_and_status_per_family() -> None:
    result = build_state(
        [pool("p", "192.0.2.0/24", "2001:db8::/126", avoidBuggyIPs=True), service("web")]
    )
    alloc = allocate(result.state)
    (u,) = pool_usage(result.state, alloc)
    assert (u.total_v4, u.total_v6, u.in_use_v4, u.in_use_v6) == (254, 4, 1, 0)
    assert pool_status(u) == {
        "assignedIPv4": 1,
        "assignedIPv6": 0,
        "availableIPv4": 253,
        "availableIPv6": 4,
    }


# ---------------------------------------------------------------------------- over HTTP

FAST = ControllerConfig(
    namespace=NS,
    lease=LeaseConfig(lease_duration=2.0, renew_deadline=1.0, retry_period=0.05),
    watch=WatchConfig(watch_timeout=30, backoff_initial=0.02, backoff_max=0.2),
    debounce=0.02,
    retry_interval=0.1,
)


def make(api_client: client.ApiClient, ident: str, registry: Any = None) -> Controller:
    cfg = ControllerConfig(**{**{f: getattr(FAST, f) for f in FAST.__slots__}, "identity": ident})
    return Controller(api_client, cfg, registry=registry)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def ctrl(
    apiserver: Any, api_client: client.ApiClient, registry: CollectorRegistry
) -> Iterator[Controller]:
    apiserver.put(pool("pool", "192.0.2.4/31"))
    c = make(api_client, "pod-a", registry).start()
    yield c
    c.stop()


def ingress_of(apiserver: Any, name: str) -> list[str]:
    svc = apiserver.get("Service", "default", name) or {}
    return [
        i["ip"] for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    ]


def test_allocates_writes_status_annotation_events_and_metrics(
    apiserver: Any, ctrl: Controller, registry: CollectorRegistry
) -> None:
    apiserver.put(service("web"))
    wait_until(lambda: ingress_of(apiserver, "web") == ["192.0.2.4"], what="ingress")
    svc = apiserver.get("Service", "default", "web")
    assert svc["metadata"]["annotations"][ANN_ALLOCATED_FROM_POOL] == "pool"
    wait_until(
        lambda: (
            (apiserver.get("IPAddressPool", NS, "pool").get("status") or {}).get("assignedIPv4")
            == 1
        ),
        what="pool status",
    )
    assert apiserver.get("IPAddressPool", NS, "pool")["status"]["availableIPv4"] == 1
    assert ctrl.events.flush()
    (ev,) = apiserver.items("Event")
    assert (ev["reason"], ev["message"]) == ("IPAllocated", 'Assigned IP ["192.0.2.4"]')
    assert ev["involvedObject"]["name"] == "web"
    assert ev["involvedObject"]["uid"] == svc["metadata"]["uid"]  # `kubectl describe` shows it
    assert ev["source"]["component"] == "metallb-controller"
    text = generate_latest(registry).decode()
    assert 'metallb_allocator_addresses_total{pool="pool"} 2.0' in text
    assert 'metallb_allocator_addresses_in_use_total{pool="pool"} 1.0' in text
    # Settled: further passes write nothing.
    writes_before = len(apiserver.requests_for("PATCH", "/services/"))
    apiserver.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "poke"}})
    wait_until(lambda: ctrl.last_report is not None and ctrl.passes >= 3, what="more passes")
    assert len(apiserver.requests_for("PATCH", "/services/")) == writes_before


def test_exhaustion_event_then_success_when_an_ip_frees_up(
    apiserver: Any, ctrl: Controller
) -> None:
    for name in ("a", "b", "c"):
        apiserver.put(service(name))
    wait_until(
        lambda: any(e["reason"] == "AllocationFailed" for e in apiserver.items("Event")),
        what="AllocationFailed",
    )
    assert sorted(ingress_of(apiserver, n)[0] for n in ("a", "b")) == ["192.0.2.4", "192.0.2.5"]
    assert ingress_of(apiserver, "c") == []
    freed = ingress_of(apiserver, "a")
    apiserver.remove("Service", "default", "a")
    wait_until(lambda: ingress_of(apiserver, "c") == freed, what="c gets a's IP")


def events_for(apiserver: Any, reason: str) -> list[dict[str, Any]]:
    return [e for e in apiserver.items("Event") if e["reason"] == reason]


def test_a_bad_pool_costs_only_itself_from_a_fresh_start(
    apiserver: Any, api_client: client.ApiClient, registry: CollectorRegistry
) -> None:
    """One pool that does not parse, on a fresh start: the controller allocates from the
    others (it used to allocate nothing at all), the Service holding IPs from the bad pool
    keeps them with a PoolInvalid Warning, and the pool gets an InvalidConfig Warning of
    its own (with its uid), a log line and the stale-config metric."""
    apiserver.put(pool("good", "192.0.2.4/31"))
    bad = apiserver.put(pool("bad", "198.51.100.0/24", "198.51.100.300/32"))
    kept = apiserver.put(
        service("z-kept", ingress=("198.51.100.7",), annotations={ANN_ALLOCATED_FROM_POOL: "bad"})
    )
    apiserver.put(service("web"))
    c = make(api_client, "pod-a", registry).start()
    try:
        wait_until(lambda: ingress_of(apiserver, "web") == ["192.0.2.4"], what="web allocated")
        (ev,) = wait_until(lambda: events_for(apiserver, "InvalidConfig"), what="InvalidConfig")
        assert ev["type"] == "Warning"
        assert ev["involvedObject"] == {
            "kind": "IPAddressPool",
            "name": "bad",
            "namespace": NS,
            "apiVersion": "metallb.io/v1beta1",
            "uid": bad["metadata"]["uid"],
        }
        assert "198.51.100.300/32" in ev["message"]
        (held,) = wait_until(lambda: events_for(apiserver, "PoolInvalid"), what="PoolInvalid")
        assert held["type"] == "Warning"
        assert held["involvedObject"]["uid"] == kept["metadata"]["uid"]
        assert 'keeping IPs ["198.51.100.7"]' in held["message"]
        assert ingress_of(apiserver, "z-kept") == ["198.51.100.7"]
        svc = apiserver.get("Service", "default", "z-kept")
        assert svc["metadata"]["annotations"][ANN_ALLOCATED_FROM_POOL] == "bad"
        stale = "metallb_k8s_client_config_stale_bool"
        assert registry.get_sample_value(stale) == 1
        assert registry.get_sample_value("l2agent_config_objects_left_out") == 1
        assert c.last_report is not None
        assert [p.name for p in c.last_report.left_out] == ["bad"]
        # A later pool overlapping a good one is left out too; nothing moves.
        apiserver.put(pool("aaa-overlap", "192.0.2.0/24"))
        wait_until(lambda: len(events_for(apiserver, "InvalidConfig")) == 2, what="overlap")
        assert registry.get_sample_value("l2agent_config_objects_left_out") == 2
        assert ingress_of(apiserver, "web") == ["192.0.2.4"]
        # Fixed: the configuration is whole again; the Service keeps its IPs.
        apiserver.remove("IPAddressPool", NS, "aaa-overlap")
        apiserver.put(pool("bad", "198.51.100.0/24"))
        wait_until(lambda: registry.get_sample_value(stale) == 0, what="stale cleared")
        assert ingress_of(apiserver, "z-kept") == ["198.51.100.7"]
        # Deleting a pool (no bad object) does re-home: its Service is cleared.
        apiserver.remove("IPAddressPool", NS, "bad")
        wait_until(lambda: ingress_of(apiserver, "z-kept") == ["192.0.2.5"], what="re-homed")
        assert ingress_of(apiserver, "web") == ["192.0.2.4"]
        assert len(events_for(apiserver, "PoolInvalid")) == 1  # said once
    finally:
        c.stop()


def test_two_replicas_one_writer_and_takeover(apiserver: Any, api_client: client.ApiClient) -> None:
    apiserver.put(pool("pool", "192.0.2.4/31"))
    a = make(api_client, "pod-a").start()
    assert a.elector.wait_for_leadership(10)
    b = make(api_client, "pod-b").start()
    try:
        wait_until(lambda: b.ready, what="standby synced")
        apiserver.put(service("one"))
        wait_until(lambda: ingress_of(apiserver, "one") == ["192.0.2.4"], what="one")
        assert not b.is_leader
        assert b.last_report is not None and b.last_report.skipped == "not leader"
        a.stop()  # releases the Lease: b takes over without waiting for expiry
        assert b.elector.wait_for_leadership(10)
        apiserver.put(service("two"))
        wait_until(lambda: ingress_of(apiserver, "two") == ["192.0.2.5"], what="two")
        lease = apiserver.get("Lease", NS, "l2agent-controller")
        assert lease["spec"]["holderIdentity"] == "pod-b"
    finally:
        a.stop()
        b.stop()


def test_api_outage_then_catch_up(apiserver: Any, ctrl: Controller) -> None:
    apiserver.put(service("web"))
    wait_until(lambda: ingress_of(apiserver, "web") == ["192.0.2.4"], what="ingress")
    with apiserver.outage():
        apiserver.put(service("late"))
        wait_until(lambda: not ctrl._watched.connected, what="outage noticed")
    wait_until(lambda: ingress_of(apiserver, "late") == ["192.0.2.5"], what="late allocated")
    assert ingress_of(apiserver, "web") == ["192.0.2.4"]


def test_l2agent_controller_command_end_to_end(apiserver: Any, tmp_path: Any) -> None:
    """`l2agent controller` as a process: allocates, serves /metrics and /readyz, and on
    SIGTERM releases its Lease and exits 0."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import urllib.request

    import yaml

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": apiserver.url}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "fake", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    apiserver.put(pool("pool", "192.0.2.4/31"))
    apiserver.put(service("web"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "l2agent.cli",
            "controller",
            f"--kubeconfig={kubeconfig}",
            f"--namespace={NS}",
            "--identity=proc-1",
            f"--metrics-addr=127.0.0.1:{port}",
            "--log-level=warning",
        ],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_until(
            lambda: ingress_of(apiserver, "web") == ["192.0.2.4"], what="ingress", timeout=30
        )

        def get(path: str) -> tuple[int, str]:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return r.status, r.read().decode()

        assert get("/readyz")[0] == 200
        assert get("/healthz") == (200, "ok\n")  # every loop (watches, Lease) is turning
        assert 'metallb_allocator_addresses_in_use_total{pool="pool"} 1.0' in get("/metrics")[1]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert not apiserver.get("Lease", NS, "l2agent-controller")["spec"].get("holderIdentity")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
