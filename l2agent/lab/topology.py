"""The lab's address plan: documentation ranges only, and stable MACs so logs read easily.

LAN 192.0.2.0/24 and 2001:db8::/64 (on-link for everyone, so the client ARPs/solicits for the
VIPs directly, as a client on the same L2 segment does):

- node *i* (1-based): ``192.0.2.(10+i)``, ``2001:db8::(10+i)`` (hex digits read as the
  decimal: node1 is ``2001:db8::11``), MAC ``02:1a:b0:00:00:(i)``.
- client: ``192.0.2.100``, ``2001:db8::100``, MAC ``02:1a:b0:00:00:64``.
- attacker (``Lab(attacker=True)``): ``192.0.2.66``, ``2001:db8::66``, MAC
  ``02:1a:b0:00:00:42``: a host on the node network for the hostile-input tests.
- VIPs: ``192.0.2.200``-``.249`` and ``2001:db8::200``-``::249``; ``DEFAULT_VIPS`` is the
  first two of each family. ``UNOWNED_VIP4``/``UNOWNED_VIP6`` are never configured anywhere.

MACs are locally administered (second-lowest bit of the first octet set), unicast.

BGP labs (``Lab(routers=N)``) add routers on that LAN and a remote client behind router1:

- router *r* (1-based): ``192.0.2.r``, ``2001:db8::r`` on the LAN, MAC ``02:1a:b0:00:00:(200+r)``;
  router1 also has ``198.51.100.1``, ``2001:db8:100::1`` towards the remote client.
- remote client: ``198.51.100.100``, ``2001:db8:100::100`` (default routes via router1).
- BGP service IPs (never on the LAN subnet, so every packet to them is routed):
  ``203.0.113.(10+n)`` and ``2001:db8:113::(10+n)`` for n = 0..49 (``bgp_vip``).
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

CLIENT = "client"
SWITCH = "switch"
REMOTE = "remote"
"""The client behind router1 (BGP labs): its traffic reaches the nodes only through routes."""
ATTACKER = "attacker"
"""A host on the node network that sends crafted traffic (hostile-input tests)."""

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


def attacker_address(version: int) -> IPAddress:
    if version == 4:
        return ipaddress.IPv4Address("192.0.2.66")
    return ipaddress.IPv6Address("2001:db8::66")


def attacker_mac() -> bytes:
    return _MAC_BASE[:5] + bytes([0x42])


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


def router_name(index: int) -> str:
    """Router roles in a BGP lab: router1, router2, ..."""
    return f"router{index}"


def router_address(index: int, version: int) -> IPAddress:
    """Router *index*'s LAN address (the nodes' BGP peer address)."""
    if not 1 <= index <= 9:
        raise ValueError("the lab has at most 9 routers")
    if version == 4:
        return ipaddress.IPv4Address(f"192.0.2.{index}")
    return ipaddress.IPv6Address(f"2001:db8::{index}")


def router_mac(index: int) -> bytes:
    return _MAC_BASE[:5] + bytes([200 + index])


def uplink_address(version: int) -> IPAddress:
    """Router1's address on the link to the remote client."""
    if version == 4:
        return ipaddress.IPv4Address("198.51.100.1")
    return ipaddress.IPv6Address("2001:db8:100::1")


def remote_address(version: int) -> IPAddress:
    """The remote client's address (behind router1)."""
    if version == 4:
        return ipaddress.IPv4Address("198.51.100.100")
    return ipaddress.IPv6Address("2001:db8:100::100")


def bgp_vip(n: int, version: int) -> IPAddress:
    """The ``n``-th BGP service IP (0-based) of a family: off the LAN, reached only by route."""
    if not 0 <= n < 50:
        raise ValueError("the lab has 50 BGP service IPs per family")
    if version == 4:
        return ipaddress.IPv4Address(f"203.0.113.{10 + n}")
    return ipaddress.IPv6Address(f"2001:db8:113::{10 + n}")
