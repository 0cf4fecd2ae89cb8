"""IPv6 Neighbor Discovery (RFC 4861): Neighbor Solicitation parsing, Advertisement builders.

``parse_ns`` applies RFC 4861 section 7.1.1 validation (hop limit 255, code 0, checksum,
length, non-zero option lengths, target not multicast, DAD rules) so ``decide`` only sees
solicitations a conforming node would act on. Advertisements carry a Target Link-Layer
Address option and hop limit 255, and leave from the interface's link-local address as
MetalLB's mdlayher/ndp connection does.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from ipaddress import IPv6Address

from l2agent.packets.errors import MalformedPacket, MalformedReason
from l2agent.packets.ethernet import EtherType, build_ethernet

__all__ = [
    "ALL_NODES",
    "ALL_NODES_MAC",
    "IPV6_HEADER_LEN",
    "NS_MIN_LEN",
    "UNSPECIFIED",
    "IcmpV6Type",
    "NdOption",
    "NeighborSolicitation",
    "build_na",
    "build_solicited_na",
    "build_unsolicited_na",
    "icmpv6_checksum",
    "is_solicited_node_address",
    "multicast_mac",
    "parse_ns",
    "solicited_node_address",
    "solicited_node_mac",
]

IPV6_HEADER_LEN = 40
NS_MIN_LEN = 24  # ICMPv6 header (4) + reserved (4) + target (16)
_NEXT_HEADER_ICMPV6 = 58
_ND_HOP_LIMIT = 255

ALL_NODES = IPv6Address("ff02::1")
ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"
UNSPECIFIED = IPv6Address("::")
_SOLICITED_NODE_PREFIX = IPv6Address("ff02::1:ff00:0").packed[:13]
_SOLICITED_NODE_BASE = int(IPv6Address("ff02::1:ff00:0"))

_NA_FLAG_ROUTER = 0x80
_NA_FLAG_SOLICITED = 0x40
_NA_FLAG_OVERRIDE = 0x20

_IPV6 = struct.Struct("!IHBB16s16s")
_ICMP_HEAD = struct.Struct("!BBH")
_NA = struct.Struct("!BBHB3x16sBB6s")  # type, code, cksum, flags, reserved, target, TLLA
_NA_LEN = _NA.size
_PSEUDO_TAIL = struct.Struct("!I3xB")


class IcmpV6Type(enum.IntEnum):
    """ICMPv6 types used by Neighbor Discovery. Append only."""

    ROUTER_SOLICITATION = 133
    ROUTER_ADVERTISEMENT = 134
    NEIGHBOR_SOLICITATION = 135
    NEIGHBOR_ADVERTISEMENT = 136
    REDIRECT = 137


class NdOption(enum.IntEnum):
    """Neighbor Discovery option types we read or write. Append only."""

    SOURCE_LINK_LAYER_ADDRESS = 1
    TARGET_LINK_LAYER_ADDRESS = 2


@dataclass(frozen=True, slots=True)
class NeighborSolicitation:
    """A validated NS. ``source_lladdr`` is the SLLA option's MAC, if the sender gave one."""

    src_ip: IPv6Address
    dst_ip: IPv6Address
    target: IPv6Address
    source_lladdr: bytes | None
    hop_limit: int

    @property
    def is_dad(self) -> bool:
        """Duplicate Address Detection probe: sent from the unspecified address."""
        return self.src_ip == UNSPECIFIED


def icmpv6_checksum(src: bytes, dst: bytes, icmp: bytes) -> int:
    """Internet checksum of the IPv6 pseudo-header plus ``icmp`` (checksum field zeroed).

    Uses the identity that a ones'-complement sum of 16-bit words is the big integer of
    the bytes modulo 0xffff, which keeps it to one C-level conversion per packet.
    """
    data = src + dst + _PSEUDO_TAIL.pack(len(icmp), _NEXT_HEADER_ICMPV6) + icmp
    if len(data) & 1:
        data += b"\x00"
    folded = int.from_bytes(data, "big") % 0xFFFF
    return 0xFFFF - (folded or 0xFFFF)


