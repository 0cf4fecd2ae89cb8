"""Sans-IO layer 2 codec: Ethernet/802.1Q, ARP and IPv6 Neighbor Discovery frames.

Parsers raise only :class:`MalformedPacket`; builders return complete frames ready for an
AF_PACKET socket.
"""

from l2agent.packets.arp import (
    ArpOp,
    ArpPacket,
    build_arp,
    build_arp_reply,
    build_gratuitous_arp,
    parse_arp,
)
from l2agent.packets.errors import MalformedPacket, MalformedReason
from l2agent.packets.ethernet import (
    BROADCAST_MAC,
    EthernetFrame,
    EtherType,
    build_ethernet,
    format_mac,
    parse_ethernet,
    parse_mac,
    vlan_from_auxdata,
)
from l2agent.packets.ndp import (
    ALL_NODES,
    ALL_NODES_MAC,
    NeighborSolicitation,
    build_na,
    build_solicited_na,
    build_unsolicited_na,
    multicast_mac,
    parse_ns,
    solicited_node_address,
    solicited_node_mac,
)

__all__ = [
    "ALL_NODES",
    "ALL_NODES_MAC",
    "BROADCAST_MAC",
    "ArpOp",
    "ArpPacket",
    "EtherType",
    "EthernetFrame",
    "MalformedPacket",
    "MalformedReason",
    "NeighborSolicitation",
    "build_arp",
    "build_arp_reply",
    "build_ethernet",
    "build_gratuitous_arp",
    "build_na",
    "build_solicited_na",
    "build_unsolicited_na",
    "format_mac",
    "multicast_mac",
    "parse_arp",
    "parse_ethernet",
    "parse_mac",
    "parse_ns",
    "solicited_node_address",
    "solicited_node_mac",
    "vlan_from_auxdata",
]
