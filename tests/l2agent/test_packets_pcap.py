"""Golden captures under tests/data (written by tests/data/make_pcaps.py)."""

from __future__ import annotations

import shutil
import subprocess
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest
from scapy.layers.inet6 import ICMPv6ND_NA
from scapy.layers.l2 import ARP, Ether
from scapy.utils import rdpcap

from l2agent.packets import build_gratuitous_arp, build_unsolicited_na, parse_mac
from l2agent.responder import InterfaceView, Reply, decide

DATA = Path(__file__).resolve().parents[1] / "data"
IFACE = InterfaceView("eth0", parse_mac("02:00:00:00:00:01"), IPv6Address("fe80::1"))
V4 = IPv4Address("192.0.2.10")
V6 = IPv6Address("2001:db8::10")


def _frames(name: str) -> list[bytes]:
    return [bytes(p) for p in rdpcap(str(DATA / name))]


def test_replies_match_golden_capture() -> None:
    requests = _frames("l2_requests.pcap")
    golden = _frames("l2_replies.pcap")
    assert len(requests) == len(golden) == 7
    for request, expected in zip(requests, golden, strict=True):
        out = decide(request, IFACE, {V4, V6})
        assert isinstance(out, Reply)
        assert out.frame == expected


def test_golden_replies_dissect_as_answers() -> None:
    for pkt in (Ether(f) for f in _frames("l2_replies.pcap")):
        assert pkt.src == "02:00:00:00:00:01"
        if ARP in pkt:
            assert pkt[ARP].op == 2 and pkt[ARP].psrc == str(V4)
        else:
            assert pkt[ICMPv6ND_NA].tgt == str(V6)


def test_announcements_match_golden_capture() -> None:
    expected = [
        *build_gratuitous_arp(IFACE.mac, V4),
        build_unsolicited_na(IFACE.mac, IFACE.link_local, V6),
    ]
    assert _frames("l2_announce.pcap") == expected


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump")
@pytest.mark.parametrize("name", ["l2_replies.pcap", "l2_announce.pcap"])
def test_tcpdump_accepts_checksums(name: str) -> None:
    """tcpdump is a second, independent decoder: every NA checksum must verify."""
    out = subprocess.run(
        ["tcpdump", "-vvv", "-nr", str(DATA / name)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    nas = [line for line in out.splitlines() if "neighbor advertisement" in line]
    assert nas, out
    assert all("icmp6 sum ok" in line for line in nas), out
