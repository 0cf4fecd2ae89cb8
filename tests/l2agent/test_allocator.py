"""Allocator: MetalLB's allocation cases, sharing rules, dual stack, determinism."""

from __future__ import annotations

import random
from ipaddress import ip_address

import pytest
from _l2objects import namespace, pool, service, state
from hypothesis import given, settings
from hypothesis import strategies as st

from l2agent.allocator import (
    Allocation,
    AllocationError,
    AllocationFailure,
    Assignment,
    allocate,
)
from l2agent.model import ServiceView


def ips(alloc: Allocation, key: str) -> list[str]:
    result = alloc[key]
    assert isinstance(result, Assignment), result
    return [str(i) for i in result.ips]


def failure(alloc: Allocation, key: str) -> AllocationError:
    result = alloc[key]
    assert isinstance(result, AllocationError), result
    return result


def test_slash31_hands_out_4_then_5_then_runs_out() -> None:
    alloc = allocate(state(pool("p", "1.2.3.4/31"), service("a"), service("b"), service("c")))
    assert ips(alloc, "default/a") == ["1.2.3.4"]
    assert ips(alloc, "default/b") == ["1.2.3.5"]
    assert failure(alloc, "default/c").reason is AllocationFailure.NO_AVAILABLE_IPS
    assert alloc.in_use["p"] == {ip_address("1.2.3.4"), ip_address("1.2.3.5")}


def test_avoid_buggy_ips_refuses_0_and_255_grants_254() -> None:
    objs = [pool("p", "1.2.4.0/24", avoidBuggyIPs=True)]
    first = allocate(state(*objs, service("a")))
    assert ips(first, "default/a") == ["1.2.4.1"]
    for bad in ("1.2.4.0", "1.2.4.255"):
        alloc = allocate(state(*objs, service("a", loadBalancerIP=bad)))
        assert failure(alloc, "default/a").reason is AllocationFailure.IP_NOT_ALLOWED
    alloc = allocate(state(*objs, service("a", loadBalancerIP="1.2.4.254")))
    assert ips(alloc, "default/a") == ["1.2.4.254"]


def test_namespace_priority_10_beats_11() -> None:
    objs = [
        pool(
            "prio11", "10.0.11.0/24", serviceAllocation={"priority": 11, "namespaces": ["test-ns1"]}
        ),
        pool(
            "prio10", "10.0.10.0/24", serviceAllocation={"priority": 10, "namespaces": ["test-ns1"]}
        ),
        pool("unset", "10.0.99.0/24", serviceAllocation={"namespaces": ["test-ns1"]}),
        pool("general", "10.0.0.0/24"),
    ]
    alloc = allocate(state(*objs, service("svc", "test-ns1"), service("other", "test-ns2")))
    assert failure_free(alloc, "test-ns1/svc").pool == "prio10"
    # a pinned pool never serves non-matching services
    assert failure_free(alloc, "test-ns2/other").pool == "general"


def failure_free(alloc: Allocation, key: str) -> Assignment:
    result = alloc[key]
    assert isinstance(result, Assignment), result
    return result


def test_pinned_by_service_and_namespace_selectors() -> None:
    objs = [
        pool(
            "web",
            "10.1.0.0/24",
            serviceAllocation={
                "priority": 5,
                "serviceSelectors": [{"matchLabels": {"app": "web"}}],
            },
        ),
        pool(
            "team",
            "10.2.0.0/24",
            serviceAllocation={"namespaceSelectors": [{"matchLabels": {"team": "blue"}}]},
        ),
        namespace("blue-ns", {"team": "blue"}),
        pool("general", "10.0.0.0/24"),
        # priority-only serviceAllocation matches everything, before unpinned pools
        pool("everyone", "10.3.0.0/24", serviceAllocation={"priority": 50}),
    ]
    alloc = allocate(
        state(
            *objs,
            service("w", labels={"app": "web"}),
            service("b", "blue-ns"),
            service("x"),
        )
    )
    assert failure_free(alloc, "default/w").pool == "web"
    assert failure_free(alloc, "blue-ns/b").pool == "everyone"  # priority 50 beats unset
    assert failure_free(alloc, "default/x").pool == "everyone"


def test_pinned_pool_exhausted_falls_back_to_general_pools() -> None:
    objs = [
        pool("tiny", "10.1.0.0/32", serviceAllocation={"priority": 1, "namespaces": ["ns"]}),
        pool("general", "10.0.0.0/24"),
    ]
    alloc = allocate(state(*objs, service("a", "ns"), service("b", "ns")))
    assert failure_free(alloc, "ns/a").pool == "tiny"
    assert ips(alloc, "ns/b") == ["10.0.0.0"]


