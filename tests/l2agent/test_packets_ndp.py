"""Neighbor Discovery parse/build, scapy as the judge (fields and checksums)."""

from __future__ import annotations

import socket
from ipaddress import IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6NDOptUnknown,
    IPv6,
    IPv6ExtHdrHopByHop,
    in6_chksum,
    in6_getnsma,
    in6_getnsmac,
)
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Packet, Raw

from l2agent.packets import (
    MalformedPacket,
    MalformedReason,
    build_solicited_na,
    build_unsolicited_na,
    parse_ethernet,
    parse_mac,
    parse_ns,
    solicited_node_address,
    solicited_node_mac,
)
from l2agent.packets.ndp import icmpv6_checksum

OUR_MAC = parse_mac("02:00:00:00:00:01")
LINK_LOCAL = IPv6Address("fe80::1")
CLIENT_MAC = "02:00:00:00:00:99"
CLIENT_IP = "2001:db8::99"
VIP = IPv6Address("2001:db8::10")
SN = str(solicited_node_address(VIP))
SN_MAC = solicited_node_mac(VIP).hex(":")


def _frame(l3: Packet, dst: str = SN_MAC, vlan: int | None = None, trailer: bytes = b"") -> bytes:
    eth = Ether(dst=dst, src=CLIENT_MAC)
    if vlan is not None:
        eth = eth / Dot1Q(vlan=vlan)
    return bytes(eth / l3) + trailer


def _ns(
    src: str = CLIENT_IP,
    dst: str = SN,
    slla: str | None = CLIENT_MAC,
    hlim: int = 255,
    extra: Packet | None = None,
) -> Packet:
    pkt = IPv6(src=src, dst=dst, hlim=hlim) / ICMPv6ND_NS(tgt=str(VIP))
    if slla is not None:
        pkt = pkt / ICMPv6NDOptSrcLLAddr(lladdr=slla)
    if extra is not None:
        pkt = pkt / extra
    return pkt


def test_solicited_node_helpers_match_scapy() -> None:
    for ip in (VIP, IPv6Address("fe80::1:2345:6789"), IPv6Address("2001:db8::abcd:ef01")):
        nsma = in6_getnsma(socket.inet_pton(socket.AF_INET6, str(ip)))
        assert solicited_node_address(ip).packed == nsma
        assert solicited_node_mac(ip).hex(":") == in6_getnsmac(nsma)


@given(st.binary(min_size=0, max_size=120))
@settings(max_examples=200, deadline=None, derandomize=True)
def test_checksum_matches_scapy(payload: bytes) -> None:
    ip6 = IPv6(src=CLIENT_IP, dst=str(VIP), nh=58)
    src = socket.inet_pton(socket.AF_INET6, CLIENT_IP)
    assert icmpv6_checksum(src, VIP.packed, payload) == in6_chksum(58, ip6, payload)


CASES = {
    "multicast with SLLA": (_ns(), SN_MAC, CLIENT_MAC),
    "unicast NUD without SLLA": (_ns(dst=str(VIP), slla=None), "02:00:00:00:00:01", None),
    "unicast NUD with SLLA": (_ns(dst=str(VIP)), "02:00:00:00:00:01", CLIENT_MAC),
    "DAD": (_ns(src="::", slla=None), SN_MAC, None),
    "unknown option after SLLA": (
        _ns(extra=ICMPv6NDOptUnknown(type=14, len=1, data=b"\x01" * 6)),
        SN_MAC,
        CLIENT_MAC,
    ),
    "nonce only": (
        _ns(slla=None, extra=ICMPv6NDOptUnknown(type=14, len=1, data=b"\x01" * 6)),
        SN_MAC,
        None,
    ),
}


@pytest.mark.parametrize("vlan", [None, 5])
@pytest.mark.parametrize("trailer", [b"", b"\x00" * 4])
@pytest.mark.parametrize("case", sorted(CASES))
def test_scapy_ns_parses(case: str, vlan: int | None, trailer: bytes) -> None:
    l3, eth_dst, slla = CASES[case]
    eth = parse_ethernet(_frame(l3, eth_dst, vlan, trailer))
    assert eth.vlan == vlan
    ns = parse_ns(eth.payload)
    assert ns.target == VIP
    assert ns.src_ip == IPv6Address(l3[IPv6].src)
    assert ns.dst_ip == IPv6Address(l3[IPv6].dst)
    assert ns.hop_limit == 255
    assert ns.source_lladdr == (parse_mac(slla) if slla else None)
    assert ns.is_dad == (l3[IPv6].src == "::")


def _check_na(
    frame: bytes,
    *,
    eth_dst: str,
    ip_src: str,
    ip_dst: str,
    flags: tuple[int, int, int],
    vlan: int | None,
) -> None:
    pkt = Ether(frame)
    assert pkt.dst == eth_dst
    assert pkt.src == "02:00:00:00:00:01"
    if vlan is None:
        assert Dot1Q not in pkt
    else:
        assert pkt[Dot1Q].vlan == vlan
    ip6 = pkt[IPv6]
    assert (ip6.src, ip6.dst, ip6.hlim, ip6.nh, ip6.plen) == (ip_src, ip_dst, 255, 58, 32)
    na = pkt[ICMPv6ND_NA]
    assert (na.R, na.S, na.O, na.code) == (*flags, 0)
    assert na.tgt == str(VIP)
    assert pkt[ICMPv6NDOptDstLLAddr].lladdr == "02:00:00:00:00:01"
    assert pkt[ICMPv6NDOptDstLLAddr].len == 1
    assert Raw not in pkt
    # let scapy recompute checksum and lengths: its bytes must equal ours
    del pkt[IPv6].plen
    del pkt[ICMPv6ND_NA].cksum
    assert bytes(Ether(bytes(pkt))) == frame


