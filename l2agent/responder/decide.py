"""The responder's whole policy as one pure function: answer this frame, or say why not.

Follows MetalLB's ARP/NDP responders (``internal/layer2/arp.go``, ``ndp.go``) with three
deliberate differences: NS without a Source Link-Layer Address option is answered (unicast
NUD probes, MetalLB issue #2920), DAD probes for an owned address are answered to ff02::1
(RFC 4861 section 7.2.4), and our own frames looped back by the kernel are ignored.
The socket loop only reads, calls :func:`decide`, sends and counts.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Container, Mapping
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import TypeAlias

from l2agent.model.types import IPAddress
from l2agent.packets.arp import ArpOp, build_arp_reply, parse_arp
from l2agent.packets.errors import MalformedPacket, MalformedReason
from l2agent.packets.ethernet import BROADCAST_MAC, EtherType, parse_ethernet
from l2agent.packets.ndp import build_solicited_na, multicast_mac, parse_ns

__all__ = [
    "Drop",
    "DropReason",
    "InterfaceView",
    "Owned",
    "Reply",
    "ReplyKind",
    "decide",
]

Owned: TypeAlias = Collection[IPAddress] | Mapping[IPAddress, Container[str] | None]
"""IPs this node answers for. A set means "on this interface"; a mapping gives the interface
names each IP is announced on (``None`` = every interface)."""


class DropReason(enum.Enum):
    """Why a frame got no answer. Values are metric label values (MetalLB's names first)."""

    ARP_REPLY = "arpReply"
    MESSAGE_TYPE = "messageType"
    ETHERNET_DESTINATION = "ethernetDestination"
    ANNOUNCE_IP = "announceIP"
    NOT_MATCH_INTERFACE = "notMatchInterface"
    MALFORMED = "malformed"
    OWN_SOURCE = "ownSource"
    ADDRESS_CONFLICT = "addressConflict"
    """Another MAC claims (ARP sender) an IP we announce here: ``Drop.sender_mac`` says who."""


class ReplyKind(enum.Enum):
    """What kind of answer a :class:`Reply` carries."""

    ARP_REPLY = "arpReply"
    NA_SOLICITED = "naSolicited"
    NA_DAD = "naDad"


@dataclass(frozen=True, slots=True)
class InterfaceView:
    """What ``decide`` needs to know about the receiving interface."""

    name: str
    mac: bytes
    link_local: IPv6Address | None = None

    def __post_init__(self) -> None:
        if len(self.mac) != 6:
            raise ValueError(f"interface {self.name}: MAC must be 6 bytes")


@dataclass(frozen=True, slots=True)
class Reply:
    """Send ``frame`` on the receiving interface; ``ip`` is the owned IP it answers for."""

    frame: bytes
    ip: IPAddress
    kind: ReplyKind


@dataclass(frozen=True, slots=True)
class Drop:
    """No answer. ``ip`` is the requested IP when the frame got far enough to name one.
    ``detail`` is the parser's reason for malformed frames (for a debug log line)."""

    reason: DropReason
    ip: IPAddress | None = None
    detail: MalformedReason | None = None
    sender_mac: bytes | None = None


_MAX_VID = 4094
_NOT_ND = (MalformedReason.BAD_NEXT_HEADER, MalformedReason.BAD_ICMP_TYPE)


def _ownership(ip: IPAddress, iface: InterfaceView, owned: Owned) -> DropReason | None:
    if isinstance(owned, Mapping):
        if ip not in owned:
            return DropReason.ANNOUNCE_IP
        names = owned[ip]
        if names is not None and iface.name not in names:
            return DropReason.NOT_MATCH_INTERFACE
        return None
    return None if ip in owned else DropReason.ANNOUNCE_IP


def decide(
    frame: bytes, iface: InterfaceView, owned: Owned, vlan: int | None = None
) -> Reply | Drop:
    """Answer an ARP request or Neighbor Solicitation for an owned IP, else say why not.

    ``vlan`` is the VID the kernel moved into PACKET_AUXDATA, if any; a tag still in the
    frame wins. Replies are tagged with the request's VID. Never raises for any ``frame``
    (logging and counting drops is the caller's job: it has the interface and the counters).
    """
    try:
        eth = parse_ethernet(frame)
    except MalformedPacket as exc:
        return Drop(DropReason.MALFORMED, None, exc.reason)
    if eth.src == iface.mac:
        return Drop(DropReason.OWN_SOURCE)
    tag = vlan if eth.vlan is None else eth.vlan
    if tag is not None and not 0 <= tag <= _MAX_VID:  # 4095 is reserved: no reply can carry it
        return Drop(DropReason.MALFORMED, None, MalformedReason.BAD_VLAN)
    if eth.ethertype == EtherType.ARP:
        return _decide_arp(eth.payload, eth.dst, iface, owned, tag)
    if eth.ethertype == EtherType.IPV6:
        return _decide_ns(eth.payload, eth.dst, eth.src, iface, owned, tag)
    return Drop(DropReason.MESSAGE_TYPE)


def _decide_arp(
    payload: bytes, eth_dst: bytes, iface: InterfaceView, owned: Owned, tag: int | None
) -> Reply | Drop:
    try:
        arp = parse_arp(payload)
    except MalformedPacket as exc:
        return Drop(DropReason.MALFORMED, None, exc.reason)
    if arp.sender_mac != iface.mac and _ownership(arp.sender_ip, iface, owned) is None:
        # Someone else says "this IP is at my MAC" (a reply, or a gratuitous request): two
        # stations answer for one of our IPs. An ARP probe (sender 0.0.0.0) says nothing.
        return Drop(DropReason.ADDRESS_CONFLICT, arp.sender_ip, sender_mac=arp.sender_mac)
    if arp.op != ArpOp.REQUEST:
        return Drop(DropReason.ARP_REPLY, arp.target_ip)
    if eth_dst != BROADCAST_MAC and eth_dst != iface.mac:
        return Drop(DropReason.ETHERNET_DESTINATION, arp.target_ip)
    why = _ownership(arp.target_ip, iface, owned)
    if why is not None:
        return Drop(why, arp.target_ip)
    return Reply(build_arp_reply(arp, iface.mac, tag), arp.target_ip, ReplyKind.ARP_REPLY)


def _decide_ns(
    payload: bytes,
    eth_dst: bytes,
    eth_src: bytes,
    iface: InterfaceView,
    owned: Owned,
    tag: int | None,
) -> Reply | Drop:
    try:
        ns = parse_ns(payload)
    except MalformedPacket as exc:
        if exc.reason in _NOT_ND:
            return Drop(DropReason.MESSAGE_TYPE)
        return Drop(DropReason.MALFORMED, None, exc.reason)
    if (
        eth_dst != iface.mac
        and eth_dst != BROADCAST_MAC
        and not (ns.dst_ip.is_multicast and eth_dst == multicast_mac(ns.dst_ip))
    ):
        return Drop(DropReason.ETHERNET_DESTINATION, ns.target)
    why = _ownership(ns.target, iface, owned)
    if why is not None:
        return Drop(why, ns.target)
    kind = ReplyKind.NA_DAD if ns.is_dad else ReplyKind.NA_SOLICITED
    return Reply(build_solicited_na(ns, iface.mac, eth_src, tag, iface.link_local), ns.target, kind)
