"""Election: MetalLB's worked examples (facts file §1) and its eligibility rules."""

from __future__ import annotations

import hashlib
from ipaddress import ip_address

import pytest
from _l2objects import endpoint_slice, l2ad, node, service

from l2agent.election import (
    Election,
    ElectionInput,
    NotAnnouncing,
    elect,
    hash_key,
    ip_text,
    rank,
)
from l2agent.model import EndpointSliceView, L2Advertisement, NodeView, ServiceView


@pytest.mark.parametrize(
    ("nodes", "ip", "order"),
    [
        (["iris1", "iris2"], "10.20.30.1", ["iris2", "iris1"]),
        (["iris1", "iris2"], "10.20.30.2", ["iris1", "iris2"]),
        (["iris1", "iris2"], "10.20.30.3", ["iris1", "iris2"]),
        *[(["iris1", "iris2"], f"10.20.30.{i}", ["iris2", "iris1"]) for i in range(4, 9)],
        (["node-a", "node-b", "node-c"], "10.0.0.1", ["node-b", "node-a", "node-c"]),
        (["node-a", "node-b", "node-c"], "10.0.0.2", ["node-b", "node-c", "node-a"]),
        (["node-a", "node-b", "node-c"], "fc00::1", ["node-b", "node-c", "node-a"]),
        (["node1", "node2", "node3"], "192.168.1.240", ["node3", "node1", "node2"]),
    ],
)
def test_metallb_worked_examples(nodes: list[str], ip: str, order: list[str]) -> None:
    assert list(rank(reversed(nodes), ip)) == order
    # and through elect(), with a plain service and one catch-all advertisement
    result = elect(_input(members=nodes, ip=ip))
    assert result.owner == order[0]
    assert list(result.ranked) == order


def test_hash_is_raw_sha256_digest_of_node_hash_ip() -> None:
    assert hash_key("iris1", "10.20.30.1") == hashlib.sha256(b"iris1#10.20.30.1").digest()
    assert ip_text(ip_address("FC00:0:0::1")) == "fc00::1"
    assert ip_text(ip_address("::ffff:10.0.0.1")) == "10.0.0.1"


def test_every_vip_has_one_owner_and_both_nodes_win_some() -> None:
    owners = [rank(["iris1", "iris2"], f"10.20.30.{i}")[0] for i in range(1, 256)]
    assert len(owners) == 255
    assert {"iris1", "iris2"} == set(owners)
    assert min(owners.count("iris1"), owners.count("iris2")) > 80


def _input(
    *,
    members: list[str],
    ip: str = "10.0.0.1",
    svc: dict | None = None,
    ads: list[dict] | None = None,
    nodes: list[dict] | None = None,
    slices: list[dict] | None = None,
    ignore_exclude_lb: bool = False,
) -> ElectionInput:
    return ElectionInput(
        service=ServiceView.from_dict(svc or service("web")),
        ip=ip_address(ip),
        ads=tuple(L2Advertisement.from_dict(a) for a in (ads if ads is not None else [l2ad()])),
        members=members,
        nodes={
            n["metadata"]["name"]: NodeView.from_dict(n)
            for n in (nodes if nodes is not None else [node(m) for m in members])
        },
        slices=None if slices is None else tuple(EndpointSliceView.from_dict(s) for s in slices),
        ignore_exclude_lb=ignore_exclude_lb,
    )


ABC = ["node-a", "node-b", "node-c"]


def test_network_unavailable_and_exclusion_label_drop_candidates() -> None:
    nodes = [
        node("node-a"),
        node("node-b", network_unavailable=True),
        node("node-c", {"node.kubernetes.io/exclude-from-external-load-balancers": ""}),
    ]
    result = elect(_input(members=ABC, nodes=nodes))
    assert result.owner == "node-a"
    assert result.reason_for("node-b") is NotAnnouncing.NETWORK_UNAVAILABLE
    assert result.reason_for("node-c") is NotAnnouncing.EXCLUDED
    ignoring = elect(_input(members=ABC, nodes=nodes, ignore_exclude_lb=True))
    assert ignoring.ranked == ("node-a", "node-c")


def test_node_selector_restricts_candidates() -> None:
    nodes = [node("node-a", {"edge": "yes"}), node("node-b"), node("node-c", {"edge": "yes"})]
    ads = [l2ad(nodeSelectors=[{"matchLabels": {"edge": "yes"}}])]
    result = elect(_input(members=ABC, nodes=nodes, ads=ads))
    assert result.ranked == ("node-a", "node-c")
    assert result.reason_for("node-b") is NotAnnouncing.NO_MATCHING_ADVERTISEMENT
    assert result.reason_for("node-c") is NotAnnouncing.NOT_OWNER