def test_auto_assign_false_only_on_request() -> None:
    objs = [pool("manual", "10.9.0.0/30", autoAssign=False)]
    alloc = allocate(
        state(
            *objs,
            service("auto"),
            service("bypool", annotations={"metallb.io/address-pool": "manual"}),
            service("byip", annotations={"metallb.io/loadBalancerIPs": "10.9.0.3"}),
        )
    )
    assert failure(alloc, "default/auto").reason is AllocationFailure.NO_AVAILABLE_IPS
    assert ips(alloc, "default/bypool") == ["10.9.0.0"]
    assert ips(alloc, "default/byip") == ["10.9.0.3"]


def test_requests_and_errors() -> None:
    objs = [pool("p", "10.0.0.0/24"), pool("q", "10.0.1.0/24")]
    alloc = allocate(
        state(
            *objs,
            service(
                "both",
                annotations={"metallb.io/loadBalancerIPs": "10.0.0.5"},
                loadBalancerIP="10.0.0.6",
            ),
            service("garbage", annotations={"metallb.io/loadBalancerIPs": "10.0.0.x"}),
            service("unknown", annotations={"metallb.io/address-pool": "nope"}),
            service("outside", loadBalancerIP="192.0.2.1"),
            service(
                "wrongpool",
                annotations={
                    "metallb.io/address-pool": "q",
                    "metallb.io/loadBalancerIPs": "10.0.0.7",
                },
            ),
            service(
                "family",
                annotations={"metallb.io/loadBalancerIPs": "2001:db8::1"},
                ipFamilies=["IPv4"],
            ),
            service("three", annotations={"metallb.io/loadBalancerIPs": "10.0.0.1,10.0.0.2"}),
            service("deprecated", annotations={"metallb.universe.tf/loadBalancerIPs": "10.0.1.9"}),
        )
    )
    assert failure(alloc, "default/both").reason is AllocationFailure.CONFLICTING_REQUEST
    assert "can not have both" in failure(alloc, "default/both").message
    assert failure(alloc, "default/garbage").reason is AllocationFailure.INVALID_REQUEST
    assert failure(alloc, "default/unknown").message == 'unknown pool "nope"'
    assert failure(alloc, "default/outside").reason is AllocationFailure.IP_NOT_ALLOWED
    assert failure(alloc, "default/wrongpool").reason is AllocationFailure.POOL_NOT_COMPATIBLE
    assert failure(alloc, "default/family").reason is AllocationFailure.FAMILY_MISMATCH
    assert failure(alloc, "default/three").reason is AllocationFailure.INVALID_REQUEST
    assert ips(alloc, "default/deprecated") == ["10.0.1.9"]


def test_tcp53_and_udp53_share_an_ip() -> None:
    objs = [pool("p", "10.0.0.0/30")]
    shared = {"metallb.io/allow-shared-ip": "dns"}
    alloc = allocate(
        state(
            *objs,
            service("dns-tcp", annotations=shared, ports=[("TCP", 53)]),
            service("dns-udp", annotations=shared, ports=[("UDP", 53)]),
        )
    )
    assert ips(alloc, "default/dns-tcp") == ips(alloc, "default/dns-udp") == ["10.0.0.0"]


@pytest.mark.parametrize(
    ("second", "expected_ip", "message"),
    [
        ({"annotations": {"metallb.io/allow-shared-ip": "other"}}, None, "does not match"),
        ({"annotations": {}}, None, "new service does not allow sharing"),
        (
            {"annotations": {"metallb.io/allow-shared-ip": "k"}, "ports": [("TCP", 80)]},
            None,
            "port TCP/80 is already in use",
        ),
        (
            {"annotations": {"metallb.io/allow-shared-ip": "k"}, "ports": [("TCP", 81)]},
            "10.0.0.1",
            None,
        ),
    ],
)
def test_sharing_rules_on_explicit_ip(second: dict, expected_ip: str | None, message: str | None):
    first = service(
        "first",
        annotations={"metallb.io/allow-shared-ip": "k", "metallb.io/loadBalancerIPs": "10.0.0.1"},
    )
    annotations = {**second.get("annotations", {}), "metallb.io/loadBalancerIPs": "10.0.0.1"}
    other = service("second", annotations=annotations, ports=second.get("ports"))
    alloc = allocate(state(pool("p", "10.0.0.0/24"), first, other))
    if expected_ip:
        assert ips(alloc, "default/second") == [expected_ip]
    else:
        err = failure(alloc, "default/second")
        assert err.reason is AllocationFailure.SHARING_CONFLICT
        assert message is not None and message in err.message