@pytest.mark.parametrize("vlan", [None, 5])
def test_solicited_na_to_slla(vlan: int | None) -> None:
    ns = parse_ns(parse_ethernet(_frame(_ns(), vlan=vlan)).payload)
    frame = build_solicited_na(ns, OUR_MAC, parse_mac("02:00:00:00:00:55"), vlan, LINK_LOCAL)
    _check_na(
        frame, eth_dst=CLIENT_MAC, ip_src="fe80::1", ip_dst=CLIENT_IP, flags=(0, 1, 0), vlan=vlan
    )


def test_solicited_na_without_slla_goes_to_ethernet_source() -> None:
    ns = parse_ns(parse_ethernet(_frame(_ns(dst=str(VIP), slla=None))).payload)
    frame = build_solicited_na(ns, OUR_MAC, parse_mac("02:00:00:00:00:55"), None, LINK_LOCAL)
    _check_na(
        frame,
        eth_dst="02:00:00:00:00:55",
        ip_src="fe80::1",
        ip_dst=CLIENT_IP,
        flags=(0, 1, 0),
        vlan=None,
    )


def test_solicited_na_without_link_local_uses_target() -> None:
    ns = parse_ns(parse_ethernet(_frame(_ns())).payload)
    frame = build_solicited_na(ns, OUR_MAC, parse_mac(CLIENT_MAC))
    _check_na(
        frame, eth_dst=CLIENT_MAC, ip_src=str(VIP), ip_dst=CLIENT_IP, flags=(0, 1, 0), vlan=None
    )


@pytest.mark.parametrize("vlan", [None, 9])
def test_dad_answer_goes_to_all_nodes(vlan: int | None) -> None:
    ns = parse_ns(parse_ethernet(_frame(_ns(src="::", slla=None))).payload)
    frame = build_solicited_na(ns, OUR_MAC, parse_mac(CLIENT_MAC), vlan, LINK_LOCAL)
    _check_na(
        frame,
        eth_dst="33:33:00:00:00:01",
        ip_src="fe80::1",
        ip_dst="ff02::1",
        flags=(0, 0, 1),
        vlan=vlan,
    )


@pytest.mark.parametrize("vlan", [None, 9])
def test_unsolicited_na_matches_metallb(vlan: int | None) -> None:
    frame = build_unsolicited_na(OUR_MAC, LINK_LOCAL, VIP, vlan)
    _check_na(
        frame,
        eth_dst="33:33:00:00:00:01",
        ip_src="fe80::1",
        ip_dst="ff02::1",
        flags=(0, 0, 1),
        vlan=vlan,
    )


def _mutate_icmp(raw: bytes, offset: int, value: int) -> bytes:
    """Change one ICMPv6 byte and fix the checksum, so only the field is wrong."""
    ip6 = IPv6(raw)
    data = bytearray(bytes(ip6[ICMPv6ND_NS]))
    data[offset] = value
    data[2:4] = b"\x00\x00"
    cksum = in6_chksum(58, ip6, bytes(data))
    data[2:4] = cksum.to_bytes(2, "big")
    return raw[:40] + bytes(data)


GOOD = bytes(_ns())

MALFORMED = {
    "empty": (b"", MalformedReason.TRUNCATED),
    "short header": (GOOD[:39], MalformedReason.TRUNCATED),
    "payload length overruns": (GOOD[:-1], MalformedReason.TRUNCATED),
    "IPv4 version": (b"\x40" + GOOD[1:], MalformedReason.BAD_VERSION),
    "hop limit 254": (bytes(_ns(hlim=254)), MalformedReason.BAD_HOP_LIMIT),
    "neighbor advertisement": (
        bytes(IPv6(src=CLIENT_IP, dst="ff02::1") / ICMPv6ND_NA(tgt=str(VIP))),
        MalformedReason.BAD_ICMP_TYPE,
    ),
    "code 1": (_mutate_icmp(GOOD, 1, 1), MalformedReason.BAD_ICMP_CODE),
    "bad checksum": (GOOD[:42] + bytes([GOOD[42] ^ 1]) + GOOD[43:], MalformedReason.BAD_CHECKSUM),
    "zero-length option": (_mutate_icmp(GOOD, 25, 0), MalformedReason.BAD_OPTION),
    "option overruns": (_mutate_icmp(GOOD, 25, 2), MalformedReason.TRUNCATED),
    "multicast target": (_mutate_icmp(GOOD, 8, 0xFF), MalformedReason.BAD_TARGET),
    "DAD with SLLA": (bytes(_ns(src="::")), MalformedReason.BAD_OPTION),
    "DAD to unicast": (bytes(_ns(src="::", dst=str(VIP), slla=None)), MalformedReason.BAD_ADDRESS),
    "multicast source": (bytes(_ns(src="ff02::5")), MalformedReason.BAD_ADDRESS),
    "too short ICMPv6": (
        bytes(IPv6(src=CLIENT_IP, dst=SN, nh=58, hlim=255) / Raw(b"\x87\x00\x00\x00")),
        MalformedReason.TRUNCATED,
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_ns(case: str) -> None:
    raw, reason = MALFORMED[case]
    with pytest.raises(MalformedPacket) as info:
        parse_ns(raw)
    assert info.value.reason == reason


def test_extension_header_is_not_followed() -> None:
    raw = bytes(
        IPv6(src=CLIENT_IP, dst=SN, hlim=255)
        / IPv6ExtHdrHopByHop()
        / ICMPv6ND_NS(tgt=str(VIP))
        / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT_MAC)
    )
    with pytest.raises(MalformedPacket) as info:
        parse_ns(raw)
    assert info.value.reason == MalformedReason.BAD_NEXT_HEADER
