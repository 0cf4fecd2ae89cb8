"""BGP model: MetalLB's validation of BGPPeer, BGPAdvertisement, BFDProfile and Community,
and the checks across objects that `build_state` runs (tables, as MetalLB's config tests)."""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

import pytest
from _bgpobjects import bfd, bgpad, community, peer, secret
from _l2objects import node, pool

from l2agent.errors import ConfigError
from l2agent.model import (
    BGPAdvertisement,
    BGPPeer,
    BuildResult,
    DynamicASN,
    LabelSelector,
    build_state,
    parse_community,
)
from l2agent.model.bgp import derive_timers
from l2agent.model.community import CommunityFormatError
from l2agent.model.durations import parse_duration
from l2agent.model.problems import ProblemReason
from l2agent.model.selectors import selectors_disjoint


def errors(result: BuildResult) -> list[str]:
    """Messages of objects left out for a fault of their own (not a missing reference)."""
    return [p.message for p in result.dropped if p.reason is not ProblemReason.MISSING_REFERENCE]


def pending(result: BuildResult) -> list[str]:
    """Messages of objects waiting for a Secret, BFDProfile or Community alias."""
    return [p.message for p in result.problems if p.reason is ProblemReason.MISSING_REFERENCE]


def clean(result: BuildResult) -> bool:
    return not errors(result)


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1.5s", 1.5),
        ("1h", 3600.0),
        ("0", 0.0),
        ("0s", 0.0),
        ("+3s", 3.0),
        ("2m0.5s", 120.5),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, "x") == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["90", "-3s", "3", "s", "3x", "", 90, None, "3s " * 30])
def test_bad_go_durations(text: Any) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text, "x")


# --------------------------------------------------------------------------- timers


@pytest.mark.parametrize(
    ("hold", "keepalive", "expect"),
    [
        (None, None, (None, None)),
        (90.0, 30.0, (90.0, 30.0)),
        (90.0, None, (90.0, 30.0)),  # keepalive = hold / 3
        (None, 30.0, (90.0, 30.0)),  # hold = 3 x keepalive
        (0.0, None, (0.0, 0.0)),  # hold 0: no keepalives, no hold timer
        (3.0, None, (3.0, 1.0)),
        (3.9, 1.0, (3.9, 1.0)),
    ],
)
def test_timers_are_derived_as_metallb_does(
    hold: float | None, keepalive: float | None, expect: tuple[float | None, float | None]
) -> None:
    got = derive_timers(hold, keepalive, "p")
    assert got == pytest.approx(expect) if expect[0] is not None else got == expect


