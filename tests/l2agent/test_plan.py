"""plan(): announcements per node, interface unions, static-mode IP sources, agreement."""

from __future__ import annotations

import contextlib
import io
import json
import random
from ipaddress import ip_address
from pathlib import Path

import jsonschema
from _l2objects import endpoint_slice, l2ad, node, pool, service, state

from l2agent import cli
from l2agent.election import NotAnnouncing, rank
from l2agent.model import ALL_INTERFACES, InterfaceSelection
from l2agent.plan import InputSource, plan
from l2agent.static import demo_config_text

NODES = [node("node-1"), node("node-2"), node("node-3")]
MEMBERS = ["node-1", "node-2", "node-3"]


def test_owner_announces_all_ips_of_a_dual_stack_service() -> None:
    st = state(
        pool("p", "192.0.2.200-192.0.2.220", "2001:db8::200-2001:db8::220"),
        l2ad(),
        *NODES,
        service("dual", ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4", "IPv6"]),
    )
    owner = rank(MEMBERS, "192.0.2.200")[0]
    for me in MEMBERS:
        p = plan(st, MEMBERS, me)
        sp = p.service("default/dual")
        assert sp is not None and sp.owner == owner
        assert [str(i) for i in sp.ips] == ["192.0.2.200", "2001:db8::200"]
        if me == owner:
            assert p.announcements == {
                ip_address("192.0.2.200"): ALL_INTERFACES,
                ip_address("2001:db8::200"): ALL_INTERFACES,
            }
        else:
            assert p.announcements == {}
            assert sp.node_reasons[me] is NotAnnouncing.NOT_OWNER


def test_interfaces_union_over_ads_that_include_the_owner() -> None:
    # MetalLB docs example: ad A (all pools, eno1) + ad B (pool1, hostB only, ens18)
    nodes = [node("hostA"), node("hostB", {"host": "b"})]
    st_objs = [
        pool("pool1", "192.0.2.0/28"),
        l2ad("a", interfaces=["eno1"]),
        l2ad(
            "b",
            ipAddressPools=["pool1"],
            nodeSelectors=[{"matchLabels": {"host": "b"}}],
            interfaces=["ens18"],
        ),
        *nodes,
    ]
    # find IPs owned by each host
    by_owner: dict[str, str] = {}
    for last in range(16):
        ip = f"192.0.2.{last}"
        by_owner.setdefault(rank(["hostA", "hostB"], ip)[0], ip)
    for owner, ip in by_owner.items():
        st = state(*st_objs, service("s", loadBalancerIP=ip))
        p = plan(st, ["hostA", "hostB"], owner)
        expected = {"eno1", "ens18"} if owner == "hostB" else {"eno1"}
        assert p.announcements == {ip_address(ip): InterfaceSelection(False, frozenset(expected))}


def test_all_interfaces_ad_wins() -> None:
    st = state(
        pool("p", "192.0.2.0/28"),
        l2ad("a", interfaces=["eth0"]),
        l2ad("b"),
        *NODES,
        service("s"),
    )
    sp = plan(st, MEMBERS, "x").services[0]
    assert sp.interfaces == ALL_INTERFACES


def test_ip_sources_status_then_request_then_allocator() -> None:
    st = state(
        pool("p", "192.0.2.0/28"),
        l2ad(),
        *NODES,
        service("a-status", ingress=["192.0.2.9"]),
        service("b-annot", annotations={"metallb.io/loadBalancerIPs": "192.0.2.5"}),
        service("c-spec", loadBalancerIP="192.0.2.6"),
        service("d-auto"),
        service("e-outside", ingress=["198.51.100.1"]),
    )
    got = {sp.name: [str(i) for i in sp.ips] for sp in plan(st, MEMBERS, "node-1").services}
    assert got == {
        "a-status": ["192.0.2.9"],
        "b-annot": ["192.0.2.5"],
        "c-spec": ["192.0.2.6"],
        "d-auto": ["192.0.2.0"],
        "e-outside": ["198.51.100.1"],
    }
    outside = plan(st, MEMBERS, "node-1").service("default/e-outside")
    assert outside is not None and outside.reason is NotAnnouncing.IP_NOT_IN_POOL
    assert outside.owner is None and outside.error


def test_cluster_speaker_mode_needs_status_and_slices() -> None:
    st = state(pool("p", "192.0.2.0/28"), l2ad(), *NODES, service("s"))
    static = plan(st, MEMBERS, "node-1").services[0]
    assert static.owner is not None
    kube = plan(st, MEMBERS, "node-1", source=InputSource.CLUSTER).services[0]
    assert kube.reason is NotAnnouncing.NO_IP
    with_status = state(
        pool("p", "192.0.2.0/28"), l2ad(), *NODES, service("s", ingress=["192.0.2.3"])
    )
    no_slices = plan(with_status, MEMBERS, "node-1", source=InputSource.CLUSTER).services[0]
    assert no_slices.reason is NotAnnouncing.NO_ENDPOINTS


def test_allocation_error_and_no_advertisement_are_explained() -> None:
    st = state(
        pool("p", "192.0.2.0/28"),
        *NODES,
        service("bad", loadBalancerIP="192.0.2.1", annotations={"metallb.io/loadBalancerIPs": "x"}),
        service("unadvertised"),
    )
    p = plan(st, MEMBERS, "node-1")
    bad = p.service("default/bad")
    assert bad is not None and bad.reason is NotAnnouncing.ALLOCATION_FAILED
    assert bad.error and "can not have both" in bad.error
    un = p.service("default/unadvertised")
    assert un is not None and un.reason is NotAnnouncing.NO_ADVERTISEMENT and un.ips


def test_shared_ip_lands_on_one_node_with_union() -> None:
    shared = {"metallb.io/allow-shared-ip": "dns", "metallb.io/loadBalancerIPs": "192.0.2.53"}
    st = state(
        pool("p", "192.0.2.0/26"),
        l2ad(),
        *NODES,
        service("dns-tcp", annotations=shared, ports=[("TCP", 53)]),
        service("dns-udp", annotations=shared, ports=[("UDP", 53)]),
    )
    plans = [plan(st, MEMBERS, me) for me in MEMBERS]
    owners = [me for me, p in zip(MEMBERS, plans, strict=True) if p.announcements]
    assert len(owners) == 1
    assert {sp.owner for sp in plans[0].services} == {owners[0]}


def test_n_simulated_speakers_agree_on_exactly_one_owner_per_ip() -> None:
    """Each speaker computes its own plan from the same inputs; every IP has one announcer."""
    rng = random.Random(20261125)
    names = [f"node-{i:02d}" for i in range(12)]
    nodes = [
        node(
            n,
            {"zone": rng.choice(["a", "b"])},
            network_unavailable=(i == 3),
        )
        for i, n in enumerate(names)
    ]
    services = []
    for i in range(40):
        etp = "Local" if i % 4 == 0 else "Cluster"
        services.append(
            service(f"svc-{i:02d}", externalTrafficPolicy=etp, selector={"app": str(i)})
        )
    slices = [
        endpoint_slice(f"svc-{i:02d}", [(rng.choice(names), True, None)]) for i in range(0, 40, 4)
    ]
    objs = [
        pool("v4", "192.0.2.0/26"),
        pool(
            "v6",
            "2001:db8::/120",
            serviceAllocation={"priority": 1, "serviceSelectors": [{"matchLabels": {"v6": "yes"}}]},
        ),
        l2ad("zone-a", nodeSelectors=[{"matchLabels": {"zone": "a"}}]),
        l2ad("all-v6", ipAddressPools=["v6"]),
        *nodes,
        *services,
        *slices,
        service("six", labels={"v6": "yes"}, ipFamilies=["IPv6"]),
    ]
    members = [n for n in names if n != "node-07"]  # one node is down
    st = state(*objs)
    rng.shuffle(objs)
    st_shuffled = state(*objs)  # each speaker may read its inputs in another order
    plans = [plan(st if i % 2 else st_shuffled, members, me) for i, me in enumerate(members)]
    announcers: dict[object, list[str]] = {}
    for p in plans:
        for ip in p.announcements:
            announcers.setdefault(ip, []).append(p.me)
    expected = {ip for sp in plans[0].services if sp.owner for ip in sp.ips}
    assert set(announcers) == expected
    assert all(len(v) == 1 for v in announcers.values()), announcers
    assert len(expected) > 20
    for p in plans[1:]:
        assert p.services == plans[0].services
    assert all(p.me not in ("node-03", "node-07") for p in plans if p.announcements)


# -- `l2agent plan` output -------------------------------------------------------------------

PLAN_SCHEMA = {
    "type": "object",
    "required": ["services", "errors"],
    "properties": {
        "errors": {"type": "array", "items": {"type": "string"}},
        "services": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["namespace", "name", "ips", "pool", "owner", "candidates", "error"],
                "properties": {
                    "namespace": {"type": "string"},
                    "name": {"type": "string"},
                    "ips": {"type": "array", "items": {"type": "string"}},
                    "pool": {"type": ["string", "null"]},
                    "owner": {"type": ["string", "null"]},
                    "candidates": {"type": "array", "items": {"type": "string"}},
                    "error": {"type": ["string", "null"]},
                },
            },
        },
    },
}


