"""`l2agent speaker` processes in BGP mode under traffic: peer node selectors judged by GoBGP,
SIGTERM of a speaker judged by the remote client's flows (no probe lost) and BIRD (the path
withdrawn while the session stays up, the kernel route narrowed).

Three nodes with FRR, BIRD on router1 (BFD 50 ms x 3), GoBGP on router2, configured only by
MetalLB YAML (``l2agent.lab.bgp_cluster``) that the speakers read in static mode.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from l2agent.lab.bgp import BgpLab
from l2agent.lab.bgp_cluster import (
    LabPeer,
    LabService,
    advertisement,
    bfd_profile,
    cluster_objects,
    dual_stack,
    router_peers,
    to_yaml,
)
from l2agent.lab.frr import frr_missing
from l2agent.lab.netns import wait_until
from l2agent.lab.prober import flows_by_node
from l2agent.lab.routers import ROUTER_ASN, bird_missing, gobgp_missing
from l2agent.lab.speakers import LabSpeakers
from l2agent.lab.topology import router_address

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

_missing = frr_missing() or bird_missing() or gobgp_missing()
if _missing:
    pytestmark.append(pytest.mark.skip(reason=_missing))

NODES = ("node1", "node2", "node3")
VIP = dual_stack(0)
PREFIX4 = f"{VIP[0]}/32"
GOBGP_NODES = ("node1", "node2")
"""Nodes labelled for the router2 BGPPeer's nodeSelectors."""


def cluster_yaml() -> str:
    peers = [
        *router_peers(64512, ROUTER_ASN, bfd="fast"),
        LabPeer("router2", router_address(2, 4), ROUTER_ASN, 64512,
                node_selector={"lab/router2": "yes"}),
    ]  # fmt: skip
    return to_yaml(
        cluster_objects(
            NODES,
            peers,
            [LabService("echo", VIP)],
            extra=[bfd_profile("fast", 50)],
            advertisements=[advertisement(communities=["65000:100"])],
            node_labels={n: {"lab/router2": "yes"} for n in GOBGP_NODES},
        )
    )


@pytest.fixture(scope="module")
def bgp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BgpLab, LabSpeakers]]:
    with BgpLab(len(NODES), vips=list(VIP), gobgp=True) as lab:
        assert lab.frr is not None and lab.echo is not None
        lab.start_bird(bfd=True)
        lab.start_gobgp()
        lab.start_frr()
        config = lab.workdir / "cluster.yaml"
        config.write_text(cluster_yaml())
        speakers = LabSpeakers(lab.lab, config, gossip=False, frr_dir=lab.frr.dir,
                               workdir=tmp_path_factory.mktemp("speakers"))  # fmt: skip
        speakers.echoes = lab.echo.echoes  # the lab's echo servers, one per node
        try:
            for node in NODES:
                speakers.start(node)
            assert lab.bird is not None
            names = [p.name for p in lab.bird.peers]
            assert lab.bird.wait_established(names, 60), lab.bird.birdc("show protocols")
            every = lab.node_nexthops(NODES, 4)
            assert wait_until(lambda: lab.nexthops(PREFIX4) == every, 30), _logs(speakers)
            yield lab, speakers
        finally:
            for proc in speakers.speakers.values():
                lab.lab.stop(proc)
            speakers.speakers.clear()


def _logs(speakers: LabSpeakers) -> str:
    return "\n".join(f"--- {n}\n{speakers.log_text(n)[-2000:]}" for n in NODES)


def test_peer_node_selectors_decide_where_sessions_exist(
    bgp: tuple[BgpLab, LabSpeakers],
) -> None:
    lab, _speakers = bgp
    assert lab.gobgp is not None and lab.frr is not None
    want = lab.node_nexthops(GOBGP_NODES, 4)
    assert lab.gobgp.wait_established(sorted(want), 30), lab.gobgp.neighbor_states()
    states = lab.gobgp.neighbor_states()
    assert states[str(lab.lab.nodes["node3"].ipv4)] != "established", states
    assert str(router_address(2, 4)) not in lab.frr.neighbor_states("node3")

    def hops() -> set[str]:
        assert lab.gobgp is not None
        paths = lab.gobgp.rib(4).get(PREFIX4, [])
        return {a["nexthop"] for p in paths for a in p["attrs"] if a.get("type") == 3}

    assert wait_until(lambda: hops() == want, 10), hops()


def test_sigterm_of_a_speaker_loses_no_probe_of_any_flow(
    bgp: tuple[BgpLab, LabSpeakers],
) -> None:
    lab, speakers = bgp
    assert lab.bird is not None
    leaving = "node3"
    prober = speakers.probe(str(VIP[0]), 5.0, role="remote", flows=32)
    try:
        time.sleep(1.0)  # a second of traffic first
        proc = speakers.speakers.pop(leaving)
        proc.terminate()
        assert proc.wait(timeout=30) == 0, speakers.log_text(leaving)
        rest = lab.node_nexthops(("node1", "node2"), 4)
        moved = wait_until(lambda: lab.nexthops(PREFIX4) == rest, 2)
        # The speaker exited once FRR had sent the withdrawal; only now the node stops.
        lab.lab.stop(speakers.echoes.pop(leaving))
        probes = speakers.probes(prober)
    finally:
        if leaving not in speakers.echoes:
            speakers.start_echo(leaving)
        if leaving not in speakers.speakers:
            speakers.start(leaving)
    assert moved, lab.nexthops(PREFIX4)
    assert lab.bird.protocol_states()[f"{leaving}_v4"] == "Established"  # withdrawn, not dead
    served = flows_by_node(probes)
    assert served.get(leaving), "the leaving node served no flow: nothing was tested"
    lost = [p for p in probes if p.replied is None]
    assert not lost, f"{len(lost)} probes lost"
    every = lab.node_nexthops(NODES, 4)
    assert wait_until(lambda: lab.nexthops(PREFIX4) == every, 30), "node3 did not come back"


def test_speakers_export_metallb_bgp_metrics(bgp: tuple[BgpLab, LabSpeakers]) -> None:
    _lab, speakers = bgp

    def scraped() -> str:
        return speakers.fetch("node1", "/metrics") or ""

    peer = f"{router_address(1, 4)}:179"
    line = f'metallb_bgp_session_up{{peer="{peer}",vrf="default"}} 1.0'
    assert wait_until(lambda: line in scraped(), 15), scraped()[-2000:]
    assert 'metallb_bfd_session_up{peer="192.0.2.1",vrf="default"} 1.0' in scraped()
    assert f'metallb_bgp_announced_prefixes_total{{peer="{peer}",vrf="default"}} 1.0' in scraped()