def test_union_of_ads_node_sets_and_service_selectors() -> None:
    nodes = [node("node-a", {"z": "1"}), node("node-b", {"z": "2"}), node("node-c")]
    ads = [
        l2ad("one", nodeSelectors=[{"matchLabels": {"z": "1"}}]),
        l2ad("two", nodeSelectors=[{"matchLabels": {"z": "2"}}]),
        l2ad(
            "other-svc",
            nodeSelectors=[{"matchLabels": {}}],
            serviceSelectors=[{"matchLabels": {"app": "other"}}],
        ),
    ]
    result = elect(_input(members=ABC, nodes=nodes, ads=ads))
    assert set(result.ranked) == {"node-a", "node-b"}
    only_other = elect(_input(members=ABC, nodes=nodes, ads=ads[2:]))
    assert only_other.owner is None
    assert only_other.reason is NotAnnouncing.NO_ADVERTISEMENT


def test_etp_local_keeps_only_nodes_with_serving_endpoints() -> None:
    svc = service("web", externalTrafficPolicy="Local")
    slices = [
        endpoint_slice(
            "web",
            [
                ("node-a", False, False),  # not ready, not serving: no
                ("node-c", False, True),  # terminating but serving: yes
                ("node-b", None, None),  # nil ready counts as ready
                (None, True, None),  # no node name: ignored for locality
            ],
        )
    ]
    result = elect(_input(members=ABC, svc=svc, slices=slices))
    assert set(result.ranked) == {"node-b", "node-c"}
    assert result.reason_for("node-a") is NotAnnouncing.NO_LOCAL_ENDPOINT
    cluster = elect(_input(members=ABC, slices=slices))
    assert set(cluster.ranked) == set(ABC)


def test_no_serving_endpoint_anywhere_means_nobody_even_for_cluster_policy() -> None:
    slices = [endpoint_slice("web", [("node-a", False, False), ("node-b", False, None)])]
    result = elect(_input(members=ABC, slices=slices))
    assert result == Election(None, (), NotAnnouncing.NO_ENDPOINTS, result.excluded)
    assert all(result.reason_for(n) is NotAnnouncing.NO_ENDPOINTS for n in ABC)
    empty = elect(_input(members=ABC, slices=[]))
    assert empty.owner is None


def test_only_live_members_are_candidates() -> None:
    nodes = [node("node-a"), node("node-b"), node("node-c")]
    result = elect(_input(members=["node-a", "node-c"], nodes=nodes))
    assert "node-b" not in result.ranked
    assert result.reason_for("node-b") is NotAnnouncing.NOT_A_MEMBER
    nobody = elect(_input(members=[], nodes=nodes))
    assert nobody.owner is None and nobody.reason is NotAnnouncing.NO_ELIGIBLE_NODE


# A member that joined the gossip but is no Node object (issue 11, item 4): the name
# "attacker-1" ranks first for 10.0.0.1 among node-a..c, yet must never win.
@pytest.mark.parametrize(
    ("members", "node_names", "owner", "reasons"),
    [
        (ABC, ABC, "node-b", {}),
        (
            [*ABC, "x-0"],
            ABC,
            None,  # filled below: the Node-object ranking without the intruder
            {"x-0": NotAnnouncing.NO_NODE_OBJECT},
        ),
        (["x-0"], ABC, None, {"x-0": NotAnnouncing.NO_NODE_OBJECT}),
        (["x-0", "node-a"], [], None, {"x-0": NotAnnouncing.NO_NODE_OBJECT}),
        (ABC, ["node-a"], "node-a", {"node-b": NotAnnouncing.NO_NODE_OBJECT}),
    ],
)
def test_a_member_without_a_node_object_is_never_elected(
    members: list[str],
    node_names: list[str],
    owner: str | None,
    reasons: dict[str, NotAnnouncing],
) -> None:
    intruder = next(
        f"x-{i}" for i in range(1000) if rank([*ABC, f"x-{i}"], "10.0.0.1")[0] == f"x-{i}"
    )
    members = [intruder if m == "x-0" else m for m in members]
    reasons = {intruder if k == "x-0" else k: v for k, v in reasons.items()}
    result = elect(_input(members=members, nodes=[node(n) for n in node_names]))
    expected = owner
    if owner is None and set(node_names) & set(members):
        expected = rank(set(node_names) & set(members), "10.0.0.1")[0]
    assert result.owner == expected
    assert intruder not in result.ranked
    for name, reason in reasons.items():
        assert result.reason_for(name) is reason


def test_shared_ip_with_service_selector_is_refused() -> None:
    svc = service("web", labels={"app": "web"}, annotations={"metallb.io/allow-shared-ip": "k"})
    ads = [l2ad(serviceSelectors=[{"matchLabels": {"app": "web"}}])]
    result = elect(_input(members=ABC, svc=svc, ads=ads))
    assert result.reason is NotAnnouncing.SHARED_IP_WITH_SERVICE_SELECTOR


def test_preference_score_beats_hash() -> None:
    nodes = [node("node-a"), node("node-b"), node("node-c", {"fast": "yes"})]
    ads = [
        l2ad(
            preferredNodeSelectors=[{"weight": 10, "preference": {"matchLabels": {"fast": "yes"}}}]
        )
    ]
    result = elect(_input(members=ABC, nodes=nodes, ads=ads))
    assert result.ranked == ("node-c", "node-b", "node-a")
    assert result.scores == {"node-c": 10}