def _run(tmp_path: Path, text: str, *argv: str) -> tuple[int, str, str]:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(["plan", "--config", str(cfg), *argv])
    return rc, out.getvalue(), err.getvalue()


def test_plan_json_on_the_demo_config(tmp_path: Path) -> None:
    rc, out, _ = _run(tmp_path, demo_config_text(), "--output", "json")
    assert rc == 0
    doc = json.loads(out)
    jsonschema.validate(doc, PLAN_SCHEMA)
    assert doc["errors"] == []
    by_name = {s["name"]: s for s in doc["services"]}
    assert by_name["echo"]["ips"] == ["192.0.2.200", "2001:db8::200"]
    assert by_name["echo"]["owner"] == rank(["node1", "node2", "node3"], "192.0.2.200")[0]
    assert by_name["echo-v4"]["ips"] == ["192.0.2.201"]
    assert by_name["echo-v4"]["candidates"] == list(
        rank(["node1", "node2", "node3"], "192.0.2.201")
    )
    owner = by_name["echo"]["owner"]
    assert owner not in by_name["echo"]["not_announcing"]
    assert set(by_name["echo"]["not_announcing"].values()) == {"notOwner"}


def test_plan_members_flag_and_table(tmp_path: Path) -> None:
    rc, out, _ = _run(tmp_path, demo_config_text(), "--members", "node1, node3")
    assert rc == 0
    assert "members (--members): node1, node3" in out
    assert "node2=notAMember" in out
    assert out.splitlines()[0].split() == [
        "SERVICE",
        "IPS",
        "POOL",
        "OWNER",
        "CANDIDATES",
        "STATUS",
    ]


def test_plan_exit_status_on_invalid_input(tmp_path: Path) -> None:
    bad = demo_config_text() + (
        "---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: clash}\n"
        "spec: {addresses: [192.0.2.192/27]}\n"
        "---\napiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r1}\nspec: {}\n"
    )
    rc, out, _ = _run(tmp_path, bad, "--output", "json")
    assert rc == 1
    doc = json.loads(out)
    assert any("overlaps" in e for e in doc["errors"])
    assert any("BGPPeer r1: missing local ASN" in e for e in doc["errors"])
    rc, _, err = _run(tmp_path, "kind: Node\nmetadata: {name: [x\n")
    assert rc == 2 and "cfg.yaml:" in err


def test_plan_reports_allocation_errors(tmp_path: Path) -> None:
    text = demo_config_text() + (
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: both\n  annotations:\n"
        "    metallb.io/loadBalancerIPs: 192.0.2.210\nspec:\n  type: LoadBalancer\n"
        "  loadBalancerIP: 192.0.2.211\n"
    )
    rc, out, _ = _run(tmp_path, text)
    assert rc == 1
    assert "default/both" in out and "allocationFailed: service can not have both" in out
