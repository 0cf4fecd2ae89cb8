"""The data plane in the lab, judged by arping, ndisc6, scapy and the client's own kernel.

Each node runs ``python -m l2agent.lab.respond`` (NetlinkInventory -> Responder + schedule +
Sender on eth0); the test tells each node which VIPs it owns, as an election would.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from l2agent.lab.netns import Lab, tools_missing, wait_until
from l2agent.lab.prober import answered_by, from_json, outage
from l2agent.lab.topology import UNOWNED_VIP4, UNOWNED_VIP6, client_mac, node_mac, vip

pytestmark = pytest.mark.e2e

V4 = vip(0, 4)
V6 = vip(0, 6)
NEED_ARPING = pytest.mark.skipif(bool(tools_missing("arping")), reason="needs iputils arping")
NEED_NDISC6 = pytest.mark.skipif(bool(tools_missing("ndisc6")), reason="needs ndisc6")


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


class Agent:
    """One ``l2agent.lab.respond`` process in a node namespace, driven over stdin/stdout."""

    def __init__(self, lab: Lab, node: str, *extra: str) -> None:
        self.proc = lab.spawn(
            node,
            [sys.executable, "-m", "l2agent.lab.respond", "--iface", "eth0", *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        ready = self._next()
        assert ready.get("ready"), ready

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(json.loads(line))

    def _next(self) -> dict[str, Any]:
        try:
            return self._lines.get(timeout=10)
        except queue.Empty:
            raise AssertionError(f"agent silent (exit code {self.proc.poll()})") from None

    def command(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self._next()

    def own(self, *ips: object) -> None:
        self.command("own " + " ".join(str(ip) for ip in ips))

    def counters(self) -> dict[str, dict[str, int]]:
        return self.command("counters")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(nodes=2) as built:
        for node in built.node_names:
            built.spawn(
                node,
                [sys.executable, "-m", "l2agent.lab.echo", "--name", node],
                stdout=subprocess.DEVNULL,
            )
        yield built


@pytest.fixture
def agents(lab: Lab) -> Iterator[dict[str, Agent]]:
    """node1 owns V4 and V6, node2 runs but owns nothing; the client's cache starts empty."""
    lab.flush_neighbours()
    started = {node: Agent(lab, node) for node in lab.node_names}
    started["node1"].own(V4, V6)
    yield started
    for agent in started.values():
        lab.stop(agent.proc)


def client(lab: Lab, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", lab.netns("client"), *argv],
        capture_output=True,
        text=True,
        timeout=30,
    )


@NEED_ARPING
def test_arping_gets_replies_from_the_owner_only(lab: Lab, agents: dict[str, Agent]) -> None:
    out = client(lab, "arping", "-c", "3", "-w", "5", "-I", "eth0", str(V4)).stdout.lower()
    assert out.count(mac_text(node_mac(1))) == 3, out
    assert mac_text(node_mac(2)) not in out
    assert agents["node1"].counters()["responses"] == {str(V4): 3}
    assert agents["node2"].counters()["responses"] == {}