def test_etp_local_shares_only_with_same_selector() -> None:
    key = {"metallb.io/allow-shared-ip": "k", "metallb.io/loadBalancerIPs": "10.0.0.1"}
    a = service("a", annotations=key, externalTrafficPolicy="Local", selector={"app": "x"})
    b = service(
        "b",
        annotations=key,
        externalTrafficPolicy="Local",
        selector={"app": "y"},
        ports=[("TCP", 81)],
    )
    c = service(
        "c",
        annotations=key,
        externalTrafficPolicy="Local",
        selector={"app": "x"},
        ports=[("TCP", 82)],
    )
    alloc = allocate(state(pool("p", "10.0.0.0/24"), a, b, c))
    assert "backend key" in failure(alloc, "default/b").message
    assert ips(alloc, "default/c") == ["10.0.0.1"]


def test_existing_status_kept_when_valid_and_processed_first() -> None:
    objs = [pool("p", "10.0.0.0/29")]
    alloc = allocate(state(*objs, service("a-new"), service("z-old", ingress=["10.0.0.0"])))
    assert ips(alloc, "default/z-old") == ["10.0.0.0"]
    assert ips(alloc, "default/a-new") == ["10.0.0.1"]


def test_invalid_status_reallocated_unless_trusted() -> None:
    objs = [pool("p", "10.0.0.0/29"), service("s", ingress=["192.0.2.9"])]
    assert ips(allocate(state(*objs)), "default/s") == ["10.0.0.0"]
    trusted = allocate(state(*objs), trust_status=True)
    assert trusted["default/s"] == Assignment((ip_address("192.0.2.9"),), None)


def test_a_reallocated_service_never_takes_the_ips_another_keeps() -> None:
    # "a-moved" sorts first and its IP is no longer in any pool: re-allocating it must not
    # hand it 10.0.0.0, which "z-kept" holds and keeps (every kept IP is booked first).
    objs = [pool("p", "10.0.0.0/31")]
    alloc = allocate(
        state(
            *objs,
            service("a-moved", ingress=["192.0.2.9"]),
            service("z-kept", ingress=["10.0.0.0"]),
        )
    )
    assert ips(alloc, "default/z-kept") == ["10.0.0.0"]
    assert ips(alloc, "default/a-moved") == ["10.0.0.1"]


