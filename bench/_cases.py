"""The failover benchmark's cases and how reports name them (shared by `bench.failover`,
which runs them, and `bench.plot`, which draws them, so neither imports the other)."""

from __future__ import annotations

__all__ = ["CASES", "LABELS", "NOTES", "RATIO_CASES"]

CASES = (
    "l2agent-link-down",
    "l2agent-sigkill",
    "l2agent-sigterm",
    "l2agent-rolling",
    "keepalived-default",
    "keepalived-tuned",
    "memberlist-lan",
    "memberlist-tuned",
)

LABELS = {
    "l2agent-link-down": ("l2agent (fast preset)", "node link-down: client outage"),
    "l2agent-sigkill": ("l2agent (fast preset)", "agent SIGKILL: takeover time"),
    "l2agent-sigterm": ("l2agent (fast preset)", "agent SIGTERM: client outage"),
    "l2agent-rolling": ("l2agent (fast preset)", "rolling restart: longest reply gap"),
    "keepalived-default": ("keepalived VRRPv2 advert_int 1", "MASTER link-down: client outage"),
    "keepalived-tuned": ("keepalived VRRPv3 advert_int 0.1", "MASTER link-down: client outage"),
    "memberlist-lan": ("Go memberlist DefaultLANConfig", "link-down: failure detection"),
    "memberlist-tuned": ("Go memberlist LAN, 100 ms probes", "link-down: failure detection"),
}

RATIO_CASES = ("keepalived-default", "keepalived-tuned", "memberlist-lan", "memberlist-tuned")
"""Rows that get a "times l2agent's link-down median" figure."""

NOTES = {
    "l2agent-sigkill": "node stays up, so the client loses nothing",
    "l2agent-rolling": "longest gap between replies across a restart of every speaker; "
    "no probe lost",
    "memberlist-lan": "MetalLB's lower bound (detection only)",
    "memberlist-tuned": "detection only",
}