@pytest.mark.parametrize(
    ("hold", "keepalive", "message"),
    [
        (2.0, None, "must be 0 or >= 3s"),
        (None, 0.5, "must be 0 or >= 3s"),  # hold 1.5 s
        (10.0, 20.0, "must not exceed holdTime"),
        (4.0, 0.5, "under one second"),
        (70000.0, None, "at most 65535s"),
    ],
)
def test_bad_timers(hold: float | None, keepalive: float | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        derive_timers(hold, keepalive, "p")


# --------------------------------------------------------------------------- BGPPeer


def test_peer_v1beta2_every_field() -> None:
    p = BGPPeer.from_dict(
        peer(
            "r1",
            "2001:db8::1",
            my_asn=64512,
            asn=64512,
            sourceAddress="2001:db8::10",
            peerPort=1179,
            holdTime="9s",
            connectTime="5s",
            routerID="192.0.2.10",
            nodeSelectors=[{"matchLabels": {"rack": "a"}}],
            password="s3cret",
            bfdProfile="fast",
            enableGracefulRestart=True,
            vrf="red",
            dualStackAddressFamily=True,
        )
    )
    assert p.is_ibgp and p.remote_as == "64512"
    assert p.hold_time == 9 and p.keepalive_time == 3
    assert p.connect_time == 5 and p.port == 1179
    assert p.source_address == ip_address("2001:db8::10")
    assert str(p.router_id) == "192.0.2.10"
    assert p.families == {4, 6}
    assert p.peer_id == "2001:db8::1-red"
    assert p.selects_node({"rack": "a"}) and not p.selects_node({"rack": "b"})
    assert p.password is not None and p.password.reveal() == "s3cret"
    assert p.enable_graceful_restart and p.bfd_profile == "fast"


def test_peer_v1beta1_reads_the_same() -> None:
    v1 = BGPPeer.from_dict(peer("r1", version="v1beta1", holdTime="90s", keepaliveTime="30s"))
    v2 = BGPPeer.from_dict(peer("r1", version="v1beta2", holdTime="90s", keepaliveTime="30s"))
    assert v1 == v2
    assert v1.port == 179 and not v1.is_ibgp and v1.families == {4}
    assert BGPPeer.from_dict(peer("r1", version="v1beta1", peerPort=0)).port == 179


def test_peer_dynamic_asn_and_unnumbered() -> None:
    p = BGPPeer.from_dict(
        peer("r1", "", asn=0, dynamicASN="external", interface="eth1", localASN=65000)
    )
    assert p.local_asn == 65000
    assert p.dynamic_asn is DynamicASN.EXTERNAL and p.remote_as == "external"
    assert p.peer_id == "eth1" and p.families == {4, 6} and not p.is_ibgp
    internal = BGPPeer.from_dict(peer("r2", asn=0, dynamicASN="internal"))
    assert internal.is_ibgp


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"myASN": 0}, "missing local ASN"),
        ({"peerASN": 0}, "missing peer ASN"),
        ({"dynamicASN": "internal"}, "both peerASN and dynamicASN"),
        ({"dynamicASN": "sideways", "peerASN": 0}, "invalid dynamicASN"),
        ({"peerAddress": ""}, "neither peerAddress nor interface"),
        ({"interface": "eth0"}, "both peerAddress and interface"),
        ({"peerAddress": "10.0.0.300"}, "not an IP address"),
        ({"sourceAddress": "nope"}, "not an IP address"),
        ({"routerID": "2001:db8::1"}, "not an IPv4 address"),
        ({"peerASN": 64512, "ebgpMultiHop": True}, "ebgpMultiHop is set for an iBGP peer"),
        ({"peerPort": -1}, "peerPort"),
        ({"peerPort": 20000}, "peerPort"),
        ({"holdTime": "1s"}, "must be 0 or >= 3s"),
        ({"holdTime": 90}, "duration string"),
        ({"connectTime": "1.5s"}, "connectTime"),
        ({"connectTime": "0s"}, "connectTime"),
        ({"password": "a b"}, "printable ASCII"),
        ({"password": "x" * 81}, "longer than 80"),
        ({"password": "pw", "passwordSecret": {"name": "s"}}, "both password and passwordSecret"),
        ({"nodeSelectors": [{"matchLabels": {"a": "b"}}] * 2}, "duplicate selector"),
        ({"myASN": 2**32}, "myASN"),
        ({"peerASN": 64512, "localASN": 65000}, "localASN is only for eBGP"),
    ],
)
def test_peer_validation(spec: dict[str, Any], message: str) -> None:
    obj = peer("r1")
    obj["spec"].update(spec)
    with pytest.raises(ConfigError, match=message):
        BGPPeer.from_dict(obj)


def test_passwords_never_show_in_repr_or_errors() -> None:
    p = BGPPeer.from_dict(peer("r1", password="hunter2hunter2"))
    assert "hunter2" not in repr(p) and "hunter2" not in str(p.password)
    obj = peer("r1", password="hunter2 hunter2")
    with pytest.raises(ConfigError) as exc:
        BGPPeer.from_dict(obj)
    assert "hunter2" not in str(exc.value)
    result = build_state([peer("r1", passwordSecret={"name": "s"}), secret("s", "bad pass!")])
    assert errors(result) and not any("bad pass" in e for e in errors(result))
    assert "hunter2" not in repr(build_state([peer("r1", password="hunter2hunter2")]).state)


# --------------------------------------------------------------------------- communities


@pytest.mark.parametrize(
    ("text", "rendered", "large"),
    [
        ("65000:100", "65000:100", False),
        ("0:0", "0:0", False),
        ("65535:65281", "65535:65281", False),
        ("large:1:2:3", "1:2:3", True),
        ("large:4294967295:0:4294967295", "4294967295:0:4294967295", True),
    ],
)
def test_community_values(text: str, rendered: str, large: bool) -> None:
    c = parse_community(text)
    assert str(c) == rendered and c.is_large is large and c.spec_text == text


@pytest.mark.parametrize(
    ("text", "format_error"),
    [
        ("65536:1", False),
        ("a:1", False),
        ("-1:1", False),
        ("big:1:2:3", False),
        ("large:1:2:4294967296", False),
        ("high-priority", True),
        ("1:2:3", True),
        ("", True),
    ],
)
def test_bad_communities(text: str, format_error: bool) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_community(text)
    assert isinstance(exc.value, CommunityFormatError) is format_error


