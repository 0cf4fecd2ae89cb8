"""BGP planner: MetalLB's eligibility rule per node (table), peers and attributes per prefix."""

from __future__ import annotations

from ipaddress import ip_network
from typing import Any

import pytest
from _bgpobjects import bgpad, peer
from _l2objects import endpoint_slice, node, pool, service

from l2agent.bgp.plan import BgpProblemKind, explain_bgp, plan_bgp
from l2agent.election import NotAnnouncing
from l2agent.model import BGPPeer, ClusterState, build_state
from l2agent.model.views import EXCLUDE_LB_LABEL
from l2agent.service_ips import InputSource

POOL = pool("p", "198.51.100.0/24", "2001:db8:1::/120")


def _state(*objects: dict) -> ClusterState:
    result = build_state(list(objects))
    assert result.ok, [p.message for p in result.problems]
    return result.state


def _base(**overrides: Any) -> list[dict]:
    """One pool, one node n1, one eBGP peer r1, one all-pools advertisement, one service."""
    objs: dict[str, Any] = {
        "pool": POOL,
        "node": node("n1"),
        "peer": peer("r1", "192.0.2.1"),
        "ad": bgpad("a"),
        "svc": service("web", ingress=["198.51.100.10"]),
    }
    objs.update(overrides)
    return [o for o in objs.values() if o is not None]


SVC_LOCAL = service("web", ingress=["198.51.100.10"], externalTrafficPolicy="Local")


@pytest.mark.parametrize(
    ("overrides", "extra", "kwargs", "reason"),
    [
        ({}, [], {}, None),
        ({"ad": None}, [], {}, NotAnnouncing.NO_ADVERTISEMENT),
        (
            {"ad": bgpad("a", serviceSelectors=[{"matchLabels": {"tier": "db"}}])},
            [],
            {},
            NotAnnouncing.NO_ADVERTISEMENT,
        ),
        (
            {"ad": bgpad("a", nodeSelectors=[{"matchLabels": {"rack": "b"}}])},
            [],
            {},
            NotAnnouncing.NO_MATCHING_ADVERTISEMENT,
        ),
        ({"node": node("n1", network_unavailable=True)}, [], {}, NotAnnouncing.NETWORK_UNAVAILABLE),
        ({"node": node("n1", {EXCLUDE_LB_LABEL: ""})}, [], {}, NotAnnouncing.EXCLUDED),
        ({"node": node("n1", {EXCLUDE_LB_LABEL: ""})}, [], {"ignore_exclude_lb": True}, None),
        # ETP Local: a serving endpoint on this node, or nothing
        ({"svc": SVC_LOCAL}, [endpoint_slice("web", [("n2", True, None)])], {}, "local"),
        ({"svc": SVC_LOCAL}, [endpoint_slice("web", [("n1", False, True)])], {}, None),
        ({"svc": SVC_LOCAL}, [endpoint_slice("web", [("n1", False, False)])], {}, "local"),
        # ETP Cluster: any serving endpoint anywhere
        ({}, [endpoint_slice("web", [("n2", True, None)])], {}, None),
        ({}, [endpoint_slice("web", [("n2", False, False)])], {}, NotAnnouncing.NO_ENDPOINTS),
        # a cluster speaker: no slices at all means no endpoints
        ({}, [], {"source": InputSource.CLUSTER}, NotAnnouncing.NO_ENDPOINTS),
        # no status IP and no allocation (a speaker beside a controller)
        ({"svc": service("web")}, [], {"source": InputSource.CLUSTER}, NotAnnouncing.NO_IP),
        ({"svc": service("web")}, [], {}, None),  # static mode allocates
        # eligible, but no session on the node receives it
        (
            {"peer": peer("r1", nodeSelectors=[{"matchLabels": {"rack": "b"}}])},
            [],
            {},
            NotAnnouncing.NO_PEERS,
        ),
        ({"ad": bgpad("a", peers=["someone-else"])}, [], {}, NotAnnouncing.NO_PEERS),
        (
            {"svc": service("web", ingress=["2001:db8:1::10"])},
            [],
            {},
            NotAnnouncing.NO_PEERS,  # an IPv4 session carries no IPv6 prefix
        ),
    ],
)
def test_eligibility(
    overrides: dict[str, Any], extra: list[dict], kwargs: dict[str, Any], reason: Any
) -> None:
    st = _state(*_base(**overrides), *extra)
    p = plan_bgp(st, "n1", **kwargs)
    (sp,) = p.services
    if reason == "local":
        reason = NotAnnouncing.NO_LOCAL_ENDPOINT
    if reason is None:
        assert "n1" not in sp.node_reasons and sp.peers_of("n1") == ("r1",)
        assert [(r.peer, str(r.prefix)) for r in p.routes] == [("r1", sp.ips[0].exploded + "/32")]
    else:
        assert sp.node_reasons["n1"] is reason and p.routes == ()


