"""BGP mode on the wire: FRR on three lab nodes, BIRD (router1) and GoBGP (router2) judge.

The judges are independent implementations: router1's kernel FIB (filled by BIRD with
``merge paths on``) routes the remote client's traffic, ``birdc`` shows what BIRD received,
GoBGP's RIB what it received, the echo servers which node answered each flow. The nodes'
frr.conf is the lab's hand-written one (``l2agent.lab.frr_conf``), applied through the
speaker's reloader. Bounds are generous (a loaded 2-core CI machine); ``bench/`` measures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from l2agent.bgp.frr_poll import FrrStatePoller
from l2agent.lab.bgp import BgpLab
from l2agent.lab.fib import FibWatch
from l2agent.lab.frr import frr_missing
from l2agent.lab.frr_conf import LabAdvert, LabBfdProfile, LabNeighbor, LabNodeConfig, render
from l2agent.lab.netns import wait_until
from l2agent.lab.prober import flows_by_node
from l2agent.lab.routers import ROUTER_ASN, bird_missing, gobgp_missing
from l2agent.lab.topology import bgp_vip, node_address, node_index, router_address
from l2agent.metrics import BgpMetrics

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

_missing = frr_missing() or bird_missing() or gobgp_missing()
if _missing:
    pytestmark.append(pytest.mark.skip(reason=_missing))

VIP = {4: bgp_vip(0, 4), 6: bgp_vip(0, 6)}
PREFIX = {4: f"{VIP[4]}/32", 6: f"{VIP[6]}/128"}
COMMUNITY = "65000:100"
FAST = LabBfdProfile("fast", receive_ms=50, transmit_ms=50, multiplier=3)


def config(
    lab: BgpLab,
    node: str,
    *,
    adverts: bool = True,
    password: str | None = None,
) -> str:
    """router1 over IPv4 and IPv6 with BFD, router2 (GoBGP, no BFD) over IPv4."""
    r1 = [str(router_address(1, 4)), str(router_address(1, 6))]
    neighbors = [LabNeighbor(a, ROUTER_ASN, password=password, bfd_profile="fast") for a in r1]
    neighbors.append(LabNeighbor(str(router_address(2, 4)), ROUTER_ASN))
    return render(
        LabNodeConfig(
            asn=lab.node_asn,
            router_id=str(node_address(node_index(node), 4)),
            neighbors=tuple(neighbors),
            adverts=(
                (LabAdvert(PREFIX[4], communities=(COMMUNITY,)), LabAdvert(PREFIX[6]))
                if adverts
                else ()
            ),
            profiles=(FAST,),
        )
    )


def all_nodes(lab: BgpLab, version: int) -> frozenset[str]:
    return lab.node_nexthops(lab.lab.node_names, version)


def converge(lab: BgpLab, timeout: float = 30.0) -> None:
    assert lab.bird is not None and lab.gobgp is not None
    names = [p.name for p in lab.bird.peers]
    assert lab.bird.wait_established(names, timeout), lab.bird.birdc("show protocols")
    nodes4 = sorted(all_nodes(lab, 4))
    assert lab.gobgp.wait_established(nodes4, timeout), lab.gobgp.neighbor_states()
    for version in (4, 6):
        want = all_nodes(lab, version)
        assert wait_until(lambda v=version, w=want: lab.nexthops(PREFIX[v]) == w, timeout)


@pytest.fixture(scope="module")
def lab() -> Iterator[BgpLab]:
    with BgpLab(3, vips=list(VIP.values()), gobgp=True) as built:
        assert built.frr is not None
        built.start_bird(bfd=True)
        built.start_gobgp()
        for node in built.lab.node_names:
            built.frr.start(node)
        built.frr.apply_all({n: config(built, n) for n in built.lab.node_names})
        converge(built)
        yield built


def test_sessions_are_established_at_both_routers_and_on_every_node(lab: BgpLab) -> None:
    assert lab.bird is not None and lab.gobgp is not None and lab.frr is not None
    assert set(lab.bird.protocol_states().values()) == {"Established"}
    assert set(lab.gobgp.neighbor_states().values()) == {"established"}
    for node in lab.lab.node_names:
        assert lab.frr.neighbor_states(node) == dict.fromkeys(lab.peer_addresses(), "Established")


def test_frr_state_poller_and_metrics_see_what_the_routers_see(lab: BgpLab) -> None:
    assert lab.frr is not None
    d = lab.frr.dir("node1")
    poller = FrrStatePoller(d, config_dir=d, interval=0.0)

    def settled() -> bool:
        state = asyncio.run(poller.poll())
        return state.error is None and all(
            s.established and s.prefixes_sent == 1 for s in state.sessions
        )

    assert wait_until(settled, 10, interval=0.2), poller.state
    state = poller.state
    sessions = {s.address: s for s in state.sessions}
    assert set(sessions) == set(lab.peer_addresses())
    assert {p.peer for p in state.bfd_peers if p.up} == {str(router_address(1, 4)),
                                                         str(router_address(1, 6))}  # fmt: skip
    registry = CollectorRegistry()
    BgpMetrics(registry, frr_state=lambda: poller.state)
    value = registry.get_sample_value(
        "metallb_bgp_session_up", {"peer": f"{router_address(1, 6)}:179", "vrf": "default"}
    )
    assert value == 1
    # A second poll within the interval is served from the cache (no vtysh run).
    slow = FrrStatePoller(d, config_dir=d, interval=60.0)
    first = asyncio.run(slow.poll())
    assert asyncio.run(slow.poll()) is first


@pytest.mark.parametrize("version", [4, 6])
def test_one_kernel_route_with_every_announcing_node_as_nexthop(lab: BgpLab, version: int) -> None:
    routes = lab.lab.ip("router1", f"-{version}", "route", "show", "proto", "bird")
    assert routes.count(str(VIP[version])) == 1, routes  # one route, not one per node
    assert lab.nexthops(PREFIX[version]) == all_nodes(lab, version)


@pytest.mark.parametrize("version", [4, 6])
def test_flows_spread_across_every_node(lab: BgpLab, version: int) -> None:
    flows = 48
    probes = lab.echo.probes(lab.probe(str(VIP[version]), 1.5, flows=flows))  # type: ignore[union-attr]
    assert probes and all(p.replied is not None for p in probes), "a probe was lost"
    served = flows_by_node(probes)
    assert set(served) == set(lab.lab.node_names), served
    # The router hashes each 5-tuple to one node: no flow was answered by two nodes.
    assert sum(len(f) for f in served.values()) == flows, served


def test_communities_reach_bird_and_gobgp_on_every_path(lab: BgpLab) -> None:
    assert lab.bird is not None and lab.gobgp is not None
    text = lab.bird.route_all(PREFIX[4])
    assert text.count("BGP.community: (65000,100)") == 3, text
    paths = lab.gobgp.rib(4)[PREFIX[4]]
    hops = {a["nexthop"] for p in paths for a in p["attrs"] if a.get("type") == 3}
    assert hops == all_nodes(lab, 4)
    communities = [a["communities"] for p in paths for a in p["attrs"] if a.get("type") == 8]
    assert communities == [[65000 << 16 | 100]] * 3
    # The IPv6 prefix was announced without a community.
    assert "BGP.community" not in lab.bird.route_all(PREFIX[6])


def _md5_failures(lab: BgpLab) -> int:
    out = lab.lab.exec("router1", ["nstat", "-az", "TcpExtTCPMD5Failure"], check=False)
    for line in out.splitlines():
        if line.startswith("TcpExtTCPMD5Failure"):
            return int(line.split()[1])
    return 0


def test_wrong_password_keeps_the_session_down(lab: BgpLab) -> None:
    assert lab.bird is not None and lab.frr is not None
    nodes = lab.lab.node_names
    bird_peers = lab.router_peers(bfd=True, passwords={nodes[1]: "right", nodes[2]: "right"})
    try:
        lab.bird.reconfigure(bird_peers)
        lab.frr.apply_all({nodes[1]: config(lab, nodes[1], password="right"),
                           nodes[2]: config(lab, nodes[2], password="wrong")})  # fmt: skip
        assert lab.bird.wait_established([f"{nodes[1]}_v4", f"{nodes[1]}_v6"], 20)
        before = _md5_failures(lab)
        time.sleep(4.0)  # several connect retries (1 s) of the wrong-password node
        states = lab.bird.protocol_states()
        assert states[f"{nodes[2]}_v4"] != "Established", states
        assert lab.frr.neighbor_states(nodes[2])[str(router_address(1, 4))] != "Established"
        assert _md5_failures(lab) > before, "the router's kernel saw no MD5 failure"
        assert lab.nexthops(PREFIX[4]) == lab.node_nexthops(nodes[:2], 4)
    finally:
        lab.bird.reconfigure(lab.router_peers(bfd=True))
        lab.frr.apply_all({n: config(lab, n) for n in nodes[1:]})
        converge(lab)


def test_bfd_removes_a_pulled_nodes_nexthop(lab: BgpLab) -> None:
    victim = lab.lab.node_names[2]
    assert lab.frr is not None
    up = [p for p in lab.frr.show_json(victim, "show bfd peers json") if p["status"] == "up"]
    assert {p["peer"] for p in up} == {str(router_address(1, 4)), str(router_address(1, 6))}
    rest = lab.node_nexthops(lab.lab.node_names[:2], 4)
    watch = FibWatch(lab.lab, "router1")
    try:
        mark = watch.mark()
        pulled = time.monotonic()
        lab.lab.cut_link(victim)
        gone = watch.wait_for(PREFIX[4], lambda hops: hops == rest, mark, timeout=10)
        assert gone is not None, lab.nexthops(PREFIX[4])
        # 50 ms x 3 detection plus BIRD and the kernel; hold time alone (3 s) is far above.
        print(f"nexthop gone {1e3 * (gone - pulled):.0f} ms after the pull")
        assert gone - pulled < 1.0
        assert wait_until(lambda: lab.nexthops(PREFIX[6]) == lab.node_nexthops(
            lab.lab.node_names[:2], 6), 2)  # fmt: skip
    finally:
        watch.close()
        lab.lab.restore_link(victim)
    converge(lab)


def test_planned_withdraw_before_stopping_loses_no_probe(lab: BgpLab) -> None:
    assert lab.frr is not None and lab.echo is not None
    leaving = lab.lab.node_names[0]
    rest = lab.node_nexthops(lab.lab.node_names[1:], 4)
    prober = lab.probe(str(VIP[4]), 4.0, flows=32)
    try:
        time.sleep(1.0)
        lab.frr.apply(leaving, config(lab, leaving, adverts=False))  # withdraw ...
        assert wait_until(lambda: lab.nexthops(PREFIX[4]) == rest, 5)  # ... the router moved
        lab.lab.stop(lab.echo.echoes.pop(leaving))  # only then the node stops serving
        lab.frr.stop(leaving)
        probes = lab.echo.probes(prober)
    finally:
        if leaving not in lab.echo.echoes:
            lab.echo.start_echo(leaving)
        if not lab.frr.running(leaving):
            lab.frr.start(leaving)
        lab.frr.apply(leaving, config(lab, leaving))
    lost = [p for p in probes if p.replied is None]
    served = flows_by_node(probes)
    assert served.get(leaving), "the leaving node served no flow before it left"
    assert not lost, f"{len(lost)} probes lost"
    moved = served[leaving] & set().union(*(f for n, f in served.items() if n != leaving))
    assert moved == served[leaving], "every flow it served was answered by another node after"
    converge(lab)


def test_local_preference_over_ibgp_decides_the_routers_choice() -> None:
    """iBGP (the nodes in the router's AS): the higher local preference wins at BIRD, so the
    kernel route narrows to that node; equal preferences give the ECMP route back."""
    with BgpLab(2, vips=[VIP[4]], ibgp=True) as ib:
        assert ib.frr is not None
        bird = ib.start_bird(families=(4,))

        def node_config(node: str, pref: int) -> str:
            return render(
                LabNodeConfig(
                    asn=ib.node_asn,
                    router_id=str(node_address(node_index(node), 4)),
                    neighbors=(LabNeighbor(str(router_address(1, 4)), ROUTER_ASN),),
                    adverts=(LabAdvert(PREFIX[4], communities=(COMMUNITY,), local_pref=pref),),
                )
            )

        for node in ib.lab.node_names:
            ib.frr.start(node)
        ib.frr.apply_all({"node1": node_config("node1", 200), "node2": node_config("node2", 100)})
        assert bird.wait_established(["node1_v4", "node2_v4"], 30)
        # Both paths reach BIRD with their preference ...
        assert wait_until(lambda: bird.route_all(PREFIX[4]).count("BGP.local_pref") == 2, 10)
        text = bird.route_all(PREFIX[4])
        assert "BGP.local_pref: 200" in text and "BGP.local_pref: 100" in text, text
        # ... and the kernel routes through the preferred node only.
        assert ib.nexthops(PREFIX[4]) == ib.node_nexthops(["node1"], 4)
        assert text.count("BGP.community: (65000,100)") == 2
        ib.frr.apply("node2", node_config("node2", 200))
        both = ib.node_nexthops(ib.lab.node_names, 4)
        assert wait_until(lambda: ib.nexthops(PREFIX[4]) == both, 10), ib.nexthops(PREFIX[4])
