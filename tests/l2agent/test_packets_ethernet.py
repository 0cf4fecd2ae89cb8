"""Ethernet/802.1Q framing against scapy as the judge."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.l2 import Dot1Q, Ether

from l2agent.packets import (
    BROADCAST_MAC,
    EtherType,
    MalformedPacket,
    MalformedReason,
    build_ethernet,
    format_mac,
    parse_ethernet,
    parse_mac,
    vlan_from_auxdata,
)

SRC = parse_mac("02:00:00:00:00:0a")
DST = parse_mac("02:00:00:00:00:0b")


def test_mac_text_round_trip() -> None:
    assert format_mac(SRC) == "02:00:00:00:00:0a"
    assert parse_mac("02-00-00-00-00-0A") == SRC
    with pytest.raises(ValueError):
        parse_mac("02:00:00:00:00")


@pytest.mark.parametrize("vlan", [None, 0, 1, 100, 4094])
def test_build_dissects_in_scapy_and_pads(vlan: int | None) -> None:
    frame = build_ethernet(DST, SRC, 0x88B5, b"hello", vlan)
    assert len(frame) == 60
    pkt = Ether(frame)
    assert pkt.src == "02:00:00:00:00:0a"
    assert pkt.dst == "02:00:00:00:00:0b"
    if vlan is None:
        assert pkt.type == 0x88B5
        assert Dot1Q not in pkt
        assert bytes(pkt.payload).startswith(b"hello")
    else:
        assert pkt.type == EtherType.VLAN
        assert pkt[Dot1Q].vlan == vlan
        assert pkt[Dot1Q].prio == 0
        assert pkt[Dot1Q].type == 0x88B5
        assert bytes(pkt[Dot1Q].payload).startswith(b"hello")


def test_long_payload_not_padded() -> None:
    payload = bytes(range(100))
    assert (
        build_ethernet(DST, SRC, 0x0800, payload)
        == bytes(Ether(dst=DST, src=SRC, type=0x0800)) + payload
    )


@pytest.mark.parametrize("vlan", [None, 7])
def test_parse_scapy_frames(vlan: int | None) -> None:
    pkt = Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:0a", type=0x88B5)
    if vlan is not None:
        pkt = Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:0a") / Dot1Q(
            vlan=vlan, prio=5, type=0x88B5
        )
    raw = bytes(pkt / b"payload!")
    eth = parse_ethernet(raw)
    assert eth.dst == BROADCAST_MAC
    assert eth.src == SRC
    assert eth.vlan == vlan
    assert eth.payload == b"payload!"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", MalformedReason.TRUNCATED),
        (bytes(13), MalformedReason.TRUNCATED),
        (bytes(12) + b"\x81\x00\x00", MalformedReason.TRUNCATED),
        (bytes(12) + b"\x05\xdc" + bytes(46), MalformedReason.BAD_ETHERTYPE),
        (bytes(12) + b"\x81\x00\x0f\xff\x08\x06" + bytes(42), MalformedReason.BAD_VLAN),
        (bytes(12) + b"\x81\x00\x00\x01\x81\x00" + bytes(42), MalformedReason.BAD_VLAN),
    ],
)
def test_malformed(raw: bytes, reason: MalformedReason) -> None:
    with pytest.raises(MalformedPacket) as info:
        parse_ethernet(raw)
    assert info.value.reason == reason


def test_build_rejects_bad_vid() -> None:
    with pytest.raises(ValueError):
        build_ethernet(DST, SRC, 0x0800, b"", vlan=4095)


def _aux(status: int, tci: int = 0, tpid: int = 0) -> bytes:
    return struct.pack("=IIIHHHH", status, 60, 60, 0, 14, tci, tpid)


@pytest.mark.parametrize(
    ("aux", "vid"),
    [
        (_aux(0), None),
        (_aux(0x10, 0x2014, 0), 20),  # older kernels: no TPID, PCP bits ignored
        (_aux(0x50, 0x0064, 0x8100), 100),
        (_aux(0x50, 0x0000, 0x8100), 0),
    ],
)
def test_vlan_from_auxdata(aux: bytes, vid: int | None) -> None:
    assert vlan_from_auxdata(aux) == vid


@pytest.mark.parametrize(
    ("aux", "reason"),
    [
        (_aux(0x10)[:19], MalformedReason.TRUNCATED),
        (_aux(0x50, 7, 0x88A8), MalformedReason.BAD_VLAN),
        (_aux(0x10, 0x0FFF), MalformedReason.BAD_VLAN),
    ],
)
def test_vlan_from_auxdata_refuses(aux: bytes, reason: MalformedReason) -> None:
    with pytest.raises(MalformedPacket) as info:
        vlan_from_auxdata(aux)
    assert info.value.reason == reason