def _checksum_ok(src: bytes, dst: bytes, icmp: bytes) -> bool:
    data = src + dst + _PSEUDO_TAIL.pack(len(icmp), _NEXT_HEADER_ICMPV6) + icmp
    if len(data) & 1:
        data += b"\x00"
    # The pseudo-header holds next header 58, so the sum is never all-zero: a valid
    # packet sums to 0xffff, i.e. 0 modulo 0xffff.
    return int.from_bytes(data, "big") % 0xFFFF == 0


def solicited_node_address(ip: IPv6Address) -> IPv6Address:
    """ff02::1:ffXX:XXXX built from the low 24 bits of ``ip`` (RFC 4291 section 2.7.1)."""
    return IPv6Address(_SOLICITED_NODE_BASE | (int(ip) & 0xFFFFFF))


def is_solicited_node_address(ip: IPv6Address) -> bool:
    """True if ``ip`` is in ff02::1:ff00:0/104."""
    return ip.packed[:13] == _SOLICITED_NODE_PREFIX


def multicast_mac(ip: IPv6Address) -> bytes:
    """Ethernet group address 33:33 + low 32 bits of an IPv6 multicast address (RFC 2464)."""
    return b"\x33\x33" + ip.packed[12:]


def solicited_node_mac(ip: IPv6Address) -> bytes:
    """33:33:ff:XX:XX:XX: the MAC of ``ip``'s solicited-node group."""
    return b"\x33\x33\xff" + ip.packed[13:]


def parse_ns(packet: bytes) -> NeighborSolicitation:
    """Validate and parse an IPv6 packet (the Ethernet payload) holding a Neighbor Solicitation.

    Extension headers are not followed: an NS behind one is rejected as ``BAD_NEXT_HEADER``
    (the kernel filter never lets those up either).
    """
    if len(packet) < IPV6_HEADER_LEN:
        raise MalformedPacket(MalformedReason.TRUNCATED, f"IPv6 header: {len(packet)} bytes")
    vtf, plen, next_header, hop_limit, src, dst = _IPV6.unpack_from(packet)
    if vtf >> 28 != 6:
        raise MalformedPacket(MalformedReason.BAD_VERSION, f"IP version {vtf >> 28}")
    if IPV6_HEADER_LEN + plen > len(packet):
        raise MalformedPacket(
            MalformedReason.TRUNCATED, f"IPv6 payload length {plen} > {len(packet) - 40}"
        )
    if next_header != _NEXT_HEADER_ICMPV6:
        raise MalformedPacket(MalformedReason.BAD_NEXT_HEADER, f"next header {next_header}")
    if hop_limit != _ND_HOP_LIMIT:
        raise MalformedPacket(MalformedReason.BAD_HOP_LIMIT, f"hop limit {hop_limit}")
    icmp = packet[IPV6_HEADER_LEN : IPV6_HEADER_LEN + plen]
    if len(icmp) < NS_MIN_LEN:
        raise MalformedPacket(MalformedReason.TRUNCATED, f"NS: {len(icmp)} bytes")
    icmp_type, code, _ = _ICMP_HEAD.unpack_from(icmp)
    if icmp_type != IcmpV6Type.NEIGHBOR_SOLICITATION:
        raise MalformedPacket(MalformedReason.BAD_ICMP_TYPE, f"ICMPv6 type {icmp_type}")
    if code != 0:
        raise MalformedPacket(MalformedReason.BAD_ICMP_CODE, f"ICMPv6 code {code}")
    if not _checksum_ok(src, dst, icmp):
        raise MalformedPacket(MalformedReason.BAD_CHECKSUM, "ICMPv6 checksum")
    if src[0] == 0xFF:
        raise MalformedPacket(MalformedReason.BAD_ADDRESS, "multicast source address")
    target = icmp[8:24]
    if target[0] == 0xFF:
        raise MalformedPacket(MalformedReason.BAD_TARGET, "multicast target address")
    slla = _walk_options(icmp, NS_MIN_LEN)
    src_ip = IPv6Address(src)
    dst_ip = IPv6Address(dst)
    if src_ip == UNSPECIFIED:
        if not is_solicited_node_address(dst_ip):
            raise MalformedPacket(MalformedReason.BAD_ADDRESS, "DAD NS not to solicited-node")
        if slla is not None:
            raise MalformedPacket(MalformedReason.BAD_OPTION, "DAD NS with SLLA option")
    return NeighborSolicitation(src_ip, dst_ip, IPv6Address(target), slla, hop_limit)


