"""IPAddressPool / L2Advertisement parsing and validation, with MetalLB's own cases."""

from __future__ import annotations

from ipaddress import ip_address, ip_network
from typing import Any

import pytest

from l2agent.errors import ConfigError
from l2agent.model import (
    ALL_INTERFACES,
    EndpointSliceView,
    InterfaceSelection,
    IPAddressPool,
    IPFamilyPolicy,
    L2Advertisement,
    NodeView,
    ServiceL2Status,
    ServiceView,
    TrafficPolicy,
    build_state,
    parse_address_entry,
)
from l2agent.model.problems import ProblemReason
from l2agent.model.views import SERVICE_NAME_LABEL


def pool(name: str, *addresses: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": "metallb-system"},
        "spec": {"addresses": list(addresses), **spec},
    }


def test_range_summarised_like_metallb() -> None:
    assert parse_address_entry("40.0.0.150-40.0.0.200") == tuple(
        ip_network(c)
        for c in (
            "40.0.0.150/31",
            "40.0.0.152/29",
            "40.0.0.160/27",
            "40.0.0.192/29",
            "40.0.0.200/32",
        )
    )


def test_range_with_spaces_and_ipv6() -> None:
    assert parse_address_entry(" 40.0.0.210 - 40.0.0.211 ") == (ip_network("40.0.0.210/31"),)
    assert parse_address_entry("2001:db8::200-2001:db8::2ff") == (ip_network("2001:db8::200/120"),)


