"""Ethernet II framing with at most one 802.1Q tag: parse and build with precompiled structs.

The responder's hot path runs through here for every frame the kernel filter lets up, so
parsing is a couple of ``struct`` unpacks and slices, nothing more.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from l2agent.model.types import format_mac, parse_mac
from l2agent.packets.errors import MalformedPacket, MalformedReason

__all__ = [
    "BROADCAST_MAC",
    "ETH_HEADER_LEN",
    "MIN_FRAME_LEN",
    "VLAN_TAG_LEN",
    "EtherType",
    "EthernetFrame",
    "build_ethernet",
    "format_mac",
    "is_multicast_mac",
    "parse_ethernet",
    "parse_mac",
    "vlan_from_auxdata",
]

BROADCAST_MAC = b"\xff" * 6
ETH_HEADER_LEN = 14
VLAN_TAG_LEN = 4
MIN_FRAME_LEN = 60
"""Minimum Ethernet frame length without the FCS; shorter frames are padded with zeros."""

_MIN_ETHERTYPE = 0x0600  # below this the field is an IEEE 802.3 length, not an EtherType
_MAX_VID = 4094  # 4095 is reserved (IEEE 802.1Q)

_ETH = struct.Struct("!6s6sH")
_TAG = struct.Struct("!HH")
_ETH_TAGGED = struct.Struct("!6s6sHHH")
_AUXDATA = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata (linux/if_packet.h)
_TP_STATUS_VLAN_VALID = 1 << 4
_TP_STATUS_VLAN_TPID_VALID = 1 << 6


class EtherType(enum.IntEnum):
    """EtherTypes we read or write. Append only."""

    IPV4 = 0x0800
    ARP = 0x0806
    VLAN = 0x8100
    IPV6 = 0x86DD


@dataclass(frozen=True, slots=True)
class EthernetFrame:
    """One parsed frame. ``payload`` keeps any trailing padding: upper layers trim it."""

    dst: bytes
    src: bytes
    ethertype: int
    vlan: int | None
    payload: bytes

    def __post_init__(self) -> None:
        if len(self.dst) != 6 or len(self.src) != 6:
            raise ValueError("MAC addresses must be 6 bytes")
        if self.vlan is not None and not 0 <= self.vlan <= _MAX_VID:
            raise ValueError(f"VLAN ID out of range: {self.vlan}")


def is_multicast_mac(mac: bytes) -> bool:
    """True for group addresses (I/G bit set), which includes broadcast."""
    return bool(mac[0] & 1)


def parse_ethernet(frame: bytes) -> EthernetFrame:
    """Split a frame into addresses, optional 802.1Q VID, EtherType and payload."""
    if len(frame) < ETH_HEADER_LEN:
        raise MalformedPacket(MalformedReason.TRUNCATED, f"ethernet header: {len(frame)} bytes")
    dst, src, ethertype = _ETH.unpack_from(frame)
    vlan: int | None = None
    offset = ETH_HEADER_LEN
    if ethertype == EtherType.VLAN:
        if len(frame) < ETH_HEADER_LEN + VLAN_TAG_LEN:
            raise MalformedPacket(MalformedReason.TRUNCATED, "802.1Q tag")
        tci, ethertype = _TAG.unpack_from(frame, ETH_HEADER_LEN)
        vlan = tci & 0x0FFF
        if vlan > _MAX_VID:
            raise MalformedPacket(MalformedReason.BAD_VLAN, "VID 4095 is reserved")
        if ethertype == EtherType.VLAN:
            raise MalformedPacket(MalformedReason.BAD_VLAN, "more than one 802.1Q tag")
        offset += VLAN_TAG_LEN
    if ethertype < _MIN_ETHERTYPE:
        raise MalformedPacket(MalformedReason.BAD_ETHERTYPE, f"802.3 length field {ethertype}")
    return EthernetFrame(dst, src, ethertype, vlan, frame[offset:])


def build_ethernet(
    dst: bytes, src: bytes, ethertype: int, payload: bytes, vlan: int | None = None
) -> bytes:
    """Frame ``payload``; with ``vlan`` add one 802.1Q tag (PCP 0). Pads to 60 bytes."""
    if vlan is None:
        frame = _ETH.pack(dst, src, ethertype) + payload
    else:
        if not 0 <= vlan <= _MAX_VID:
            raise ValueError(f"VLAN ID out of range: {vlan}")
        frame = _ETH_TAGGED.pack(dst, src, EtherType.VLAN, vlan, ethertype) + payload
    if len(frame) < MIN_FRAME_LEN:
        frame += bytes(MIN_FRAME_LEN - len(frame))
    return frame


def vlan_from_auxdata(auxdata: bytes) -> int | None:
    """The VID Linux moved out of a received frame, from a PACKET_AUXDATA control message.

    Linux strips the 802.1Q tag into skb metadata before packet sockets see a frame, so
    this is where a tagged request's VID usually is; pass it to ``decide(..., vlan=)``.
    ``None`` when untagged. An 802.1ad (QinQ) outer tag is refused: we would answer with
    the wrong TPID.
    """
    if len(auxdata) < _AUXDATA.size:
        raise MalformedPacket(MalformedReason.TRUNCATED, f"tpacket_auxdata: {len(auxdata)} bytes")
    status, _, _, _, _, tci, tpid = _AUXDATA.unpack_from(auxdata)
    if not status & _TP_STATUS_VLAN_VALID:
        return None
    if status & _TP_STATUS_VLAN_TPID_VALID and tpid != EtherType.VLAN:
        raise MalformedPacket(MalformedReason.BAD_VLAN, f"VLAN TPID {tpid:#06x}")
    vid: int = tci & 0x0FFF
    if vid > _MAX_VID:
        raise MalformedPacket(MalformedReason.BAD_VLAN, "VID 4095 is reserved")
    return vid