def test_communities_sort_as_metallb_less_than() -> None:
    texts = ["large:1:0:0", "1:1", "0:5", "large:0:0:1", "65535:65281"]
    got = sorted((parse_community(t) for t in texts), key=lambda c: c.sort_key)
    # standard A:B sorts as large (A<<16|B):0:0
    assert [c.spec_text for c in got] == [
        "large:0:0:1",
        "large:1:0:0",
        "0:5",
        "1:1",
        "65535:65281",
    ]


def test_advertisement_resolves_aliases_and_values() -> None:
    result = build_state(
        [
            pool("p", "192.0.2.0/24"),
            community("c", **{"high-priority": "65000:100", "big": "large:1:2:3"}),
            bgpad("a", communities=["high-priority", "65000:200", "big"], localPref=50),
        ]
    )
    assert result.ok
    (ad,) = result.state.bgp_advertisements
    assert [c.spec_text for c in ad.communities] == ["large:1:2:3", "65000:100", "65000:200"]
    assert ad.local_pref == 50


def test_unknown_alias_is_pending_and_bad_value_is_an_error() -> None:
    result = build_state(
        [bgpad("a", communities=["missing-alias"]), bgpad("b", communities=["1:x"])]
    )
    assert pending(result) == [
        "BGPAdvertisement a: community 'missing-alias': invalid community format "
        "'missing-alias' (expected A:B, large:A:B:C or a Community alias); "
        "advertisement not used yet",
    ]
    assert len(errors(result)) == 1 and "BGPAdvertisement b" in errors(result)[0]
    assert result.state.bgp_advertisements == ()


def test_duplicate_alias_across_community_objects_drops_the_later_object() -> None:
    result = build_state([community("a", x="1:1"), community("b", x="2:2", y="3:3")])
    assert [c.name for c in result.state.communities] == ["a"]
    assert "duplicate definition of community 'x'" in errors(result)[0]


# --------------------------------------------------------------------------- BGPAdvertisement


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"aggregationLength": 33}, "aggregationLength"),
        ({"aggregationLength": 0}, "aggregationLength"),
        ({"aggregationLengthV6": 129}, "aggregationLengthV6"),
        (
            {"aggregationLength": 24, "serviceSelectors": [{"matchLabels": {"a": "b"}}]},
            "mutually exclusive",
        ),
        ({"peers": ["a", "a"]}, "duplicate entry"),
        ({"ipAddressPools": ["a", "a"]}, "duplicate entry"),
        ({"communities": ["1:1", "1:1"]}, "duplicate entry"),
        ({"communities": [f"1:{i}" for i in range(64)]}, "at most 63"),
        ({"localPref": -1}, "localPref"),
    ],
)
def test_advertisement_validation(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BGPAdvertisement.from_dict(bgpad("a", **spec))


def test_advertisement_defaults() -> None:
    ad = BGPAdvertisement.from_dict(bgpad("a"))
    assert (ad.aggregation_length, ad.aggregation_length_v6, ad.local_pref) == (32, 128, None)
    assert ad.matches_peer("anyone") and ad.applies_to_pool("p", {})
    assert ad.selects_node({}) and ad.matches_service({})


@pytest.mark.parametrize(
    ("addresses", "spec", "ok"),
    [
        (["192.0.2.0/24"], {"aggregationLength": 24}, True),
        (["192.0.2.0/24"], {"aggregationLength": 16}, False),
        (["192.0.2.0/24"], {"aggregationLength": 32}, True),
        # a range is summarised: 150/31 152/29 160/27 192/29 200/32; widest /27
        (["192.0.2.150-192.0.2.200"], {"aggregationLength": 27}, True),
        (["192.0.2.150-192.0.2.200"], {"aggregationLength": 26}, False),
        (["2001:db8::/64"], {"aggregationLengthV6": 64}, True),
        (["2001:db8::/64"], {"aggregationLengthV6": 48}, False),
        (["2001:db8::/64"], {"aggregationLength": 8}, True),  # v4 length, v6-only pool
    ],
)
def test_aggregation_length_against_pool_cidrs(
    addresses: list[str], spec: dict[str, Any], ok: bool
) -> None:
    result = build_state([pool("p", *addresses), bgpad("a", **spec)])
    assert bool(result.state.bgp_advertisements) is ok
    assert result.ok is ok


# --------------------------------------------------------------------------- BFDProfile


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("receiveInterval", 10, True),
        ("receiveInterval", 9, False),
        ("transmitInterval", 60000, True),
        ("transmitInterval", 60001, False),
        ("detectMultiplier", 2, True),
        ("detectMultiplier", 256, False),
        ("echoInterval", 10, True),
        ("minimumTtl", 254, True),
        ("minimumTtl", 255, False),
        ("echoMode", "yes", False),
    ],
)
def test_bfd_profile_ranges(field: str, value: Any, ok: bool) -> None:
    result = build_state([bfd("b", **{field: value})])
    assert result.ok is ok and len(result.state.bfd_profiles) == int(ok)


