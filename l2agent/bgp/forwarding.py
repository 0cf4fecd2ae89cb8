"""Read the node's IP forwarding, so frr.conf can repeat it (see `frr_config.Forwarding`).

An I/O adapter (it reads /proc), kept apart from the pure renderer. The speaker reads it
once at start, in its own network namespace (the node's, with hostNetwork).
"""

from __future__ import annotations

from pathlib import Path

from l2agent.bgp.frr_config import Forwarding

__all__ = ["read_forwarding"]

_IPV4 = Path("net/ipv4/ip_forward")
_IPV6 = Path("net/ipv6/conf/all/forwarding")


def _flag(path: Path) -> bool | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None  # IPv6 disabled, or /proc not mounted: say nothing about it
    return text not in ("", "0")


def read_forwarding(sysctl_root: Path = Path("/proc/sys")) -> Forwarding:
    """IPv4 and IPv6 forwarding of the calling process's network namespace (None: unknown)."""
    return Forwarding(ipv4=_flag(sysctl_root / _IPV4), ipv6=_flag(sysctl_root / _IPV6))