def test_cidr_host_bits_masked_and_every_address_usable() -> None:
    p = IPAddressPool.from_dict(pool("p", "1.2.3.4/30"))
    assert p.cidrs == (ip_network("1.2.3.4/30"),)
    assert [str(a) for a in p.addresses(4)] == ["1.2.3.4", "1.2.3.5", "1.2.3.6", "1.2.3.7"]
    masked = IPAddressPool.from_dict(pool("p", "1.2.3.4/24"))
    assert masked.cidrs == (ip_network("1.2.3.0/24"),)
    assert p.size() == 4


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("1.2.3.10-1.2.3.1", "after end"),
        ("1.2.3.0/33", "invalid CIDR"),
        ("1.2.3.4", "missing prefix"),
        ("nonsense-1.2.3.4", "invalid IP range"),
        ("1.2.3.4-2001:db8::1", "different families"),
        ("abc/24", "invalid CIDR"),
    ],
)
def test_bad_address_entries(entry: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        IPAddressPool.from_dict(pool("bad", entry))


def test_empty_pool_and_overlap_inside_a_pool_rejected() -> None:
    with pytest.raises(ConfigError, match="empty"):
        IPAddressPool.from_dict(pool("empty"))
    with pytest.raises(ConfigError, match="overlaps"):
        IPAddressPool.from_dict(pool("p", "10.0.0.0/24", "10.0.0.128/25"))


def test_avoid_buggy_ips_and_size() -> None:
    p = IPAddressPool.from_dict(pool("p", "1.2.4.0/24", avoidBuggyIPs=True))
    assert not p.contains(ip_address("1.2.4.0"))
    assert not p.contains(ip_address("1.2.4.255"))
    assert p.contains(ip_address("1.2.4.254"))
    assert p.size() == 254
    assert IPAddressPool.from_dict(pool("q", "1.2.3.0/23", avoidBuggyIPs=True)).size() == 508
    small = IPAddressPool.from_dict(pool("s", "1.2.3.252/30", avoidBuggyIPs=True))
    assert small.size() == 3
    v6 = IPAddressPool.from_dict(pool("v6", "2001:db8::/126", avoidBuggyIPs=True))
    assert v6.size() == 4 and v6.contains(ip_address("2001:db8::"))


def test_service_allocation_parsed() -> None:
    p = IPAddressPool.from_dict(
        pool(
            "p",
            "10.0.0.0/24",
            autoAssign=False,
            serviceAllocation={
                "priority": 10,
                "namespaces": ["a", "b"],
                "serviceSelectors": [{"matchLabels": {"x": "y"}}],
            },
        )
    )
    assert p.auto_assign is False
    assert p.service_allocation is not None
    assert p.service_allocation.priority == 10
    assert p.service_allocation.namespaces == ("a", "b")
    with pytest.raises(ConfigError, match="duplicate"):
        IPAddressPool.from_dict(
            pool("p", "10.0.0.0/24", serviceAllocation={"namespaces": ["a", "a"]})
        )
    with pytest.raises(ConfigError, match="autoAssign"):
        IPAddressPool.from_dict(pool("p", "10.0.0.0/24", autoAssign="yes"))


def test_overlapping_and_duplicate_pools_across_objects() -> None:
    result = build_state(
        [
            pool("big", "10.0.0.0/8"),
            pool("small", "10.0.0.0/16"),
            pool("big", "192.0.2.0/24"),
            pool("ok", "192.0.2.0/25"),
        ]
    )
    assert [p.name for p in result.state.pools] == ["big", "ok"]
    assert not result.ok
    assert [(p.name, p.reason) for p in result.problems] == [
        ("big", ProblemReason.DUPLICATE),
        ("small", ProblemReason.OVERLAP),
    ]
    joined = "\n".join(p.message for p in result.problems)
    assert "10.0.0.0/16 overlaps with CIDR 10.0.0.0/8" in joined
    assert "duplicate name" in joined
    # the dropped duplicate does not block a later pool that only clashes with it
    assert "pool ok" not in joined
    assert result.stale == result.problems  # each costs only itself, and is reported
    assert [(h.name, str(h.cidrs[0])) for h in result.state.held_pools] == [
        ("big", "192.0.2.0/24"),
        ("small", "10.0.0.0/16"),
    ]


def test_same_cidr_in_two_pools_is_an_error() -> None:
    result = build_state([pool("a", "192.0.2.0/28"), pool("b", "192.0.2.0-192.0.2.15")])
    assert [p.name for p in result.state.pools] == ["a"]
    assert result.problems[0].reason is ProblemReason.OVERLAP
    assert "overlaps" in result.problems[0].message


def ad(**spec: Any) -> L2Advertisement:
    return L2Advertisement.from_dict(
        {"kind": "L2Advertisement", "metadata": {"name": "ad"}, "spec": spec}
    )


def test_l2advertisement_fields_and_matching() -> None:
    p1 = IPAddressPool.from_dict(pool("p1", "10.0.0.0/24"))
    p2 = IPAddressPool.from_dict(
        {**pool("p2", "10.0.1.0/24"), "metadata": {"name": "p2", "labels": {"t": "x"}}}
    )
    everything = ad()
    assert everything.applies_to_pool(p1) and everything.applies_to_pool(p2)
    assert everything.selects_node({}) and everything.matches_service({})
    assert everything.interface_selection == ALL_INTERFACES
    named = ad(ipAddressPools=["p1"], interfaces=["eth0", "eth1"])
    assert named.applies_to_pool(p1) and not named.applies_to_pool(p2)
    assert named.interface_selection == InterfaceSelection(False, frozenset({"eth0", "eth1"}))
    selected = ad(ipAddressPoolSelectors=[{"matchLabels": {"t": "x"}}])
    assert selected.applies_to_pool(p2) and not selected.applies_to_pool(p1)
    nodes = ad(nodeSelectors=[{"matchLabels": {"role": "edge"}}])
    assert nodes.selects_node({"role": "edge"}) and not nodes.selects_node({})
    svc = ad(serviceSelectors=[{"matchLabels": {"app": "a"}}])
    assert svc.matches_service({"app": "a"}) and not svc.matches_service({"app": "b"})
    with pytest.raises(ConfigError, match="duplicate"):
        ad(ipAddressPools=["p1", "p1"])
    with pytest.raises(ConfigError, match="duplicate"):
        ad(nodeSelectors=[{"matchLabels": {"a": "b"}}, {"matchLabels": {"a": "b"}}])


def test_interface_selection_union() -> None:
    a = InterfaceSelection(False, frozenset({"eno1"}))
    b = InterfaceSelection(False, frozenset({"ens18"}))
    assert a.union(b) == InterfaceSelection(False, frozenset({"eno1", "ens18"}))
    assert a.union(ALL_INTERFACES) == ALL_INTERFACES


def test_preferred_node_selectors_score() -> None:
    a = ad(
        nodeSelectors=[{"matchLabels": {"pool": "yes"}}],
        preferredNodeSelectors=[
            {"weight": 50, "preference": {"matchLabels": {"fast": "true"}}},
            {"weight": 10, "preference": {}},
        ],
    )
    assert a.preference_score({"pool": "yes", "fast": "true"}) == 60
    assert a.preference_score({"pool": "yes"}) == 10
    assert a.preference_score({"fast": "true"}) == 0
    with pytest.raises(ConfigError, match="weight"):
        ad(preferredNodeSelectors=[{"weight": 0, "preference": {}}])


def test_service_l2_status_round_trip() -> None:
    status = {
        "node": "node-1",
        "serviceName": "web",
        "serviceNamespace": "default",
        "interfaces": [{"name": "eth0"}],
    }
    s = ServiceL2Status.from_dict(
        {"kind": "ServiceL2Status", "metadata": {"name": "l2-abc"}, "status": status}
    )
    assert s.node == "node-1" and s.interfaces == ("eth0",)
    assert s.to_dict() == status


def test_missing_name_is_an_error_not_a_crash() -> None:
    result = build_state([{"kind": "IPAddressPool", "spec": {"addresses": ["10.0.0.0/24"]}}, 7])
    assert [(p.kind, p.reason) for p in result.problems] == [
        ("IPAddressPool", ProblemReason.INVALID),
        ("", ProblemReason.NOT_AN_OBJECT),
    ]
    assert "metadata" in result.problems[0].message


def test_views_from_kubectl_shaped_dicts() -> None:
    svc = ServiceView.from_dict(
        {
            "kind": "Service",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "type": "LoadBalancer",
                "clusterIPs": ["10.96.0.10", "fd00::10"],
                "ipFamilies": ["IPv4", "IPv6"],
                "ipFamilyPolicy": "PreferDualStack",
                "externalTrafficPolicy": "Local",
                "selector": {"app": "web"},
                "ports": [{"port": 53, "protocol": "UDP"}, {"port": 80}],
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"hostname": "x"}]}},
        }
    )
    assert svc.key == "default/web"
    assert svc.ip_families == (4, 6) and svc.ip_family_policy is IPFamilyPolicy.PREFER_DUAL_STACK
    assert svc.external_traffic_policy is TrafficPolicy.LOCAL
    assert [str(p) for p in svc.ports] == ["UDP/53", "TCP/80"]
    assert svc.ingress_ips == (ip_address("192.0.2.1"),)
    node = NodeView.from_dict(
        {
            "kind": "Node",
            "metadata": {"name": "n1"},
            "status": {"conditions": [{"type": "NetworkUnavailable", "status": "True"}]},
        }
    )
    assert node.network_unavailable
    ok = NodeView.from_dict(
        {
            "kind": "Node",
            "metadata": {"name": "n2"},
            "status": {"conditions": [{"type": "NetworkUnavailable", "status": "False"}]},
        }
    )
    assert not ok.network_unavailable