# --------------------------------------------------------------------------- across objects


def test_password_secret_is_resolved_from_basic_auth_secrets() -> None:
    result = build_state(
        [
            peer("a", passwordSecret={"name": "s1"}),
            peer("b", "192.0.2.2", passwordSecret={"name": "s2", "key": "password"}),
            secret("s1", "from-data"),
            secret("s2", "from-string-data", string_data=True),
        ]
    )
    assert result.ok
    got = {p.name: p.password.reveal() for p in result.state.bgp_peers if p.password}
    assert got == {"a": "from-data", "b": "from-string-data"}


@pytest.mark.parametrize(
    ("objects", "waiting", "error"),
    [
        ([], "passwordSecret metallb-system/s not found", None),
        ([secret("s", "pw", type="Opaque")], None, "secret type mismatch"),
        ([secret("s", None)], None, "password not specified"),
        ([{**secret("s", None), "data": {"password": "!!"}}], None, "not valid base64"),
    ],
)
def test_password_secret_problems(
    objects: list[dict], waiting: str | None, error: str | None
) -> None:
    result = build_state([peer("a", passwordSecret={"name": "s"}), *objects])
    assert result.state.bgp_peers == ()
    if waiting:
        assert waiting in pending(result)[0] and clean(result)
    if error:
        assert error in errors(result)[0]


def test_peer_key_other_than_password_is_refused() -> None:
    result = build_state([peer("a", passwordSecret={"name": "s", "key": "pw"}), secret("s", "x")])
    assert "MetalLB reads 'password'" in errors(result)[0]


def test_missing_bfd_profile_is_pending() -> None:
    result = build_state([peer("a", bfdProfile="fast")])
    assert clean(result) and result.state.bgp_peers == ()
    assert "non existing BFDProfile fast" in pending(result)[0]
    result = build_state([peer("a", bfdProfile="fast"), bfd("fast")])
    assert [p.name for p in result.state.bgp_peers] == ["a"]


ROLE_A = [{"matchLabels": {"role": "a"}}]
ROLE_B = [{"matchLabels": {"role": "b"}}]


@pytest.mark.parametrize(
    ("a", "b", "nodes", "clash"),
    [
        # same router ID is required on a shared node
        ({"routerID": "10.0.0.1"}, {"routerID": "10.0.0.2"}, [], "routerID"),
        ({"routerID": "10.0.0.1"}, {"routerID": "10.0.0.1"}, [], None),
        # provably disjoint node selectors: never on one node (the seed guide's two routers)
        (
            {"routerID": "10.0.0.1", "nodeSelectors": ROLE_A},
            {"routerID": "10.0.0.2", "nodeSelectors": ROLE_B},
            [],
            None,
        ),
        # with Node objects, what counts is whether one node is selected by both
        (
            {"routerID": "10.0.0.1", "nodeSelectors": ROLE_A},
            {"routerID": "10.0.0.2", "nodeSelectors": [{"matchLabels": {"zone": "z"}}]},
            [node("n1", {"role": "a"}), node("n2", {"zone": "z"})],
            None,
        ),
        (
            {"routerID": "10.0.0.1", "nodeSelectors": ROLE_A},
            {"routerID": "10.0.0.2", "nodeSelectors": [{"matchLabels": {"zone": "z"}}]},
            [node("n1", {"role": "a", "zone": "z"})],
            "routerID",
        ),
        ({"myASN": 64512}, {"myASN": 64600}, [], "myASN"),
        ({"myASN": 64512}, {"myASN": 64600, "vrf": "red"}, [], None),
        ({"peerAddress": "192.0.2.9"}, {"peerAddress": "192.0.2.9"}, [], "already configured"),
        ({"peerAddress": "192.0.2.9"}, {"peerAddress": "192.0.2.9", "vrf": "red"}, [], None),
    ],
)
def test_peers_sharing_a_node_must_fit_one_frr(
    a: dict[str, Any], b: dict[str, Any], nodes: list[dict], clash: str | None
) -> None:
    pa, pb = peer("a", "192.0.2.1"), peer("b", "192.0.2.2")
    pa["spec"].update(a)
    pb["spec"].update(b)
    result = build_state([pb, pa, *nodes])  # input order does not matter: names decide
    names = [p.name for p in result.state.bgp_peers]
    if clash is None:
        assert result.ok and names == ["a", "b"]
    else:
        (problem,) = result.dropped
        assert problem.reason is ProblemReason.CONFLICT and problem.name == "b"
        assert names == ["a"] and clash in problem.message