def test_conflicting_local_prefs_for_one_service() -> None:
    sel = [{"matchLabels": {"app": "web"}}]
    web = service("web", ingress=["198.51.100.10"], labels={"app": "web"})
    st = _state(
        *_base(ad=bgpad("a", localPref=100, serviceSelectors=sel), svc=web),
        bgpad("b", localPref=200, serviceSelectors=sel),
    )
    (sp,) = plan_bgp(st, "n1").services
    assert sp.node_reasons["n1"] is NotAnnouncing.CONFLICTING_ADVERTISEMENTS
    # different peers: no clash
    st = _state(
        *_base(ad=bgpad("a", localPref=100, serviceSelectors=sel, peers=["r1"]), svc=web),
        bgpad("b", localPref=200, serviceSelectors=sel, peers=["r2"]),
        peer("r2", "192.0.2.2"),
    )
    p = plan_bgp(st, "n1")
    assert [(r.peer, r.local_pref) for r in p.routes] == [("r1", None), ("r2", None)]


def test_sessions_follow_peer_node_selectors() -> None:
    st = _state(
        POOL,
        node("n1", {"rack": "a"}),
        node("n2", {"rack": "b"}),
        node("n3"),
        peer("ra", "192.0.2.1", nodeSelectors=[{"matchLabels": {"rack": "a"}}]),
        peer("rb", "192.0.2.2", nodeSelectors=[{"matchLabels": {"rack": "b"}}]),
        peer("all", "192.0.2.3"),
        bgpad("a"),
        service("web", ingress=["198.51.100.10"]),
    )
    sessions = {n: [s.name for s in plan_bgp(st, n).sessions] for n in ("n1", "n2", "n3")}
    assert sessions == {"n1": ["all", "ra"], "n2": ["all", "rb"], "n3": ["all"]}
    (sp,) = explain_bgp(st, ["n1", "n2", "n3"])
    assert {n: sp.peers_of(n) for n in ("n1", "n2", "n3")} == {
        "n1": ("all", "ra"),
        "n2": ("all", "rb"),
        "n3": ("all",),
    }


def test_advertisement_peers_restrict_who_gets_a_prefix() -> None:
    st = _state(
        *_base(ad=bgpad("to-r1", peers=["r1"], communities=["1:1"])),
        peer("r2", "192.0.2.2"),
        bgpad("to-all", communities=["2:2"]),
    )
    got = {r.peer: [str(c) for c in r.communities] for r in plan_bgp(st, "n1").routes}
    assert got == {"r1": ["1:1", "2:2"], "r2": ["2:2"]}


def test_local_pref_is_sent_to_ibgp_peers_only() -> None:
    st = _state(
        *_base(ad=bgpad("a", localPref=150)),
        peer("ibgp", "192.0.2.2", asn=64512),
    )
    got = {r.peer: r.local_pref for r in plan_bgp(st, "n1").routes}
    assert got == {"r1": None, "ibgp": 150}


def test_aggregation_merges_services_into_one_route() -> None:
    st = _state(
        *_base(ad=bgpad("a", aggregationLength=24, aggregationLengthV6=120)),
        service("other", ingress=["198.51.100.77"]),
        service("six", ingress=["2001:db8:1::5"]),
        peer("r6", "2001:db8::1"),
    )
    routes = plan_bgp(st, "n1").routes
    assert [(r.peer, str(r.prefix), r.services) for r in routes] == [
        ("r1", "198.51.100.0/24", ("default/other", "default/web")),
        ("r6", "2001:db8:1::/120", ("default/six",)),
    ]


