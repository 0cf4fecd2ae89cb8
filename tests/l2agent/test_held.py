"""A bad pool costs only itself: the Services holding its IPs keep them (`l2agent.model.held`),
in the controller's allocation and writes and in every speaker's plan alike."""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

import pytest

from l2agent.allocator import ANN_ALLOCATED_FROM_POOL, AllocationError, Assignment, allocate
from l2agent.controller.planner import KEEP, plan_writes
from l2agent.model.events import EventType, Reason
from l2agent.model.problems import ProblemReason
from l2agent.model.snapshot import build_state
from l2agent.plan import InputSource, plan

NS = "metallb-system"


def pool(name: str, *addresses: Any, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": NS, "labels": labels or {}},
        "spec": {"addresses": list(addresses)},
    }


def advert(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "L2Advertisement",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def service(name: str, *ips: str, **annotations: str) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
    }
    if ips:
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}
    return obj


NODES = [{"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}} for n in ("n1", "n2")]
SLICE = {
    "apiVersion": "discovery.k8s.io/v1",
    "kind": "EndpointSlice",
    "metadata": {
        "name": "held-1",
        "namespace": "default",
        "labels": {"kubernetes.io/service-name": "held"},
    },
    "addressType": "IPv4",
    "endpoints": [{"addresses": ["10.1.0.5"], "conditions": {"ready": True}, "nodeName": "n1"}],
}
GOOD = pool("good", "192.0.2.0/30")
BROKEN = pool("broken", "198.51.100.0/28", "198.51.100.300/32", labels={"tier": "edge"})
FROM_BROKEN = {ANN_ALLOCATED_FROM_POOL: "broken"}


@pytest.mark.parametrize(
    ("svc", "held"),
    [
        (service("a", "198.51.100.5", **FROM_BROKEN), "broken"),  # named by the annotation
        (service("b", "198.51.100.5"), "broken"),  # in the addresses that still parse
        (service("c", "198.51.100.200", **FROM_BROKEN), "broken"),  # named, outside them
        (service("d", "198.51.100.200"), None),  # in no pool at all: not held
        (service("e", "192.0.2.1", **FROM_BROKEN), "broken"),  # the annotation decides
        (service("f", "192.0.2.1"), None),  # in a pool in force
        (service("g", **FROM_BROKEN), None),  # no IPs to keep
    ],
)
def test_which_services_are_held(svc: dict[str, Any], held: str | None) -> None:
    result = build_state([GOOD, BROKEN, svc])
    (problem,) = result.problems
    assert (problem.name, problem.reason) == ("broken", ProblemReason.INVALID)
    (found,) = result.state.held_pools
    assert dict(found.labels) == {"tier": "edge"}
    assert [str(c) for c in found.cidrs] == ["198.51.100.0/28"]
    (view,) = result.state.services
    got = result.state.held_pool_for(view)
    assert (got.name if got else None) == held


def test_the_controller_keeps_held_ips_says_why_and_hands_them_to_nobody() -> None:
    result = build_state(
        [
            pool("good", "198.51.100.4/30"),  # clashes with nothing left in force
            pool("zz-overlap", "198.51.100.0/24"),  # overlaps good: left out, later by name
            service("held", "198.51.100.5", **{ANN_ALLOCATED_FROM_POOL: "zz-overlap"}),
            service("new"),
            service("asks", **{"metallb.io/address-pool": "zz-overlap"}),
        ]
    )
    state = result.state
    alloc = allocate(state)
    assert alloc["default/held"] == Assignment((ip_address("198.51.100.5"),), "zz-overlap", True)
    new = alloc["default/new"]
    assert isinstance(new, Assignment) and new.ips == (ip_address("198.51.100.4"),)
    assert alloc.in_use == {"good": frozenset({ip_address("198.51.100.4")})}
    asks = alloc["default/asks"]
    assert isinstance(asks, AllocationError)
    assert "left out of the configuration" in asks.message and "overlaps" in asks.message
    writes = {w.key: w for w in plan_writes(state, alloc)}
    held = writes["default/held"]
    assert (held.ingress, held.pool) == (KEEP, KEEP)
    (ev,) = held.events
    assert (ev.type, ev.reason) == (EventType.WARNING, Reason.POOL_INVALID)
    assert 'keeping IPs ["198.51.100.5"] while pool zz-overlap cannot be used' in ev.message


@pytest.mark.parametrize(
    "ad",
    [
        advert("by-name", ipAddressPools=["broken"]),
        advert("by-label", ipAddressPoolSelectors=[{"matchLabels": {"tier": "edge"}}]),
        advert("every-pool"),
    ],
)
@pytest.mark.parametrize("source", [InputSource.CLUSTER, InputSource.STATIC])
def test_every_node_keeps_announcing_held_ips(ad: dict[str, Any], source: InputSource) -> None:
    """Through whichever advertisement selects the bad pool, on every node alike."""
    objs = [*NODES, GOOD, BROKEN, ad, service("held", "198.51.100.5", **FROM_BROKEN), SLICE]
    state = build_state(objs).state
    owners = [n for n in ("n1", "n2") if plan(state, {"n1", "n2"}, n, source=source).announcements]
    assert len(owners) == 1
    (sp,) = plan(state, {"n1", "n2"}, owners[0], source=source).services
    assert (sp.pool, sp.ips) == ("broken", (ip_address("198.51.100.5"),))


def test_an_advertisement_for_another_pool_does_not_announce_held_ips() -> None:
    objs = [*NODES, GOOD, BROKEN, advert("good-only", ipAddressPools=["good"])]
    state = build_state([*objs, service("held", "198.51.100.5", **FROM_BROKEN)]).state
    assert all(not plan(state, {"n1", "n2"}, n).announcements for n in ("n1", "n2"))


def test_a_fresh_state_with_a_bad_pool_serves_the_good_one() -> None:
    """What used to refuse the whole configuration now leaves one pool out."""
    objs = [*NODES, GOOD, BROKEN, advert("all"), service("web", "192.0.2.1")]
    result = build_state(objs)
    assert [p.name for p in result.stale] == ["broken"]
    announced = set()
    for n in ("n1", "n2"):
        announced |= set(plan(result.state, {"n1", "n2"}, n).announcements)
    assert announced == {ip_address("192.0.2.1")}


def test_the_older_of_two_overlapping_pools_wins_whatever_the_order() -> None:
    def stamped(obj: dict[str, Any], when: str) -> dict[str, Any]:
        obj["metadata"]["creationTimestamp"] = when
        return obj

    older = stamped(pool("zz-old", "192.0.2.0/24"), "2026-01-01T00:00:00Z")
    newer = stamped(pool("aa-new", "192.0.2.0/28"), "2026-01-02T00:00:00Z")
    for objs in ([older, newer], [newer, older]):
        result = build_state(objs)
        assert [p.name for p in result.state.pools] == ["zz-old"]
        assert [(p.name, p.reason) for p in result.problems] == [("aa-new", ProblemReason.OVERLAP)]
