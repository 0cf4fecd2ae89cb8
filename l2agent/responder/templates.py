"""Answers from templates: the common request becomes its reply with a few slices.

``decide`` builds every answer from parsed dataclasses (6-10 microseconds a frame); under a
flood for an owned IP that is the responder's whole budget. A :class:`ReplyTemplates` holds,
per owned IP of one interface, the reply with the requester's fields left out: an ARP reply
is ``requester MAC + template + requester MAC and IP``; a solicited NA is the template with
the requester's MAC, IP and the checksum (the template's part precomputed) patched in; the
answer to a DAD probe is one constant frame.

It answers only the plain cases (an untagged frame; ARP Ethernet/IPv4 request; NS with no
option or one Source Link-Layer Address option, even length) and returns ``None`` for
everything else, which then goes to ``decide``: the policy stays there. Whenever it answers,
the bytes and the IP are exactly ``decide``'s (a property test holds it to that).
"""

from __future__ import annotations

from collections.abc import Collection
from ipaddress import IPv4Address, IPv6Address

from l2agent.model.types import IPAddress
from l2agent.packets.ndp import build_na

__all__ = ["ReplyTemplates"]

_ARP_TYPE = b"\x08\x06"
_IPV6_TYPE = b"\x86\xdd"
_VLAN_TYPE = b"\x81\x00"
_ARP_REQUEST_HEAD = b"\x00\x01\x08\x00\x06\x04\x00\x01"  # Ethernet/IPv4, request
_ARP_REPLY_HEAD = b"\x00\x01\x08\x00\x06\x04\x00\x02"
_BROADCAST = b"\xff" * 6
_ALL_NODES = IPv6Address("ff02::1")
_ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"
_UNSPECIFIED = bytes(16)
_SOLICITED_PREFIX = IPv6Address("ff02::1:ff00:0").packed[:13]
_NA_IP_HEAD = bytes.fromhex("6000000000203aff")  # version 6, payload 32, ICMPv6, hop limit 255
_NA_SOLICITED = b"\x40\x00\x00\x00"  # S=1 O=0, reserved
_ARP_PAD = bytes(60 - 42)
_ARP_PAD_TAGGED = bytes(60 - 46)
_MAX_VID = 4094


