"""ARP parse/build, scapy as the judge."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from scapy.layers.l2 import ARP, Dot1Q, Ether

from l2agent.packets import (
    ArpOp,
    MalformedPacket,
    MalformedReason,
    build_arp_reply,
    build_gratuitous_arp,
    parse_arp,
    parse_ethernet,
    parse_mac,
)

OUR_MAC = parse_mac("02:00:00:00:00:01")
CLIENT_MAC = "02:00:00:00:00:99"
VIP = IPv4Address("192.0.2.10")


def _pad(raw: bytes) -> bytes:
    return raw.ljust(60, b"\x00")


def _request(vlan: int | None = None, psrc: str = "192.0.2.99", op: int = 1) -> bytes:
    pkt = Ether(dst="ff:ff:ff:ff:ff:ff", src=CLIENT_MAC)
    if vlan is not None:
        pkt = pkt / Dot1Q(vlan=vlan)
    return _pad(bytes(pkt / ARP(op=op, hwsrc=CLIENT_MAC, psrc=psrc, pdst=str(VIP))))


@pytest.mark.parametrize("vlan", [None, 42])
def test_scapy_request_parses(vlan: int | None) -> None:
    raw = _request(vlan)
    assert len(raw) == 60
    eth = parse_ethernet(raw)
    assert eth.vlan == vlan
    arp = parse_arp(eth.payload)
    assert arp.op is ArpOp.REQUEST
    assert arp.sender_mac == parse_mac(CLIENT_MAC)
    assert arp.sender_ip == IPv4Address("192.0.2.99")
    assert arp.target_mac == bytes(6)
    assert arp.target_ip == VIP


@pytest.mark.parametrize("vlan", [None, 42])
def test_reply_dissects_in_scapy(vlan: int | None) -> None:
    request = parse_arp(parse_ethernet(_request(vlan)).payload)
    frame = build_arp_reply(request, OUR_MAC, vlan)
    assert len(frame) == 60
    pkt = Ether(frame)
    assert pkt.dst == CLIENT_MAC
    assert pkt.src == "02:00:00:00:00:01"
    if vlan is None:
        assert Dot1Q not in pkt
    else:
        assert pkt[Dot1Q].vlan == vlan
    arp = pkt[ARP]
    assert (arp.hwtype, arp.ptype, arp.hwlen, arp.plen, arp.op) == (1, 0x0800, 6, 4, 2)
    assert arp.hwsrc == "02:00:00:00:00:01"
    assert arp.psrc == str(VIP)
    assert arp.hwdst == CLIENT_MAC
    assert arp.pdst == "192.0.2.99"


def test_probe_reply_targets_zero_address() -> None:
    request = parse_arp(parse_ethernet(_request(psrc="0.0.0.0")).payload)
    pkt = Ether(build_arp_reply(request, OUR_MAC))
    assert pkt[ARP].pdst == "0.0.0.0"
    assert pkt[ARP].hwdst == CLIENT_MAC
    assert pkt.dst == CLIENT_MAC


@pytest.mark.parametrize("vlan", [None, 3])
def test_gratuitous_pair_matches_metallb(vlan: int | None) -> None:
    request, reply = build_gratuitous_arp(OUR_MAC, VIP, vlan)
    for frame, op in ((request, 1), (reply, 2)):
        assert len(frame) == 60
        pkt = Ether(frame)
        assert pkt.dst == "ff:ff:ff:ff:ff:ff"
        assert pkt.src == "02:00:00:00:00:01"
        assert (pkt[Dot1Q].vlan if vlan is not None else None) == vlan
        arp = pkt[ARP]
        assert arp.op == op
        assert arp.hwsrc == "02:00:00:00:00:01"
        assert arp.psrc == arp.pdst == str(VIP)
        assert arp.hwdst == "ff:ff:ff:ff:ff:ff"
        # scapy rebuilds the same bytes from the dissected fields
        assert bytes(pkt) == frame


@pytest.mark.parametrize(
    ("arp", "reason"),
    [
        (ARP(hwtype=6), MalformedReason.BAD_HW_TYPE),
        (ARP(ptype=0x86DD), MalformedReason.BAD_PROTO_TYPE),
        (ARP(op=3), MalformedReason.BAD_OPCODE),
    ],
)
def test_malformed_fields(arp: ARP, reason: MalformedReason) -> None:
    arp.hwlen, arp.plen = 6, 4
    arp.hwsrc, arp.hwdst, arp.psrc, arp.pdst = CLIENT_MAC, "00:00:00:00:00:00", "1.2.3.4", "1.2.3.5"
    with pytest.raises(MalformedPacket) as info:
        parse_arp(bytes(arp))
    assert info.value.reason == reason


def test_malformed_lengths() -> None:
    good = bytes(_request())[14:]
    raw = bytearray(good)
    raw[4] = 8
    with pytest.raises(MalformedPacket) as info:
        parse_arp(bytes(raw))
    assert info.value.reason == MalformedReason.BAD_ADDR_LEN
    with pytest.raises(MalformedPacket) as info:
        parse_arp(good[:27])
    assert info.value.reason == MalformedReason.TRUNCATED
