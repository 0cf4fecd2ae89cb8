"""decide(): MetalLB-style drop-reason table plus the answers, scapy building the requests."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet

from l2agent.model.types import IPAddress
from l2agent.packets import parse_mac, solicited_node_address, solicited_node_mac
from l2agent.responder import Drop, DropReason, InterfaceView, Owned, Reply, ReplyKind, decide

OUR = "02:00:00:00:00:01"
CLIENT = "02:00:00:00:00:99"
OTHER = "02:00:00:00:00:77"
IFACE = InterfaceView("eth0", parse_mac(OUR), IPv6Address("fe80::1"))
V4 = IPv4Address("192.0.2.10")
V6 = IPv6Address("2001:db8::10")
SN6 = str(solicited_node_address(V6))
SNMAC6 = solicited_node_mac(V6).hex(":")
OWNED: frozenset[IPAddress] = frozenset({V4, V6})


def _arp(
    op: int = 1,
    dst: str = "ff:ff:ff:ff:ff:ff",
    src: str = CLIENT,
    psrc: str = "192.0.2.99",
    pdst: str = str(V4),
    vlan: int | None = None,
) -> bytes:
    eth = Ether(dst=dst, src=src)
    if vlan is not None:
        eth = eth / Dot1Q(vlan=vlan)
    pkt = eth / ARP(op=op, hwsrc=src, psrc=psrc, hwdst="00:00:00:00:00:00", pdst=pdst)
    return bytes(pkt).ljust(60, b"\x00")


def _ns(
    tgt: str = str(V6),
    dst: str = SN6,
    edst: str = SNMAC6,
    src: str = "2001:db8::99",
    slla: bool = True,
    esrc: str = CLIENT,
    vlan: int | None = None,
) -> bytes:
    eth = Ether(dst=edst, src=esrc)
    if vlan is not None:
        eth = eth / Dot1Q(vlan=vlan)
    pkt: Packet = eth / IPv6(src=src, dst=dst, hlim=255) / ICMPv6ND_NS(tgt=tgt)
    if slla:
        pkt = pkt / ICMPv6NDOptSrcLLAddr(lladdr=esrc)
    return bytes(pkt)


@dataclass(frozen=True)
class Case:
    frame: bytes
    reason: DropReason
    owned: Owned = OWNED
    ip: IPAddress | None = None


DROPS = {
    "arp reply": Case(_arp(op=2), DropReason.ARP_REPLY, ip=V4),
    "arp to foreign unicast MAC": Case(_arp(dst=OTHER), DropReason.ETHERNET_DESTINATION, ip=V4),
    "arp for IP we do not own": Case(
        _arp(pdst="192.0.2.11"), DropReason.ANNOUNCE_IP, ip=IPv4Address("192.0.2.11")
    ),
    "arp for IP owned on another interface": Case(
        _arp(), DropReason.NOT_MATCH_INTERFACE, owned={V4: frozenset({"eth1"})}, ip=V4
    ),
    "arp with nothing owned": Case(_arp(), DropReason.ANNOUNCE_IP, owned=frozenset(), ip=V4),
    "arp from our own MAC": Case(_arp(src=OUR), DropReason.OWN_SOURCE),
    "arp truncated": Case(_arp()[:30], DropReason.MALFORMED),
    "runt frame": Case(b"\x01\x02", DropReason.MALFORMED),
    "ipv4 udp": Case(
        bytes(Ether(dst=OUR, src=CLIENT) / IP(src="192.0.2.99", dst=str(V4)) / UDP()),
        DropReason.MESSAGE_TYPE,
    ),
    "neighbor advertisement": Case(
        bytes(
            Ether(dst="33:33:00:00:00:01", src=CLIENT)
            / IPv6(src="2001:db8::99", dst="ff02::1", hlim=255)
            / ICMPv6ND_NA(tgt=str(V6))
        ),
        DropReason.MESSAGE_TYPE,
    ),
    "ipv6 udp": Case(
        bytes(Ether(dst=OUR, src=CLIENT) / IPv6(src="2001:db8::99", dst=str(V6)) / UDP()),
        DropReason.MESSAGE_TYPE,
    ),
    "ns hop limit 64": Case(
        bytes(
            Ether(dst=SNMAC6, src=CLIENT)
            / IPv6(src="2001:db8::99", dst=SN6, hlim=64)
            / ICMPv6ND_NS(tgt=str(V6))
        ),
        DropReason.MALFORMED,
    ),
    "ns for IP we do not own": Case(
        _ns(
            tgt="2001:db8::11",
            dst=str(solicited_node_address(IPv6Address("2001:db8::11"))),
            edst=solicited_node_mac(IPv6Address("2001:db8::11")).hex(":"),
        ),
        DropReason.ANNOUNCE_IP,
        ip=IPv6Address("2001:db8::11"),
    ),
    "ns to foreign unicast MAC": Case(
        _ns(dst=str(V6), edst=OTHER), DropReason.ETHERNET_DESTINATION, ip=V6
    ),
    "ns to another group's MAC": Case(
        _ns(edst="33:33:ff:00:00:99"), DropReason.ETHERNET_DESTINATION, ip=V6
    ),
    "ns owned on another interface": Case(
        _ns(), DropReason.NOT_MATCH_INTERFACE, owned={V6: frozenset({"eth1"})}, ip=V6
    ),
    "ns from our own MAC": Case(_ns(esrc=OUR), DropReason.OWN_SOURCE),
    "dad for IP we do not own": Case(
        _ns(
            tgt="2001:db8::11",
            src="::",
            slla=False,
            dst=str(solicited_node_address(IPv6Address("2001:db8::11"))),
            edst=solicited_node_mac(IPv6Address("2001:db8::11")).hex(":"),
        ),
        DropReason.ANNOUNCE_IP,
        ip=IPv6Address("2001:db8::11"),
    ),
}


@pytest.mark.parametrize("name", sorted(DROPS))
def test_drop_reasons(name: str) -> None:
    case = DROPS[name]
    out = decide(case.frame, IFACE, case.owned)
    assert isinstance(out, Drop)
    assert out.reason is case.reason
    assert out.ip == case.ip


def test_drop_reason_labels_are_metallb_names() -> None:
    labels = {r.value for r in DropReason}
    assert {
        "arpReply",
        "messageType",
        "ethernetDestination",
        "announceIP",
        "notMatchInterface",
    } <= labels


def _reply(frame: bytes, owned: Owned = OWNED, vlan: int | None = None) -> Reply:
    out = decide(frame, IFACE, owned, vlan)
    assert isinstance(out, Reply), out
    return out


@pytest.mark.parametrize("dst", ["ff:ff:ff:ff:ff:ff", OUR])
def test_arp_request_answered(dst: str) -> None:
    out = _reply(_arp(dst=dst))
    assert (out.ip, out.kind) == (V4, ReplyKind.ARP_REPLY)
    pkt = Ether(out.frame)
    assert pkt.dst == CLIENT and pkt[ARP].op == 2 and pkt[ARP].hwsrc == OUR
    assert pkt[ARP].psrc == str(V4) and pkt[ARP].pdst == "192.0.2.99"


def test_arp_probe_answered() -> None:
    pkt = Ether(_reply(_arp(psrc="0.0.0.0")).frame)
    assert pkt.dst == CLIENT and pkt[ARP].hwdst == CLIENT and pkt[ARP].pdst == "0.0.0.0"


def test_mapping_owned_all_interfaces_or_this_one() -> None:
    assert isinstance(decide(_arp(), IFACE, {V4: None}), Reply)
    assert isinstance(decide(_arp(), IFACE, {V4: {"eth0", "eth1"}}), Reply)


def test_in_band_tag_is_echoed() -> None:
    pkt = Ether(_reply(_arp(vlan=30)).frame)
    assert pkt[Dot1Q].vlan == 30
    pkt = Ether(_reply(_ns(vlan=31)).frame)
    assert pkt[Dot1Q].vlan == 31


def test_auxdata_tag_is_applied_and_in_band_wins() -> None:
    assert Ether(_reply(_arp(), vlan=12).frame)[Dot1Q].vlan == 12
    assert Ether(_reply(_arp(vlan=30), vlan=12).frame)[Dot1Q].vlan == 30
    assert Dot1Q not in Ether(_reply(_arp()).frame)


def test_ns_with_slla_answered_solicited() -> None:
    out = _reply(_ns())
    assert (out.ip, out.kind) == (V6, ReplyKind.NA_SOLICITED)
    pkt = Ether(out.frame)
    assert pkt.dst == CLIENT
    assert pkt[IPv6].src == "fe80::1" and pkt[IPv6].dst == "2001:db8::99"
    assert (pkt[ICMPv6ND_NA].S, pkt[ICMPv6ND_NA].O) == (1, 0)


def test_unicast_nud_without_slla_answered_to_ethernet_source() -> None:
    out = _reply(_ns(dst=str(V6), edst=OUR, slla=False, esrc=OTHER))
    pkt = Ether(out.frame)
    assert pkt.dst == OTHER and pkt[IPv6].dst == "2001:db8::99"
    assert pkt[ICMPv6ND_NA].S == 1


def test_dad_answered_to_all_nodes() -> None:
    out = _reply(_ns(src="::", slla=False))
    assert out.kind is ReplyKind.NA_DAD
    pkt = Ether(out.frame)
    assert pkt.dst == "33:33:00:00:00:01" and pkt[IPv6].dst == "ff02::1"
    assert (pkt[ICMPv6ND_NA].S, pkt[ICMPv6ND_NA].O) == (0, 1)


@pytest.mark.parametrize(
    ("name", "frame"),
    [
        ("gratuitous reply", _arp(op=2, src=OTHER, psrc=str(V4), pdst=str(V4))),
        ("gratuitous request", _arp(op=1, src=OTHER, psrc=str(V4), pdst=str(V4))),
        ("reply to someone", _arp(op=2, src=OTHER, psrc=str(V4), pdst="192.0.2.99")),
    ],
)
def test_another_mac_claiming_an_owned_ip_is_a_conflict(name: str, frame: bytes) -> None:
    out = decide(frame, IFACE, OWNED)
    assert isinstance(out, Drop)
    assert (out.reason, out.ip, out.sender_mac) == (
        DropReason.ADDRESS_CONFLICT,
        V4,
        parse_mac(OTHER),
    )


def test_claims_that_are_not_conflicts() -> None:
    probe = _arp(op=1, src=OTHER, psrc="0.0.0.0", pdst=str(V4))  # DAD-style probe: answered
    assert isinstance(decide(probe, IFACE, OWNED), Reply)
    elsewhere = _arp(op=2, src=OTHER, psrc=str(V4), pdst=str(V4))
    owned_on_other_iface: dict[IPAddress, frozenset[str] | None] = {V4: frozenset({"eth1"})}
    out = decide(elsewhere, IFACE, owned_on_other_iface)
    assert isinstance(out, Drop) and out.reason is DropReason.ARP_REPLY