def _walk_options(icmp: bytes, offset: int) -> bytes | None:
    """Walk ND options; return the first SLLA MAC. Zero-length options are invalid."""
    slla: bytes | None = None
    end = len(icmp)
    while offset < end:
        if offset + 2 > end:
            raise MalformedPacket(MalformedReason.TRUNCATED, "ND option header")
        opt_type = icmp[offset]
        opt_len = icmp[offset + 1] * 8
        if opt_len == 0:
            raise MalformedPacket(MalformedReason.BAD_OPTION, f"option {opt_type} length 0")
        if offset + opt_len > end:
            raise MalformedPacket(MalformedReason.TRUNCATED, f"option {opt_type} overruns")
        if opt_type == NdOption.SOURCE_LINK_LAYER_ADDRESS and slla is None:
            slla = icmp[offset + 2 : offset + 8]
        offset += opt_len
    return slla


def build_na(
    eth_dst: bytes,
    our_mac: bytes,
    src_ip: IPv6Address,
    dst_ip: IPv6Address,
    target: IPv6Address,
    *,
    solicited: bool,
    override: bool,
    router: bool = False,
    vlan: int | None = None,
) -> bytes:
    """A full Neighbor Advertisement frame with a TLLA option = ``our_mac``, hop limit 255."""
    flags = (
        (_NA_FLAG_ROUTER if router else 0)
        | (_NA_FLAG_SOLICITED if solicited else 0)
        | (_NA_FLAG_OVERRIDE if override else 0)
    )
    src = src_ip.packed
    dst = dst_ip.packed
    t = target.packed
    tlla = NdOption.TARGET_LINK_LAYER_ADDRESS
    unsummed = _NA.pack(IcmpV6Type.NEIGHBOR_ADVERTISEMENT, 0, 0, flags, t, tlla, 1, our_mac)
    cksum = icmpv6_checksum(src, dst, unsummed)
    icmp = _NA.pack(IcmpV6Type.NEIGHBOR_ADVERTISEMENT, 0, cksum, flags, t, tlla, 1, our_mac)
    ip6 = _IPV6.pack(0x60000000, _NA_LEN, _NEXT_HEADER_ICMPV6, _ND_HOP_LIMIT, src, dst) + icmp
    return build_ethernet(eth_dst, our_mac, EtherType.IPV6, ip6, vlan)


def build_solicited_na(
    ns: NeighborSolicitation,
    our_mac: bytes,
    eth_src_of_request: bytes,
    vlan: int | None = None,
    our_ip: IPv6Address | None = None,
) -> bytes:
    """Answer ``ns`` for its target.

    Normal case (MetalLB): S=1 O=0, unicast to the NS source IP and to the SLLA MAC, or to
    the request's Ethernet source when the NS had no SLLA (unicast NUD probes, MetalLB issue
    #2920). DAD probe (source ::): RFC 4861 section 7.2.4 says S=0 and multicast to all-nodes,
    so the prober sees the address is taken; O=1 so caches update.
    ``our_ip`` is the IPv6 source (the interface link-local); ``None`` uses the target.
    """
    src_ip = ns.target if our_ip is None else our_ip
    if ns.is_dad:
        return build_na(
            ALL_NODES_MAC,
            our_mac,
            src_ip,
            ALL_NODES,
            ns.target,
            solicited=False,
            override=True,
            vlan=vlan,
        )
    eth_dst = ns.source_lladdr if ns.source_lladdr is not None else eth_src_of_request
    return build_na(
        eth_dst, our_mac, src_ip, ns.src_ip, ns.target, solicited=True, override=False, vlan=vlan
    )


def build_unsolicited_na(
    our_mac: bytes,
    our_link_local: IPv6Address | None,
    vip: IPv6Address,
    vlan: int | None = None,
) -> bytes:
    """One announcement round for ``vip``: S=0 O=1 to ff02::1 from the link-local address."""
    src_ip = vip if our_link_local is None else our_link_local
    return build_na(
        ALL_NODES_MAC, our_mac, src_ip, ALL_NODES, vip, solicited=False, override=True, vlan=vlan
    )
