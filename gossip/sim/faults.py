"""Scripted fault scenarios as data, scheduled onto a SimCluster in virtual time."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from gossip.sim.cluster import SimCluster

__all__ = ["Crash", "Fault", "Heal", "Leave", "Loss", "Partition", "Pause", "schedule"]


@dataclass(frozen=True, slots=True)
class Crash:
    """Node stops without leaving."""

    at: float
    node: int


@dataclass(frozen=True, slots=True)
class Pause:
    """Node freezes (GC pause, SIGSTOP) for `duration`; input is held, not lost."""

    at: float
    node: int
    duration: float


@dataclass(frozen=True, slots=True)
class Leave:
    """Node leaves gracefully."""

    at: float
    node: int


@dataclass(frozen=True, slots=True)
class Partition:
    """Groups of nodes that can only reach their own group (others form group 0)."""

    at: float
    groups: tuple[tuple[int, ...], ...]


@dataclass(frozen=True, slots=True)
class Heal:
    """End every partition."""

    at: float


@dataclass(frozen=True, slots=True)
class Loss:
    """Set packet loss on every link (streams stay reliable)."""

    at: float
    rate: float


Fault = Crash | Pause | Leave | Partition | Heal | Loss


def _apply(cluster: SimCluster, fault: Fault) -> None:
    if isinstance(fault, Crash):
        cluster.crash(fault.node)
    elif isinstance(fault, Pause):
        cluster.pause(fault.node, fault.duration)
    elif isinstance(fault, Leave):
        cluster.leave(fault.node)
    elif isinstance(fault, Partition):
        cluster.partition([list(g) for g in fault.groups])
    elif isinstance(fault, Heal):
        cluster.heal()
    else:
        cluster.net.set_default(replace(cluster.net.default, loss=fault.rate))


def schedule(cluster: SimCluster, faults: Iterable[Fault]) -> None:
    """Schedule each fault at its (absolute, virtual) time."""
    for fault in faults:
        cluster.at(fault.at, _apply, cluster, fault)
