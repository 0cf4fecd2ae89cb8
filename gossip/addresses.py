"""`HOST[:PORT]` texts, as command lines and manifests write them, and the default port.

One parser for every address a person types: gossip bind/advertise/join addresses and the
HTTP endpoint's. IPv6 is accepted bare (`2001:db8::1`, no port then) or in brackets
(`[2001:db8::1]` or `[2001:db8::1]:7946`), so `--bind-addr $(HOST_IP)` works on an
IPv6-primary node and the port can be given separately.
"""

from __future__ import annotations

import ipaddress
import re

from gossip.errors import BadAddress

__all__ = ["GOSSIP_PORT", "format_address", "parse_address", "split_list"]

GOSSIP_PORT = 7946
"""memberlist's default port (MetalLB's speakers listen there, TCP and UDP)."""

_HOSTNAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_.])?$")


def parse_address(
    text: str, default_port: int = GOSSIP_PORT, *, allow_empty_host: bool = False
) -> tuple[str, int]:
    """`HOST`, `HOST:PORT`, `IPv6`, `[IPv6]`, `[IPv6]:PORT` (or `:PORT` with
    `allow_empty_host`, meaning every address) -> `(host, port)`; LocalError when it is none
    of these. HOST may be a name; brackets are removed from IPv6 hosts."""
    raw = text.strip()
    if raw.startswith("["):
        host, sep, rest = raw[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise BadAddress(f"bad address {text!r}: expected [IPv6] or [IPv6]:PORT")
        _require_ipv6(host, text)
        port_text = rest[1:] if rest else ""
        if rest and not port_text:
            raise BadAddress(f"bad address {text!r}: empty port")
    elif raw.count(":") > 1:
        _require_ipv6(raw, text)
        host, port_text = raw, ""
    else:
        host, _, port_text = raw.partition(":")
        if ":" in raw and not port_text:
            raise BadAddress(f"bad address {text!r}: empty port")
    if not host and not allow_empty_host:
        raise BadAddress(f"bad address {text!r}: no host")
    if host and ":" not in host and not _HOSTNAME.match(host):
        raise BadAddress(f"bad address {text!r}: {host!r} is neither an IP nor a host name")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
        raise BadAddress(f"bad port in address {text!r}")
    return host, int(port_text)


def format_address(host: str, port: int) -> str:
    """`host:port`, with an IPv6 host in brackets (what `parse_address` reads back)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_list(values: list[str] | tuple[str, ...]) -> list[str]:
    """Repeatable flags that may also hold comma lists (`--join a,b --join c`) -> items."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _require_ipv6(host: str, text: str) -> None:
    try:
        ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        raise BadAddress(f"bad address {text!r}: {host!r} is not an IPv6 address") from None