class ReplyTemplates:
    """Reply templates for one interface (MAC ``mac``) answering for ``owned``.

    Solicited NAs come from the requested address, as ``decide`` builds them for the
    responder (its interface view has no link-local address).
    """

    __slots__ = ("_arp", "_dad", "_mac", "_na")

    def __init__(self, mac: bytes, owned: Collection[IPAddress]) -> None:
        if len(mac) != 6:
            raise ValueError("MAC must be 6 bytes")
        self._mac = mac
        # ARP: target IP (4 bytes) -> (IP, the reply between the two copies of the requester)
        self._arp: dict[bytes, tuple[IPAddress, bytes]] = {}
        # NS: target IP (16 bytes) -> (IP, head, tail, checksum partial sum)
        self._na: dict[bytes, tuple[IPAddress, bytes, bytes, int]] = {}
        self._dad: dict[bytes, bytes] = {}
        for ip in owned:
            packed = ip.packed
            if isinstance(ip, IPv4Address):
                middle = mac + _ARP_TYPE + _ARP_REPLY_HEAD + mac + packed
                self._arp[packed] = (ip, middle)
            elif packed[0] != 0xFF:  # parse_ns refuses a multicast target: no template
                icmp_tail = packed + b"\x02\x01" + mac  # target, TLLA option
                icmp_zero = b"\x88\x00\x00\x00" + _NA_SOLICITED + icmp_tail
                # Checksum words of everything but the destination (the requester).
                partial = (
                    int.from_bytes(packed, "big") + 32 + 58 + int.from_bytes(icmp_zero, "big")
                ) % 0xFFFF
                head = _NA_IP_HEAD + packed
                tail = _NA_SOLICITED + icmp_tail
                self._na[packed] = (ip, head, tail, partial)
                self._dad[packed] = build_na(
                    _ALL_NODES_MAC, mac, ip, _ALL_NODES, ip, solicited=False, override=True
                )

    def answer(self, frame: bytes, vlan: int | None = None) -> tuple[bytes, IPAddress] | None:
        """The reply to ``frame`` and the IP it answers for, or ``None``: ask ``decide``."""
        if vlan is not None and not 0 <= vlan <= _MAX_VID:
            return None
        ethertype = frame[12:14]
        if ethertype == _ARP_TYPE:
            return self._answer_arp(frame, vlan)
        if ethertype == _IPV6_TYPE:
            return self._answer_ns(frame, vlan)
        return None

    def _answer_arp(self, frame: bytes, vlan: int | None) -> tuple[bytes, IPAddress] | None:
        if len(frame) < 42 or frame[14:22] != _ARP_REQUEST_HEAD:
            return None
        mac = self._mac
        dst = frame[0:6]
        if (dst != _BROADCAST and dst != mac) or frame[6:12] == mac:
            return None
        hit = self._arp.get(frame[38:42])
        if hit is None:
            return None
        sender_mac = frame[22:28]
        if sender_mac != mac and frame[28:32] in self._arp:
            return None  # another MAC claims one of our IPs: decide reports the conflict
        ip, middle = hit
        if vlan is None:
            return sender_mac + middle + frame[22:32] + _ARP_PAD, ip
        tag = _VLAN_TYPE + vlan.to_bytes(2, "big")
        return sender_mac + mac + tag + middle[6:] + frame[22:32] + _ARP_PAD_TAGGED, ip

    def _answer_ns(self, frame: bytes, vlan: int | None) -> tuple[bytes, IPAddress] | None:
        if len(frame) < 78 or frame[14] >> 4 != 6 or frame[20] != 58 or frame[21] != 255:
            return None
        plen = int.from_bytes(frame[18:20], "big")
        if (plen != 24 and plen != 32) or 54 + plen > len(frame):
            return None
        if frame[54] != 135 or frame[55] != 0:  # Neighbor Solicitation, code 0
            return None
        hit = self._na.get(frame[62:78])
        if hit is None:
            return None
        mac = self._mac
        if frame[6:12] == mac:
            return None
        # Checksum over the pseudo-header and the message: a valid one sums to 0 mod 0xffff.
        if (int.from_bytes(frame[22 : 54 + plen], "big") + plen + 58) % 0xFFFF:
            return None
        src = frame[22:38]
        dst = frame[38:54]
        if src[0] == 0xFF:
            return None
        slla: bytes | None = None
        if plen == 32:
            if frame[78] != 1 or frame[79] != 1:  # exactly one SLLA option, 8 bytes
                return None
            slla = frame[80:86]
        eth_dst = frame[0:6]
        if (
            eth_dst != mac
            and eth_dst != _BROADCAST
            and not (dst[0] == 0xFF and eth_dst == b"\x33\x33" + dst[12:16])
        ):
            return None
        ip, head, tail, partial = hit
        if src == _UNSPECIFIED:  # DAD: to all nodes (RFC 4861 7.2.4)
            if slla is not None or dst[:13] != _SOLICITED_PREFIX:
                return None
            reply = self._dad[frame[62:78]]
            if vlan is not None:
                reply = reply[:12] + _VLAN_TYPE + vlan.to_bytes(2, "big") + reply[12:]
            return reply, ip
        folded = (partial + int.from_bytes(src, "big")) % 0xFFFF
        checksum = (0xFFFF - (folded or 0xFFFF)).to_bytes(2, "big")
        to = frame[6:12] if slla is None else slla
        ether = to + mac + (_IPV6_TYPE if vlan is None else _tag(vlan) + _IPV6_TYPE)
        return ether + head + src + b"\x88\x00" + checksum + tail, ip


def _tag(vlan: int) -> bytes:
    return _VLAN_TYPE + vlan.to_bytes(2, "big")