@pytest.mark.parametrize(
    ("a", "b", "disjoint"),
    [
        ([{"matchLabels": {"k": "1"}}], [{"matchLabels": {"k": "2"}}], True),
        ([{"matchLabels": {"k": "1"}}], [{"matchLabels": {"j": "2"}}], False),
        ([], [{"matchLabels": {"k": "2"}}], False),
        (
            [{"matchExpressions": [{"key": "k", "operator": "In", "values": ["1", "2"]}]}],
            [{"matchExpressions": [{"key": "k", "operator": "In", "values": ["3"]}]}],
            True,
        ),
        (
            [{"matchLabels": {"k": "1"}}],
            [{"matchExpressions": [{"key": "k", "operator": "NotIn", "values": ["1"]}]}],
            True,
        ),
        (
            [{"matchExpressions": [{"key": "k", "operator": "Exists"}]}],
            [{"matchExpressions": [{"key": "k", "operator": "DoesNotExist"}]}],
            True,
        ),
        (
            [{"matchExpressions": [{"key": "k", "operator": "NotIn", "values": ["1"]}]}],
            [{"matchExpressions": [{"key": "k", "operator": "DoesNotExist"}]}],
            False,
        ),
        # an OR list is disjoint only if every pair is
        (
            [{"matchLabels": {"k": "1"}}, {"matchLabels": {"j": "1"}}],
            [{"matchLabels": {"k": "2"}}],
            False,
        ),
    ],
)
def test_selectors_disjoint(a: list[dict], b: list[dict], disjoint: bool) -> None:
    sa = tuple(LabelSelector.from_dict(x) for x in a)
    sb = tuple(LabelSelector.from_dict(x) for x in b)
    assert selectors_disjoint(sa, sb) is disjoint
    assert selectors_disjoint(sb, sa) is disjoint


@pytest.mark.parametrize(
    ("a", "b", "nodes", "ok"),
    [
        ({"localPref": 100}, {"localPref": 100}, [node("n")], True),
        ({"localPref": 100}, {"localPref": 200}, [node("n")], False),
        # MetalLB compares selected Node objects: with none known, nothing clashes
        ({"localPref": 100}, {"localPref": 200}, [], True),
        ({"localPref": 100}, {"localPref": 200, "aggregationLength": 28}, [node("n")], True),
        ({"localPref": 100, "peers": ["x"]}, {"localPref": 200, "peers": ["y"]}, [node("n")], True),
        (
            {"localPref": 100, "peers": ["x"]},
            {"localPref": 200, "peers": ["x"]},
            [node("n")],
            False,
        ),
        (
            {"localPref": 100, "nodeSelectors": ROLE_A},
            {"localPref": 200, "nodeSelectors": ROLE_B},
            [node("n1", {"role": "a"}), node("n2", {"role": "b"})],
            True,
        ),
        (
            {"localPref": 100},
            {"localPref": 200, "serviceSelectors": [{"matchLabels": {"x": "y"}}]},
            [node("n")],
            True,  # checked per service by the planner instead
        ),
    ],
)
def test_local_pref_clash_within_a_pool(
    a: dict[str, Any], b: dict[str, Any], nodes: list[dict], ok: bool
) -> None:
    result = build_state([pool("p", "192.0.2.0/24"), bgpad("a", **a), bgpad("b", **b), *nodes])
    assert result.ok is ok
    assert [x.name for x in result.state.bgp_advertisements] == (["a", "b"] if ok else ["a"])


def test_bfd_echo_toward_an_ipv6_pool_is_refused() -> None:
    objs = [
        pool("v6", "2001:db8::/120"),
        pool("v4", "192.0.2.0/24"),
        bfd("echo", echoMode=True),
        peer("r", bfdProfile="echo"),
    ]
    bad = build_state([*objs, bgpad("all")])
    assert "BFD echo mode" in errors(bad)[0] and bad.state.bgp_advertisements == ()
    fine = build_state([*objs, bgpad("v4only", ipAddressPools=["v4"])])
    assert fine.ok and len(fine.state.bgp_advertisements) == 1
    other_peer = build_state([*objs, bgpad("all", peers=["someone-else"])])
    assert other_peer.ok