def test_endpoint_slice_view() -> None:
    obj = {
        "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "namespace": "ns", "labels": {SERVICE_NAME_LABEL: "web"}},
        "endpoints": [
            {"nodeName": "n1", "conditions": {"ready": False, "serving": True}},
            {"nodeName": "n2", "conditions": {"ready": False}},
            {"conditions": {}},
        ],
    }
    es = EndpointSliceView.from_dict(obj)
    assert es.service_key == "ns/web"
    assert [e.can_serve for e in es.endpoints] == [True, False, True]
    with pytest.raises(ConfigError, match="service-name"):
        EndpointSliceView.from_dict({**obj, "metadata": {"name": "x"}})


@pytest.mark.parametrize(
    "spec",
    [
        {"externalTrafficPolicy": "Sometimes"},
        {"ipFamilyPolicy": "Both"},
        {"ipFamilies": ["IPv5"]},
        {"clusterIPs": ["not-an-ip"]},
        {"ports": [{"port": "http"}]},
    ],
)
def test_bad_service_fields_are_config_errors(spec: dict[str, Any]) -> None:
    result = build_state([{"kind": "Service", "metadata": {"name": "s"}, "spec": spec}])
    assert not result.ok and "Service default/s" in result.problems[0].message


def test_kinds_we_do_not_read_are_ignored_not_errors() -> None:
    result = build_state([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}])
    assert result.ok
    assert [p.reason for p in result.problems] == [ProblemReason.UNKNOWN_KIND]
