"""ARP over Ethernet/IPv4 (RFC 826): request parsing, reply and gratuitous builders.

Gratuitous rounds follow MetalLB (mdlayher/arp ``NewPacket``): a broadcast request and then
a broadcast reply, sender IP = target IP = VIP, target MAC ff:ff:ff:ff:ff:ff. Sending both
covers stacks that only learn from one kind (MetalLB issues #123, #172).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

from l2agent.packets.errors import MalformedPacket, MalformedReason
from l2agent.packets.ethernet import BROADCAST_MAC, EtherType, build_ethernet

__all__ = [
    "ARP_LEN",
    "ArpOp",
    "ArpPacket",
    "build_arp",
    "build_arp_reply",
    "build_gratuitous_arp",
    "parse_arp",
]

ARP_LEN = 28
_HTYPE_ETHERNET = 1
_ARP = struct.Struct("!HHBBH6s4s6s4s")


class ArpOp(enum.IntEnum):
    """ARP operation codes we accept. Append only."""

    REQUEST = 1
    REPLY = 2


@dataclass(frozen=True, slots=True)
class ArpPacket:
    """An Ethernet/IPv4 ARP packet."""

    op: ArpOp
    sender_mac: bytes
    sender_ip: IPv4Address
    target_mac: bytes
    target_ip: IPv4Address

    def __post_init__(self) -> None:
        if len(self.sender_mac) != 6 or len(self.target_mac) != 6:
            raise ValueError("MAC addresses must be 6 bytes")


def parse_arp(payload: bytes) -> ArpPacket:
    """Parse an Ethernet payload as Ethernet/IPv4 ARP; trailing padding is ignored."""
    if len(payload) < ARP_LEN:
        raise MalformedPacket(MalformedReason.TRUNCATED, f"ARP: {len(payload)} bytes")
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(payload)
    if htype != _HTYPE_ETHERNET:
        raise MalformedPacket(MalformedReason.BAD_HW_TYPE, f"ARP hardware type {htype}")
    if ptype != EtherType.IPV4:
        raise MalformedPacket(MalformedReason.BAD_PROTO_TYPE, f"ARP protocol type {ptype:#06x}")
    if hlen != 6 or plen != 4:
        raise MalformedPacket(MalformedReason.BAD_ADDR_LEN, f"ARP hlen {hlen} plen {plen}")
    if op == ArpOp.REQUEST:
        arp_op = ArpOp.REQUEST
    elif op == ArpOp.REPLY:
        arp_op = ArpOp.REPLY
    else:
        raise MalformedPacket(MalformedReason.BAD_OPCODE, f"ARP op {op}")
    return ArpPacket(arp_op, sha, IPv4Address(spa), tha, IPv4Address(tpa))


def build_arp(
    op: ArpOp,
    eth_dst: bytes,
    sender_mac: bytes,
    sender_ip: IPv4Address,
    target_mac: bytes,
    target_ip: IPv4Address,
    vlan: int | None = None,
) -> bytes:
    """One full ARP frame from our ``sender_mac`` (Ethernet source = ARP sender MAC)."""
    body = _ARP.pack(
        _HTYPE_ETHERNET,
        EtherType.IPV4,
        6,
        4,
        op,
        sender_mac,
        sender_ip.packed,
        target_mac,
        target_ip.packed,
    )
    return build_ethernet(eth_dst, sender_mac, EtherType.ARP, body, vlan)


def build_arp_reply(request: ArpPacket, our_mac: bytes, vlan: int | None = None) -> bytes:
    """Answer ``request`` for its target IP with ``our_mac``, unicast to the requester.

    A probe (sender IP 0.0.0.0) gets target IP 0.0.0.0 back, which is how the owner defends
    its address (RFC 5227): the prober sees a reply for the IP it wanted and backs off.
    """
    return build_arp(
        ArpOp.REPLY,
        request.sender_mac,
        our_mac,
        request.target_ip,
        request.sender_mac,
        request.sender_ip,
        vlan,
    )


def build_gratuitous_arp(
    our_mac: bytes, vip: IPv4Address, vlan: int | None = None
) -> tuple[bytes, bytes]:
    """One announcement round: (broadcast request, broadcast reply) for ``vip``."""
    request = build_arp(ArpOp.REQUEST, BROADCAST_MAC, our_mac, vip, BROADCAST_MAC, vip, vlan)
    reply = build_arp(ArpOp.REPLY, BROADCAST_MAC, our_mac, vip, BROADCAST_MAC, vip, vlan)
    return request, reply