def test_dual_stack_policies_from_one_pool() -> None:
    dual = pool("dual", "10.0.0.0/30", "2001:db8::/126")
    v4only = pool("v4only", "10.1.0.0/30")
    objs = [v4only, dual]
    require = service("req", ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv6", "IPv4"])
    prefer = service("pref", ipFamilyPolicy="PreferDualStack", clusterIPs=["10.96.0.1", "fd00::1"])
    single6 = service("six", ipFamilies=["IPv6"])
    alloc = allocate(state(*objs, require, prefer, single6))
    # services are processed by name: "pref" before "req"; the primary family comes first
    assert ips(alloc, "default/pref") == ["10.0.0.0", "2001:db8::"]
    assert ips(alloc, "default/req") == ["2001:db8::1", "10.0.0.1"]
    assert failure_free(alloc, "default/pref").pool == "dual"
    assert ips(alloc, "default/six") == ["2001:db8::2"]


def test_prefer_dual_stack_falls_back_to_single() -> None:
    alloc = allocate(
        state(pool("v4", "10.1.0.0/30"), service("pref", ipFamilyPolicy="PreferDualStack"))
    )
    assert ips(alloc, "default/pref") == ["10.1.0.0"]
    strict = allocate(
        state(pool("v4", "10.1.0.0/30"), service("req", ipFamilyPolicy="RequireDualStack"))
    )
    assert failure(strict, "default/req").reason is AllocationFailure.NO_AVAILABLE_IPS
    few = allocate(
        state(
            pool("v4", "10.1.0.0/30"),
            service("req", ipFamilyPolicy="RequireDualStack", clusterIPs=["10.96.0.1"]),
        )
    )
    assert failure(few, "default/req").reason is AllocationFailure.NOT_ENOUGH_CLUSTER_IPS


def test_lb_class_filter_and_non_lb_services_skipped() -> None:
    objs = [
        pool("p", "10.0.0.0/24"),
        service("none"),
        service("classy", loadBalancerClass="metallb.io/internal"),
        service("cip", type="ClusterIP"),
    ]
    default = allocate(state(*objs))
    assert set(default.results) == {"default/none"}
    classy = allocate(state(*objs), lb_class="metallb.io/internal")
    assert set(classy.results) == {"default/classy"}


def test_deterministic_regardless_of_input_order() -> None:
    objs = [
        pool("b", "10.0.1.0/30"),
        pool("a", "10.0.0.0/30"),
        *[service(f"s{i}", f"ns{i % 3}") for i in range(7)],
    ]
    first = allocate(state(*objs))
    second = allocate(state(*reversed(objs)))
    assert first == second
    # unpinned pools are walked by name: pool "a" fills first
    assert ips(first, "ns0/s0") == ["10.0.0.0"]


def test_auto_allocation_interleaving_sharing_and_plain_services() -> None:
    """Sharing services still find shareable used IPs; plain ones skip every used IP."""
    key = {"metallb.io/allow-shared-ip": "k"}
    alloc = allocate(
        state(
            pool("p", "10.0.0.255-10.0.1.3", avoidBuggyIPs=True),
            service("a-tcp", annotations=key, ports=[("TCP", 53)]),
            service("b-plain"),
            service("c-udp", annotations=key, ports=[("UDP", 53)]),
            service("d-plain"),
            service("e-tcp-again", annotations=key, ports=[("TCP", 53)]),
        )
    )
    assert ips(alloc, "default/a-tcp") == ["10.0.1.1"]
    assert ips(alloc, "default/b-plain") == ["10.0.1.2"]
    assert ips(alloc, "default/c-udp") == ["10.0.1.1"]
    assert ips(alloc, "default/d-plain") == ["10.0.1.3"]
    assert failure(alloc, "default/e-tcp-again").reason is AllocationFailure.NO_AVAILABLE_IPS


def test_large_pass_stays_linear() -> None:
    """2000 services in one pool: the walk resumes where the last plain service stopped."""
    objs = [pool("p", "10.0.0.0/20"), *[service(f"s{i:04d}") for i in range(2000)]]
    alloc = allocate(state(*objs))
    assert ips(alloc, "default/s1999") == ["10.0.7.207"]
    assert len(alloc.in_use["p"]) == 2000


@st.composite
def _scenario(draw: st.DrawFn) -> list[dict]:
    objs: list[dict] = [
        pool("a", "10.0.0.0/30", "2001:db8::/126", avoidBuggyIPs=draw(st.booleans())),
        pool(
            "b",
            "10.0.1.0/31",
            serviceAllocation={"priority": draw(st.integers(0, 3)), "namespaces": ["ns1"]},
        ),
    ]
    for i in range(draw(st.integers(1, 9))):
        annotations = {}
        if draw(st.booleans()):
            annotations["metallb.io/allow-shared-ip"] = draw(st.sampled_from(["k1", "k2"]))
        if draw(st.integers(0, 4)) == 0:
            last = draw(st.integers(0, 3))
            annotations["metallb.io/loadBalancerIPs"] = f"10.0.0.{last}"
        objs.append(
            service(
                f"s{i}",
                draw(st.sampled_from(["ns1", "ns2"])),
                annotations=annotations,
                ports=[(draw(st.sampled_from(["TCP", "UDP"])), draw(st.sampled_from([53, 80])))],
                ipFamilyPolicy=draw(
                    st.sampled_from(["SingleStack", "PreferDualStack", "RequireDualStack"])
                ),
            )
        )
    return objs


@settings(max_examples=150, deadline=None, derandomize=True)
@given(_scenario(), st.randoms(use_true_random=False))
def test_allocation_invariants(objs: list[dict], rnd: random.Random) -> None:
    """Every IP lies in its pool; IPs are shared only as the sharing rules allow;
    the answer does not depend on input order."""
    st_ = state(*objs)
    alloc = allocate(st_)
    users: dict[object, list[ServiceView]] = {}
    for key, result in alloc.results.items():
        if not isinstance(result, Assignment):
            continue
        svc = st_.service(key)
        assert svc is not None and result.pool is not None
        p = st_.pool(result.pool)
        assert p is not None
        assert len({ip.version for ip in result.ips}) == len(result.ips)
        for ip in result.ips:
            assert p.contains(ip)
            users.setdefault(ip, []).append(svc)
    for svcs in users.values():
        if len(svcs) < 2:
            continue
        keys = {s.annotations.get("metallb.io/allow-shared-ip") for s in svcs}
        assert len(keys) == 1 and None not in keys
        ports = [port for s in svcs for port in s.ports]
        assert len(ports) == len(set(ports))
    shuffled = list(objs)
    rnd.shuffle(shuffled)
    assert allocate(state(*shuffled)) == alloc


def test_deprecated_pool_and_sharing_annotations_honoured_stable_wins() -> None:
    objs = [pool("p", "10.0.0.0/30"), pool("q", "10.0.1.0/30", autoAssign=False)]
    old = {"metallb.universe.tf/address-pool": "q", "metallb.universe.tf/allow-shared-ip": "k"}
    both = {"metallb.universe.tf/address-pool": "q", "metallb.io/address-pool": "p"}
    alloc = allocate(
        state(
            *objs,
            service("old-a", annotations=old, ports=[("TCP", 1)]),
            service("old-b", annotations=old, ports=[("TCP", 2)]),
            service("both", annotations=both),
        )
    )
    assert ips(alloc, "default/old-a") == ips(alloc, "default/old-b") == ["10.0.1.0"]
    assert failure_free(alloc, "default/both").pool == "p"