@NEED_NDISC6
def test_ndisc6_gets_an_na_from_the_owner(lab: Lab, agents: dict[str, Agent]) -> None:
    proc = client(lab, "ndisc6", "-1", "-r", "3", "-w", "1000", str(V6), "eth0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"target link-layer address: {mac_text(node_mac(1))}" in proc.stdout.lower()
    assert agents["node1"].counters()["responses"] == {str(V6): 1}


@NEED_ARPING
@NEED_NDISC6
def test_an_ip_nobody_owns_gets_no_answer(lab: Lab, agents: dict[str, Agent]) -> None:
    out = client(lab, "arping", "-c", "2", "-w", "2", "-I", "eth0", str(UNOWNED_VIP4)).stdout
    assert "Received 0 response" in out, out
    # V4 is configured on node2's kube-ipvs0 too, yet node2 owns nothing: silence as well.
    agents["node1"].own()
    out = client(lab, "arping", "-c", "2", "-w", "2", "-I", "eth0", str(V4)).stdout
    assert "Received 0 response" in out, out
    for target in (UNOWNED_VIP6, V6):
        proc = client(lab, "ndisc6", "-r", "2", "-w", "500", str(target), "eth0")
        assert proc.returncode != 0 and "link-layer address" not in proc.stdout.lower()
    # The kernel filter dropped every one of those requests: none reached Python.
    counters = agents["node1"].counters()
    assert counters["drops"].get("announceIP", 0) == 0, counters
    assert counters["filters"] == {"eth0": "exact"}


def _traffic(lab: Lab, target: object) -> list:
    out = lab.exec(
        "client",
        [
            sys.executable,
            "-m",
            "l2agent.lab.prober",
            "--target",
            str(target),
            "--duration",
            "0.4",
            "--interval",
            "0.01",
        ],
    )
    return from_json(out)


def test_client_traffic_reaches_the_owner_and_its_cache_holds_the_owner_mac(
    lab: Lab, agents: dict[str, Agent]
) -> None:
    for target in (V4, V6):
        assert answered_by(_traffic(lab, target)) == ["node1"]
        assert lab.neighbour_mac(target) == node_mac(1)


def test_ownership_move_updates_the_client_cache_from_gratuitous_packets_alone(
    lab: Lab, agents: dict[str, Agent]
) -> None:
    for target in (V4, V6):
        _traffic(lab, target)
        assert lab.neighbour_mac(target) == node_mac(1)
    before = agents["node2"].counters()
    # The move: node1 stops answering at once, node2 gains and announces. The client sends
    # nothing meanwhile, so only our unsolicited frames can change its cache.
    agents["node1"].own()
    agents["node2"].own(V4, V6)
    for target in (V4, V6):
        assert wait_until(lambda t=target: lab.neighbour_mac(t) == node_mac(2), timeout=3), (
            f"{target}: client still has {lab.neighbours().get(str(target))}"
        )
    after = agents["node2"].counters()
    assert after["requests"] == before["requests"] == {}, "the client asked: not a GARP update"
    assert after["gratuitous"].get(str(V4), 0) >= 2 and after["gratuitous"].get(str(V6), 0) >= 1
    # And the traffic follows.
    for target in (V4, V6):
        assert answered_by(_traffic(lab, target)) == ["node2"]


def test_solicited_node_group_is_joined_while_owned_and_left_after(
    lab: Lab, agents: dict[str, Agent]
) -> None:
    group = "33:33:ff:00:02:00"  # 2001:db8::200
    assert agents["node1"].command("groups")["groups"] == [group]
    assert group in lab.ip("node1", "maddr", "show", "dev", "eth0")  # the kernel agrees
    assert "ff02::1:ff00:200" in lab.ip("node1", "-6", "maddr", "show", "dev", "eth0")  # MLD
    # 2001:db8:1::200 shares the group (same low 24 bits): releasing V6 keeps the group.
    agents["node1"].own(V4, V6, "2001:db8:1::200")
    agents["node1"].own(V4, "2001:db8:1::200")
    assert agents["node1"].command("groups")["groups"] == [group]
    assert group in lab.ip("node1", "maddr", "show", "dev", "eth0")
    agents["node1"].own(V4)
    assert agents["node1"].command("groups")["groups"] == []
    assert group not in lab.ip("node1", "maddr", "show", "dev", "eth0")
    assert "ff02::1:ff00:200" not in lab.ip("node1", "-6", "maddr", "show", "dev", "eth0")


def test_a_responder_opened_after_the_ip_was_announced_joins_at_once(lab: Lab) -> None:
    proc = lab.spawn(
        "node2",
        [sys.executable, "-m", "l2agent.lab.respond", "--iface", "eth0", "--own", str(V6)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["ready"]
        assert "33:33:ff:00:02:00" in lab.ip("node2", "maddr", "show", "dev", "eth0")
    finally:
        lab.stop(proc)


_GARBAGE = r"""
import sys
from scapy.all import ARP, Ether, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6, Raw, sendp
# Source MAC explicit: scapy cannot guess it for raw payloads, and a bridge drops 00:00:...
me = sys.argv[1]
bcast, group = "ff:ff:ff:ff:ff:ff", "33:33:ff:00:02:00"
ns_mc = IPv6(src="2001:db8::100", dst="ff02::1:ff00:200", hlim=255)
ns_ttl64 = IPv6(src="2001:db8::100", dst="ff02::1:ff00:200", hlim=64)
tgt = ICMPv6ND_NS(tgt="2001:db8::200")
frames = [
    # ARP request cut short after the opcode (the kernel filter cannot read a target)
    Ether(src=me, dst=bcast, type=0x0806) / Raw(bytes(ARP(op=1, pdst="192.0.2.200"))[:9]),
    # ARP request claiming 8-byte hardware addresses (the kernel filter checks lengths)
    Ether(src=me, dst=bcast) / ARP(op=1, hwlen=8, pdst="192.0.2.200"),
    # NS with a wrong checksum: only our parser can tell (passes the kernel filter)
    Ether(src=me, dst=group) / ns_mc / ICMPv6ND_NS(tgt="2001:db8::200", cksum=0x1234),
    # NS cut inside the target address; the IPv6 header is consistent (a truncated IPv6
    # packet, payload length > data, never gets past the veth/bridge path at all)
    Ether(src=me, dst=group) / IPv6(src="2001:db8::100", dst="ff02::1:ff00:200", hlim=255,
                                    nh=58, plen=10) / Raw(bytes(tgt)[:10]),
    # NS with hop limit 64 (off-link: must be ignored; the kernel filter checks it)
    Ether(src=me, dst=group) / ns_ttl64 / tgt,
    # NS whose SLLA option has length 0: only our parser can tell
    Ether(src=me, dst=group) / ns_mc / tgt / ICMPv6NDOptSrcLLAddr(lladdr=me, len=0),
]
sendp(frames, iface="eth0", verbose=False)
"""


@NEED_ARPING
def test_truncated_and_garbage_frames_change_nothing_and_are_counted(
    lab: Lab, agents: dict[str, Agent]
) -> None:
    pytest.importorskip("scapy")
    _traffic(lab, V4)
    cache_before = lab.neighbour_mac(V4)
    before = agents["node1"].counters()
    lab.exec(
        "client", [sys.executable, "-c", _GARBAGE, mac_text(client_mac()), mac_text(node_mac(1))]
    )
    # The kernel filter drops what it can judge; the two only our parser can judge arrive.
    assert wait_until(
        lambda: (
            agents["node1"].counters()["drops"].get("malformed", 0)
            >= before["drops"].get("malformed", 0) + 2
        ),
        timeout=3,
    ), agents["node1"].counters()
    after = agents["node1"].counters()
    assert after["responses"] == before["responses"], "garbage got an answer"
    assert agents["node1"].proc.poll() is None
    assert lab.neighbour_mac(V4) == cache_before == node_mac(1)
    # Still answering real requests.
    out = client(lab, "arping", "-c", "1", "-w", "2", "-I", "eth0", str(V4)).stdout.lower()
    assert mac_text(node_mac(1)) in out


_TAGGED = r"""
import sys
from scapy.all import ARP, Dot1Q, Ether, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.all import conf, srp1
conf.verb = 0
me = sys.argv[1]
arp = (Ether(src=me, dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=100)
       / ARP(op=1, hwsrc=me, psrc="198.51.100.100", pdst="192.0.2.200"))
ns = (Ether(src=me, dst="33:33:ff:00:02:00") / Dot1Q(vlan=100)
      / IPv6(src="2001:db8:100::100", dst="ff02::1:ff00:200", hlim=255)
      / ICMPv6ND_NS(tgt="2001:db8::200") / ICMPv6NDOptSrcLLAddr(lladdr=me))
for request in (arp, ns):
    answer = srp1(request, iface="eth0", timeout=3)
    if answer is None:
        print("none")
    else:
        kind = "arp" if ARP in answer else "na" if ICMPv6ND_NA in answer else "other"
        print(kind, answer.src, answer[Dot1Q].vlan if Dot1Q in answer else "untagged")
"""


def test_tagged_requests_get_replies_tagged_with_the_same_vlan(
    lab: Lab, agents: dict[str, Agent]
) -> None:
    pytest.importorskip("scapy")
    out = lab.exec("client", [sys.executable, "-c", _TAGGED, mac_text(client_mac())])
    owner = mac_text(node_mac(1))
    assert out.split("\n")[:2] == [f"arp {owner} 100", f"na {owner} 100"], out


def test_carrier_coming_back_re_announces(lab: Lab) -> None:
    """MetalLB issue #584: no GARP after a node is disconnected and reconnected."""
    # One round per burst, so only a re-announcement can correct the client afterwards.
    agent = Agent(lab, "node1", "--rounds", "1")
    try:
        agent.own(V4, V6)
        wrong = "02:1a:b0:00:00:99"
        lab.cut_link("node1")
        try:
            for target in (V4, V6):  # the client holds a stale, wrong entry meanwhile
                lab.ip(
                    "client",
                    "neigh",
                    "replace",
                    str(target),
                    "lladdr",
                    wrong,
                    "dev",
                    "eth0",
                    "nud",
                    "stale",
                )
            before = agent.counters()["gratuitous"]
        finally:
            lab.restore_link("node1")
        for target in (V4, V6):
            assert wait_until(lambda t=target: lab.neighbour_mac(t) == node_mac(1), timeout=3), (
                f"{target}: {lab.neighbours().get(str(target))}"
            )
        after = agent.counters()["gratuitous"]
        assert after[str(V4)] > before[str(V4)] and after[str(V6)] > before[str(V6)]
    finally:
        lab.stop(agent.proc)


def test_planned_handover_loses_no_probe_and_traffic_follows(
    lab: Lab, agents: dict[str, Agent]
) -> None:
    """New owner announces first, old owner stops after: the client's 2 ms probe stream moves
    from node1 to node2 with no lost probe (echo answers on both, as kube-proxy would)."""
    probers = {
        target: lab.spawn(
            "client",
            [
                sys.executable,
                "-m",
                "l2agent.lab.prober",
                "--target",
                str(target),
                "--duration",
                "1.5",
                "--interval",
                "0.002",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for target in (V4, V6)
    }
    time.sleep(0.6)
    agents["node2"].own(V4, V6)
    agents["node1"].own()
    for target, proc in probers.items():
        out, _ = proc.communicate(timeout=15)
        probes = from_json(out)
        assert answered_by(probes) == ["node1", "node2"], f"{target}: {answered_by(probes)}"
        moved = outage(probes, "node1", "node2")
        assert moved is not None
        print(f"{target}: handover gap {moved.seconds * 1000:.2f} ms, lost {moved.lost}")
        assert moved.lost == 0
