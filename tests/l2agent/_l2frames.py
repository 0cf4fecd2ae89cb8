"""Hypothesis strategies for frames a responder sees: ARP and NS built by scapy (the
independent side), right and wrong in every field ``decide`` or the kernel filter looks at,
tagged or not, cut short or with a byte flipped, plus other traffic; and owned sets drawn
from the same address pools, so frames hit owned and unowned addresses alike."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet, Raw

from l2agent.model.types import IPAddress, format_mac
from l2agent.packets.ndp import solicited_node_address
from l2agent.responder.decide import Drop, DropReason, InterfaceView, Reply, decide

OUR_MAC = bytes.fromhex("020000000001")
IFACE = InterfaceView("eth0", OUR_MAC)
OURS = format_mac(OUR_MAC)
CLIENT = "02:00:00:00:00:99"
OTHER = "02:00:00:00:00:77"

V4_POOL: tuple[IPv4Address, ...] = tuple(
    IPv4Address(a)
    for a in (
        "192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.200", "198.51.100.7",
        "203.0.113.255", "0.0.0.1", "255.255.255.254",
    )
)  # fmt: skip
V6_POOL: tuple[IPv6Address, ...] = tuple(
    IPv6Address(a)
    for a in (
        "2001:db8::10", "2001:db8::11", "2001:db8::1:10", "2001:db8:1::10",
        "2001:db8:ffff::ffff:ffff", "fe80::10", "2001:db8::ff00:10",
    )
)  # fmt: skip
_V4_OTHER = ("192.0.2.100", "0.0.0.0", "192.0.2.13", "203.0.113.1")
_V6_OTHER = ("2001:db8::100", "::", "fe80::99", "ff02::1", "2001:db8::12")

owned_sets = st.frozensets(st.sampled_from((*V4_POOL, *V6_POOL)), max_size=8)

_v4 = st.one_of(st.sampled_from([str(a) for a in V4_POOL]), st.sampled_from(_V4_OTHER))
_v6 = st.one_of(st.sampled_from([str(a) for a in V6_POOL]), st.sampled_from(_V6_OTHER))
_mac = st.sampled_from([CLIENT, CLIENT, OTHER, OURS, "ff:ff:ff:ff:ff:ff", "33:33:00:00:00:01"])


def _rare(draw: st.DrawFn, one_in: int = 10) -> bool:
    """True about once in ``one_in`` draws. (Hypothesis favours small and boundary values,
    so neither 0 nor the maximum may be the rare case.)"""
    return draw(st.integers(0, 999)) % one_in == one_in // 2


def _pick(draw: st.DrawFn, family: st.SearchStrategy[str], owned: list[str]) -> str:
    if owned and not _rare(draw, 3):
        return draw(st.sampled_from(owned))
    return draw(family)


@st.composite
def _arp(draw: st.DrawFn, owned: list[str]) -> Packet:
    op = draw(st.sampled_from([1, 1, 1, 2, 2, 3]))
    hwsrc = draw(_mac)
    pdst = _pick(draw, _v4, owned)
    psrc = draw(_v4) if not _rare(draw, 4) else pdst  # sometimes gratuitous
    if _rare(draw, 6):
        psrc = _pick(draw, _v4, owned)  # a claim on an owned address
    arp = ARP(op=op, hwsrc=hwsrc, psrc=psrc, pdst=pdst, hwdst=draw(_mac))
    if _rare(draw):
        arp.hwtype = draw(st.sampled_from([6, 0x100]))
    body = bytearray(bytes(arp))
    if _rare(draw):
        body[2:4] = b"\x86\xdd"  # protocol type
    if _rare(draw):
        body[4] = 8  # hardware address length
    if _rare(draw):
        body[5] = 16  # protocol address length
    dst = draw(st.sampled_from(["ff:ff:ff:ff:ff:ff", "ff:ff:ff:ff:ff:ff", OURS, CLIENT]))
    src = draw(_mac) if _rare(draw, 5) else hwsrc
    return Ether(dst=dst, src=src, type=0x0806) / Raw(bytes(body))


@st.composite
def _ns(draw: st.DrawFn, owned: list[str]) -> Packet:
    target = _pick(draw, _v6, owned)
    tgt = ip_address(target)
    src = draw(st.sampled_from(["2001:db8::100", "::", "2001:db8::100", "fe80::99", "ff02::2"]))
    kind = draw(st.sampled_from(["solicited", "solicited", "unicast", "all-nodes", "other-sn"]))
    if kind == "solicited" and isinstance(tgt, IPv6Address):
        dst = str(solicited_node_address(tgt))
    elif kind == "other-sn":
        dst = "ff02::1:ff00:99"
    elif kind == "all-nodes":
        dst = "ff02::1"
    else:
        dst = target
    ip6 = IPv6(src=src, dst=dst, hlim=draw(st.sampled_from([255, 255, 255, 64])))
    icmp_type = "na" if _rare(draw, 8) else "ns"
    body: Packet
    if icmp_type == "na":
        body = ICMPv6ND_NA(tgt=target) / ICMPv6NDOptDstLLAddr(lladdr=CLIENT)
    else:
        body = ICMPv6ND_NS(tgt=target, code=1 if _rare(draw) else 0)
        option = draw(st.sampled_from(["slla", "slla", "none", "zero-length"]))
        if option == "slla":
            body = body / ICMPv6NDOptSrcLLAddr(lladdr=draw(_mac))
        elif option == "zero-length":
            body = body / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT, len=0)
        if _rare(draw):
            body.cksum = 0x1234
    if _rare(draw, 20):
        ip6.nh = 17
    mc = "33:33:" + ":".join(f"{b:02x}" for b in ip_address(dst).packed[12:])
    eth_dst = draw(
        st.sampled_from([mc, mc, mc, OURS, "ff:ff:ff:ff:ff:ff", CLIENT, "33:33:00:00:00:99"])
    )
    eth_src = OURS if _rare(draw) else CLIENT
    return Ether(dst=eth_dst, src=eth_src) / ip6 / body


@st.composite
def _other(draw: st.DrawFn) -> Packet:
    which = draw(st.sampled_from(["udp4", "udp6", "raw"]))
    eth = Ether(dst="ff:ff:ff:ff:ff:ff", src=CLIENT)
    if which == "udp4":
        return eth / IP(src="192.0.2.100", dst=draw(_v4)) / UDP()
    if which == "udp6":
        return eth / IPv6(src="2001:db8::100", dst=draw(_v6)) / UDP()
    ethertype = draw(st.sampled_from([0x0806, 0x86DD, 0x0800, 0x8100, 0x05DC, 0x1234]))
    return Ether(dst="ff:ff:ff:ff:ff:ff", src=CLIENT, type=ethertype) / Raw(
        draw(st.binary(min_size=0, max_size=80))
    )


@st.composite
def frames(draw: st.DrawFn, owned: frozenset[IPAddress] = frozenset()) -> bytes:
    """One frame as the wire carries it (an in-band 802.1Q tag possible); targets are often
    drawn from ``owned``."""
    own4 = sorted(str(ip) for ip in owned if ip.version == 4)
    own6 = sorted(str(ip) for ip in owned if ip.version == 6)
    kind = draw(st.sampled_from(["arp", "ns", "arp", "ns", "other"]))
    pkt = _arp(own4) if kind == "arp" else _ns(own6) if kind == "ns" else _other()
    pkt = draw(pkt)
    tags = draw(st.sampled_from([0, 0, 0, 1, 1, 2]))
    if tags:
        payload = pkt.payload
        inner_type = pkt.type
        pkt.remove_payload()
        outer: Packet = pkt
        for i in range(tags):
            last = i == tags - 1
            vid = draw(st.sampled_from([20, 1, 100, 4094, 0, 4095]))
            outer = outer / Dot1Q(
                vlan=vid, prio=draw(st.integers(0, 7)), type=inner_type if last else 0x8100
            )
        pkt = outer / payload
    data = bytes(pkt)
    mutation = draw(st.integers(0, 12))
    if mutation == 10 and len(data) > 14:
        data = data[: draw(st.integers(14, len(data) - 1))]
    elif mutation == 11 and len(data) > 14:
        at = draw(st.integers(14, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    elif mutation == 12:
        data = data.ljust(60, b"\x00")
    return data


def worth_reading(outcome: Reply | Drop) -> bool:
    """What the kernel filter must let through: answers and address conflicts."""
    return isinstance(outcome, Reply) or outcome.reason is DropReason.ADDRESS_CONFLICT


def judge(frame: bytes, owned: frozenset[IPAddress], vlan: int | None = None) -> Reply | Drop:
    return decide(frame, IFACE, owned, vlan)


def delivered(frame: bytes) -> tuple[bytes, int | None]:
    """The frame as a packet socket sees it: Linux moves the outer 802.1Q tag into
    metadata (``skb_vlan_untag``) before taps run."""
    if len(frame) >= 18 and frame[12:14] == b"\x81\x00":
        tci = int.from_bytes(frame[14:16], "big")
        return frame[:12] + frame[16:], tci
    return frame, None
