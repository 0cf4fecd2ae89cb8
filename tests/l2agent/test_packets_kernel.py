"""The Linux kernel as the judge of our frames: a client namespace resolves the VIPs
through our answers, and our gratuitous ARP / unsolicited NA move its existing entries.

The "agent" is a tiny child process (AF_PACKET + our BPF program + ``decide``), not the
product's responder loop: this checks the codec and decision against a real neighbour
table. Test traffic stays inside two namespaces made here, on documentation ranges.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

VIP4, VIP6 = "192.0.2.10", "2001:db8::10"
OLD_MAC = "02:00:00:00:00:aa"

_AGENT = r"""
import json, select, socket, sys
from ipaddress import IPv4Address, IPv6Address
from l2agent.packets import build_gratuitous_arp, build_unsolicited_na, parse_mac
from l2agent.responder import InterfaceView, Reply, decide
from l2agent.responder.bpf import SO_ATTACH_FILTER, make_sock_fprog

ifname, mac = sys.argv[1], parse_mac(sys.argv[2])
iface = InterfaceView(ifname, mac, IPv6Address("fe80::a"))
owned = {IPv4Address("192.0.2.10"), IPv6Address("2001:db8::10")}
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
fprog = make_sock_fprog()
s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog.value)
s.bind((ifname, 0))
counts = {}
print("ready", flush=True)
while True:
    ready, _, _ = select.select([s, sys.stdin], [], [], 30)
    if not ready:
        break
    if sys.stdin in ready:
        cmd = sys.stdin.readline().strip()
        if cmd != "announce":
            break
        for frame in (*build_gratuitous_arp(mac, IPv4Address("192.0.2.10")),
                      build_unsolicited_na(mac, iface.link_local, IPv6Address("2001:db8::10"))):
            s.send(frame)
        print("announced", flush=True)
    if s in ready:
        out = decide(s.recv(65535), iface, owned)
        key = out.kind.value if isinstance(out, Reply) else out.reason.value
        counts[key] = counts.get(key, 0) + 1
        if isinstance(out, Reply):
            s.send(out.frame)
print(json.dumps(counts), flush=True)
"""


def _run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=30).stdout


def _lladdr(ns: str, ip: str) -> str | None:
    for entry in json.loads(_run("ip", "-n", ns, "-j", "neigh", "show", ip, "dev", "vc") or "[]"):
        if "lladdr" in entry:
            return str(entry["lladdr"])
    return None


def _wait_for(ns: str, ip: str, mac: str, timeout: float = 5.0) -> str | None:
    deadline = time.monotonic() + timeout
    seen = _lladdr(ns, ip)
    while seen != mac and time.monotonic() < deadline:
        time.sleep(0.05)
        seen = _lladdr(ns, ip)
    return seen


@pytest.fixture
def lab() -> Iterator[tuple[str, str, str]]:
    pid = os.getpid()
    client, agent = f"l2kc{pid}", f"l2ka{pid}"
    made: list[str] = []
    try:
        for ns in (client, agent):
            _run("ip", "netns", "add", ns)
            made.append(ns)
        _run(
            "ip",
            "-n",
            client,
            "link",
            "add",
            "vc",
            "type",
            "veth",
            "peer",
            "name",
            "va",
            "netns",
            agent,
        )
        _run("ip", "-n", client, "addr", "add", "192.0.2.1/24", "dev", "vc")
        _run("ip", "-n", client, "addr", "add", "2001:db8::1/64", "dev", "vc", "nodad")
        _run("ip", "-n", client, "link", "set", "vc", "up")
        _run("ip", "-n", agent, "link", "set", "va", "up")
        mac = json.loads(_run("ip", "-n", agent, "-j", "link", "show", "va"))[0]["address"]
        yield client, agent, mac
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False)


@pytest.mark.e2e
def test_kernel_learns_and_moves_to_our_mac(lab: tuple[str, str, str]) -> None:
    client, agent, mac = lab
    proc = subprocess.Popen(
        ["ip", "netns", "exec", agent, sys.executable, "-c", _AGENT, "va", mac],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "ready"
        # The client's kernel resolves both VIPs: ARP request / multicast NS, our answers.
        poke = (
            "import socket\n"
            "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('192.0.2.10', 9))\n"
            "socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b'x', ('2001:db8::10', 9))\n"
        )
        _run("ip", "netns", "exec", client, sys.executable, "-c", poke)
        assert _wait_for(client, VIP4, mac) == mac
        assert _wait_for(client, VIP6, mac) == mac
        # Pretend another node owned the VIPs; our announcement alone must move the entries.
        for ip in (VIP4, VIP6):
            _run(
                "ip",
                "-n",
                client,
                "neigh",
                "replace",
                ip,
                "lladdr",
                OLD_MAC,
                "dev",
                "vc",
                "nud",
                "stale",
            )
            assert _lladdr(client, ip) == OLD_MAC
        time.sleep(1.2)  # past the 1 s ARP locktime, as MetalLB's 1.1 s rounds are
        proc.stdin.write("announce\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "announced"
        assert _wait_for(client, VIP4, mac) == mac
        assert _wait_for(client, VIP6, mac) == mac
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        counts = json.loads(proc.stdout.readline())
        assert counts.get("arpReply", 0) >= 1
        assert counts.get("naSolicited", 0) >= 1
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
