"""Small value types shared across l2agent: the IP address alias and MAC text helpers."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

__all__ = ["MAC_LEN", "IPAddress", "format_mac", "parse_mac"]

IPAddress = IPv4Address | IPv6Address
"""An IPv4 or IPv6 address; every IP in l2agent is one of these, never a string."""

MAC_LEN = 6


def format_mac(mac: bytes) -> str:
    """Render 6 bytes as lower-case ``aa:bb:cc:dd:ee:ff`` (the form ip(8) and logs use)."""
    return mac.hex(":")


def parse_mac(text: str) -> bytes:
    """Parse ``aa:bb:cc:dd:ee:ff`` (or ``-`` separated) into 6 bytes; raises ValueError."""
    parts = text.replace("-", ":").split(":")
    if len(parts) != MAC_LEN or not all(len(p) == 2 for p in parts):
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(p, 16) for p in parts)
