"""Regenerate the golden layer 2 captures (run once; the .pcap files are committed).

    .venv/bin/python tests/data/make_pcaps.py

- ``l2_requests.pcap``: requests built by scapy (the independent side): ARP request, ARP
  probe, 802.1Q-tagged ARP request, NS with SLLA, tagged NS, DAD NS, unicast NUD NS.
- ``l2_replies.pcap``: our answer to each request, in the same order, from ``decide``.
- ``l2_announce.pcap``: one announcement round: GARP request + reply, unsolicited NA.

If the codec changes on purpose, rerun this script and review the diff with
``tcpdump -enr`` before committing.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet
from scapy.utils import wrpcap

from l2agent.packets import (
    build_gratuitous_arp,
    build_unsolicited_na,
    parse_mac,
    solicited_node_address,
    solicited_node_mac,
)
from l2agent.responder import InterfaceView, Reply, decide

HERE = Path(__file__).resolve().parent
IFACE = InterfaceView("eth0", parse_mac("02:00:00:00:00:01"), IPv6Address("fe80::1"))
V4 = IPv4Address("192.0.2.10")
V6 = IPv6Address("2001:db8::10")
OWNED = frozenset({V4, V6})
CLIENT = "02:00:00:00:00:99"
SN = str(solicited_node_address(V6))
SNMAC = solicited_node_mac(V6).hex(":")
T0 = 1_700_000_000.0


def requests() -> list[bytes]:
    def arp(psrc: str, vlan: int | None = None) -> Packet:
        eth = Ether(dst="ff:ff:ff:ff:ff:ff", src=CLIENT)
        if vlan is not None:
            eth = eth / Dot1Q(vlan=vlan)
        return eth / ARP(op=1, hwsrc=CLIENT, psrc=psrc, hwdst="00:00:00:00:00:00", pdst=str(V4))

    def ns(src: str, dst: str, edst: str, slla: bool, vlan: int | None = None) -> Packet:
        eth = Ether(dst=edst, src=CLIENT)
        if vlan is not None:
            eth = eth / Dot1Q(vlan=vlan)
        pkt = eth / IPv6(src=src, dst=dst, hlim=255) / ICMPv6ND_NS(tgt=str(V6))
        return pkt / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT) if slla else pkt

    pkts = [
        arp("192.0.2.99"),
        arp("0.0.0.0"),
        arp("192.0.2.99", vlan=100),
        ns("2001:db8::99", SN, SNMAC, True),
        ns("2001:db8::99", SN, SNMAC, True, vlan=100),
        ns("::", SN, SNMAC, False),
        ns("2001:db8::99", str(V6), "02:00:00:00:00:01", False),
    ]
    return [bytes(p).ljust(60, b"\x00") for p in pkts]


def replies(reqs: list[bytes]) -> list[bytes]:
    out = []
    for req in reqs:
        answer = decide(req, IFACE, OWNED)
        assert isinstance(answer, Reply), answer
        out.append(answer.frame)
    return out


def announcements() -> list[bytes]:
    return [
        *build_gratuitous_arp(IFACE.mac, V4),
        build_unsolicited_na(IFACE.mac, IFACE.link_local, V6),
    ]


def _write(name: str, frames: list[bytes]) -> None:
    pkts = []
    for i, frame in enumerate(frames):
        pkt = Ether(frame)
        pkt.time = T0 + i  # fixed timestamps keep the files byte-stable
        pkts.append(pkt)
    wrpcap(str(HERE / name), pkts)


def main() -> None:
    reqs = requests()
    _write("l2_requests.pcap", reqs)
    _write("l2_replies.pcap", replies(reqs))
    _write("l2_announce.pcap", announcements())


if __name__ == "__main__":
    main()