def test_local_pref_clash_between_services_on_one_prefix_is_reported() -> None:
    sel_a = [{"matchLabels": {"app": "a"}}]
    sel_b = [{"matchLabels": {"app": "b"}}]
    st = _state(
        POOL,
        node("n1"),
        peer("ibgp", "192.0.2.2", asn=64512),
        bgpad("a", localPref=100, serviceSelectors=sel_a),
        bgpad("b", localPref=200, serviceSelectors=sel_b),
        service("sa", ingress=["198.51.100.10"], labels={"app": "a"}, annotations=_SHARE),
        service("sb", ingress=["198.51.100.10"], labels={"app": "b"}, annotations=_SHARE),
    )
    p = plan_bgp(st, "n1")
    (route,) = p.routes
    assert route.local_pref == 200 and route.services == ("default/sa", "default/sb")
    (problem,) = p.problems
    assert problem.kind is BgpProblemKind.LOCAL_PREF_CONFLICT


_SHARE = {"metallb.io/allow-shared-ip": "k"}


def test_dual_stack_service_goes_to_each_family_peer_and_to_dual_stack_sessions() -> None:
    st = _state(
        POOL,
        node("n1"),
        peer("v4", "192.0.2.1"),
        peer("v6", "2001:db8::1"),
        peer("both", "192.0.2.2", dualStackAddressFamily=True),
        bgpad("a"),
        service(
            "web",
            ingress=["198.51.100.10", "2001:db8:1::10"],
            ipFamilyPolicy="RequireDualStack",
            ipFamilies=["IPv4", "IPv6"],
        ),
    )
    got = sorted((r.peer, str(r.prefix)) for r in plan_bgp(st, "n1").routes)
    assert got == [
        ("both", "198.51.100.10/32"),
        ("both", "2001:db8:1::10/128"),
        ("v4", "198.51.100.10/32"),
        ("v6", "2001:db8:1::10/128"),
    ]


def test_every_eligible_node_announces_no_election() -> None:
    st = _state(
        POOL,
        *(node(f"n{i}") for i in range(1, 5)),
        peer("r1", "192.0.2.1"),
        bgpad("a"),
        service("web", ingress=["198.51.100.10"]),
    )
    (sp,) = explain_bgp(st, ["n1", "n2", "n3", "n4"])
    assert sorted(sp.announcing) == ["n1", "n2", "n3", "n4"] and sp.bgp


def test_plan_views_and_withdrawal() -> None:
    st = _state(*_base(), service("db", ingress=["198.51.100.11"]))
    p = plan_bgp(st, "n1")
    assert p.prefixes == (ip_network("198.51.100.10/32"), ip_network("198.51.100.11/32"))
    assert dict(p.service_peers()) == {"default/db": ("r1",), "default/web": ("r1",)}
    assert len(p.routes_to("r1")) == 2
    w = p.withdrawn()
    assert w.sessions == p.sessions and w.routes == () and w.service_peers() == {}


def test_incompatible_peers_on_one_node_keep_the_first() -> None:
    a = BGPPeer.from_dict(peer("a", "192.0.2.1", routerID="10.0.0.1"))
    b = BGPPeer.from_dict(peer("b", "192.0.2.2", routerID="10.0.0.2"))
    st = ClusterState.of(bgp_peers=[b, a])
    p = plan_bgp(st, "n1")
    assert [s.name for s in p.sessions] == ["a"]
    (problem,) = p.problems
    assert problem.kind is BgpProblemKind.PEER_CONFLICT and problem.subject == "b"


def test_allocation_failure_is_explained_for_every_node() -> None:
    st = _state(*_base(svc=service("web", ingress=["203.0.113.9"])), node("n2"))
    (sp,) = explain_bgp(st, ["n1", "n2"])
    assert sp.reason is NotAnnouncing.IP_NOT_IN_POOL and not sp.bgp
    assert dict(sp.node_reasons) == dict.fromkeys(["n1", "n2"], NotAnnouncing.IP_NOT_IN_POOL)
