"""`l2agent speaker` in BGP mode, end to end: the speakers read MetalLB YAML, render frr.conf,
apply it to the FRR beside them (the lab's zebra/bfdd/bgpd per node), and BIRD (router1)
judges: one kernel route with every announcing node as a nexthop, the communities on it, a
configuration change that moves it, and SIGTERM withdrawing a node's path before the
speaker exits while its BGP session stays up (a withdrawal, not a dead peer).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from l2agent.lab.bgp import BgpLab
from l2agent.lab.frr import frr_missing
from l2agent.lab.netns import wait_until
from l2agent.lab.routers import ROUTER_ASN, bird_missing
from l2agent.lab.topology import bgp_vip, router_address

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

_missing = frr_missing() or bird_missing()
if _missing:
    pytestmark.append(pytest.mark.skip(reason=_missing))

NODES = ("node1", "node2")
VIP4, VIP6 = bgp_vip(0, 4), bgp_vip(0, 6)
PREFIX4, PREFIX6 = f"{VIP4}/32", f"{VIP6}/128"


def _config(*, local_on: str | None = None) -> str:
    """Two routers' worth of MetalLB YAML: router1 over IPv4 and IPv6, one dual-stack
    Service; `local_on`: ETP Local with its only endpoint on that node."""
    etp = "Local" if local_on else "Cluster"
    endpoint = local_on or "node1"
    return textwrap.dedent(
        f"""\
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {{name: bgp, namespace: metallb-system}}
        spec: {{addresses: [203.0.113.0/24, "2001:db8:113::/120"]}}
        ---
        apiVersion: metallb.io/v1beta2
        kind: BGPPeer
        metadata: {{name: router1-v4, namespace: metallb-system}}
        spec: {{myASN: 64512, peerASN: {ROUTER_ASN}, peerAddress: {router_address(1, 4)},
                holdTime: 9s, connectTime: 1s}}
        ---
        apiVersion: metallb.io/v1beta2
        kind: BGPPeer
        metadata: {{name: router1-v6, namespace: metallb-system}}
        spec: {{myASN: 64512, peerASN: {ROUTER_ASN}, peerAddress: "{router_address(1, 6)}",
                holdTime: 9s, connectTime: 1s}}
        ---
        apiVersion: metallb.io/v1beta1
        kind: Community
        metadata: {{name: tags, namespace: metallb-system}}
        spec: {{communities: [{{name: production, value: "65000:100"}}]}}
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {{name: all, namespace: metallb-system}}
        spec: {{communities: [production, "large:64512:1:2"]}}
        ---
        apiVersion: v1
        kind: Node
        metadata: {{name: node1}}
        ---
        apiVersion: v1
        kind: Node
        metadata: {{name: node2}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: web, namespace: default}}
        spec:
          type: LoadBalancer
          externalTrafficPolicy: {etp}
          ipFamilyPolicy: RequireDualStack
          ipFamilies: [IPv4, IPv6]
          ports: [{{port: 7777, protocol: UDP}}]
        status: {{loadBalancer: {{ingress: [{{ip: {VIP4}}}, {{ip: "{VIP6}"}}]}}}}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: web-1
          namespace: default
          labels: {{kubernetes.io/service-name: web}}
        endpoints:
        - {{addresses: [10.244.0.5], nodeName: {endpoint}, conditions: {{ready: true}}}}
        """
    )


class Speakers:
    def __init__(self, lab: BgpLab, config: Path) -> None:
        self.lab = lab
        self.config = config
        self.procs: dict[str, subprocess.Popen[Any]] = {}

    def start(self, node: str) -> None:
        assert self.lab.frr is not None
        d = str(self.lab.frr.dir(node))
        log = open(self.lab.workdir / f"speaker-{node}.log", "ab")  # noqa: SIM115
        argv = [
            sys.executable, "-m", "l2agent.cli", "speaker", "--node-name", node,
            "--config", str(self.config), "--metrics-addr", "",
            "--frr-config-dir", d, "--frr-run-dir", d, "--bgp-drain", "10",
        ]  # fmt: skip
        self.procs[node] = self.lab.lab.spawn(node, argv, stdout=log, stderr=log)

    def log(self, node: str) -> str:
        return (self.lab.workdir / f"speaker-{node}.log").read_text(errors="replace")


def _nexthops(lab: BgpLab, nodes: tuple[str, ...], version: int) -> frozenset[str]:
    return lab.node_nexthops(nodes, version)


@pytest.fixture(scope="module")
def bgp() -> Iterator[tuple[BgpLab, Speakers]]:
    with BgpLab(len(NODES), vips=[VIP4, VIP6]) as lab:
        assert lab.frr is not None
        lab.start_bird()
        for node in NODES:
            lab.frr.start(node)
        config = lab.workdir / "cluster.yaml"
        config.write_text(_config())
        speakers = Speakers(lab, config)
        for node in NODES:
            speakers.start(node)
        yield lab, speakers


def test_every_node_announces_to_the_router_with_its_communities(
    bgp: tuple[BgpLab, Speakers],
) -> None:
    lab, speakers = bgp
    assert lab.bird is not None
    names = [p.name for p in lab.bird.peers]
    assert lab.bird.wait_established(names, 60), lab.bird.birdc("show protocols")
    for prefix, version in ((PREFIX4, 4), (PREFIX6, 6)):
        want = _nexthops(lab, NODES, version)
        ok = wait_until(lambda p=prefix, w=want: lab.nexthops(p) == w, 30)
        assert ok, f"{prefix}: {lab.nexthops(prefix)}\n{speakers.log('node1')}"
    route = lab.bird.route_all(PREFIX4)
    assert "(65000,100)" in route and "(64512, 1, 2)" in route, route


def test_a_changed_configuration_moves_the_route(bgp: tuple[BgpLab, Speakers]) -> None:
    lab, speakers = bgp
    speakers.config.write_text(_config(local_on="node2"))  # ETP Local, endpoint on node2
    try:
        want = _nexthops(lab, ("node2",), 4)
        assert wait_until(lambda: lab.nexthops(PREFIX4) == want, 30), lab.nexthops(PREFIX4)
    finally:
        speakers.config.write_text(_config())
    both = _nexthops(lab, NODES, 4)
    assert wait_until(lambda: lab.nexthops(PREFIX4) == both, 30), lab.nexthops(PREFIX4)


def test_sigterm_withdraws_the_path_before_the_speaker_exits(
    bgp: tuple[BgpLab, Speakers],
) -> None:
    lab, speakers = bgp
    assert lab.bird is not None
    both = _nexthops(lab, NODES, 4)
    assert wait_until(lambda: lab.nexthops(PREFIX4) == both, 30)
    proc = speakers.procs.pop("node2")
    start = time.monotonic()
    proc.terminate()
    assert proc.wait(timeout=30) == 0, speakers.log("node2")
    took = time.monotonic() - start
    # the withdrawal reached the router before the speaker was gone (allow the FIB a
    # moment to follow BIRD's table), and FRR's session is still up: no dead peer
    only1 = _nexthops(lab, ("node1",), 4)
    assert wait_until(lambda: lab.nexthops(PREFIX4) == only1, 2), lab.nexthops(PREFIX4)
    assert lab.bird.protocol_states()["node2_v4"] == "Established"
    assert took < 10, f"the speaker waited the whole drain ({took:.1f} s): FRR not polled"
    assert "withdrawing every prefix" in speakers.log("node2")
