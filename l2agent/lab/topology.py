"""The lab's address plan: documentation ranges only, and stable MACs so logs read easily.

LAN 192.0.2.0/24 and 2001:db8::/64 (on-link for everyone, so the client ARPs/solicits for the
VIPs directly, as a client on the same L2 segment does):

- node *i* (1-based): ``192.0.2.(10+i)``, ``2001:db8::(10+i)`` (hex digits read as the
  decimal: node1 is ``2001:db8::11``), MAC ``02:1a:b0:00:00:(i)``.
- client: ``192.0.2.100``, ``2001:db8::100``, MAC ``02:1a:b0:00:00:64``.
- VIPs: ``192.0.2.200``-``.249`` and ``2001:db8::200``-``::249``; ``DEFAULT_VIPS`` is the
  first two of each family. ``UNOWNED_VIP4``/``UNOWNED_VIP6`` are never configured anywhere.

MACs are locally administered (second-lowest bit of the first octet set), unicast.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

CLIENT = "client"
SWITCH = "switch"

_MAC_BASE = bytes.fromhex("021ab0000000")


def node_name(index: int) -> str:
    """Node names as the speaker's ``--node-name`` sees them: node1, node2, ..."""
    return f"node{index}"


def node_index(name: str) -> int:
    if not name.startswith("node") or not name[4:].isdigit():
        raise ValueError(f"not a lab node name: {name!r}")
    return int(name[4:])


def node_address(index: int, version: int) -> IPAddress:
    if version == 4:
        return ipaddress.IPv4Address(f"192.0.2.{10 + index}")
    return ipaddress.IPv6Address(f"2001:db8::{10 + index}")


def client_address(version: int) -> IPAddress:
    if version == 4:
        return ipaddress.IPv4Address("192.0.2.100")
    return ipaddress.IPv6Address("2001:db8::100")


def vip(n: int, version: int) -> IPAddress:
    """The ``n``-th VIP (0-based) of a family."""
    if not 0 <= n < 50:
        raise ValueError("the lab has 50 VIPs per family")
    if version == 4:
        return ipaddress.IPv4Address(f"192.0.2.{200 + n}")
    return ipaddress.IPv6Address(f"2001:db8::{200 + n}")


def node_mac(index: int) -> bytes:
    return _MAC_BASE[:5] + bytes([index])


def client_mac() -> bytes:
    return _MAC_BASE[:5] + bytes([100])


DEFAULT_VIPS: tuple[IPAddress, ...] = (vip(0, 4), vip(1, 4), vip(0, 6), vip(1, 6))
UNOWNED_VIP4 = vip(49, 4)
UNOWNED_VIP6 = vip(49, 6)
