"""The controller's pure half: from a state and its allocation, what to write and which
Events to emit. No I/O: the runner (`l2agent.controller.runner`) applies the writes.

Per Service of our class (`plan_writes`), one of four cases:
- not a LoadBalancer any more (or no allocation): clear the ingress and pool we gave it;
- held (its pool is left out of the configuration): write nothing, keep its IPs, and say
  why in a Warning Event (PoolInvalid);
- an `Assignment`: write the IPs and pool where they differ, with MetalLB's Events
  (IPAllocated, ClearAssignment when IPs move, AdditionalAssignFailed for a half-served
  PreferDualStack);
- an `AllocationError`: clear what it had, with the failure's Event.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from l2agent.allocator import (
    ANN_ALLOCATED_FROM_POOL,
    Allocation,
    AllocationError,
    AllocationFailure,
    Assignment,
    class_matches,
)
from l2agent.model.events import EventType, Reason
from l2agent.model.reports import PoolUsage
from l2agent.model.snapshot import ClusterState
from l2agent.model.types import IPAddress
from l2agent.model.views import IPFamilyPolicy, ServiceView

__all__ = [
    "KEEP",
    "Keep",
    "PlannedEvent",
    "ServiceWrite",
    "plan_writes",
    "pool_status",
    "pool_usage",
]


class Keep(enum.Enum):
    """Marker: leave this field as it is."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True, slots=True)
class PlannedEvent:
    type: EventType
    reason: Reason
    message: str


@dataclass(frozen=True, slots=True)
class ServiceWrite:
    """What to change on one Service. `ingress`: the new IP list (empty: clear), or KEEP;
    `pool`: the annotation value (None: remove), or KEEP."""

    key: str
    ingress: tuple[IPAddress, ...] | Keep = KEEP
    pool: str | Keep | None = KEEP
    events: tuple[PlannedEvent, ...] = ()

    @property
    def writes(self) -> bool:
        return self.ingress is not KEEP or self.pool is not KEEP


_REQUEST_FAILURES = frozenset(
    {
        AllocationFailure.CONFLICTING_REQUEST,
        AllocationFailure.INVALID_REQUEST,
        AllocationFailure.FAMILY_MISMATCH,
    }
)


def plan_writes(
    state: ClusterState, allocation: Allocation, *, lb_class: str | None = None
) -> list[ServiceWrite]:
    """For every Service of our class, what differs from the allocation, and the Events.

    Services of another loadBalancerClass are not ours and are left alone.
    """
    out: list[ServiceWrite] = []
    for svc in state.services:
        if not class_matches(svc, lb_class):
            continue
        result = allocation.get(svc.key) if svc.is_load_balancer else None
        if result is None:
            write = _release(svc)
        elif isinstance(result, Assignment) and result.held:
            write = _hold(svc, result, state)
        elif isinstance(result, Assignment):
            write = _assign(svc, result)
        else:
            write = _fail(svc, result)
        if write is not None:
            out.append(write)
    return out


def _hold(svc: ServiceView, result: Assignment, state: ClusterState) -> ServiceWrite:
    """Its pool is left out: nothing changes on the Service but a Warning saying why."""
    held = state.held_pool(result.pool) if result.pool is not None else None
    why = held.problem.message if held is not None else "it is left out"
    return ServiceWrite(
        svc.key,
        events=(
            PlannedEvent(
                EventType.WARNING,
                Reason.POOL_INVALID,
                f"keeping IPs {_go_quoted(result.ips)} while pool {result.pool} cannot be "
                f"used: {why}",
            ),
        ),
    )


def _release(svc: ServiceView) -> ServiceWrite | None:
    """Not a LoadBalancer (any more): drop the ingress and pool annotation we gave it."""
    current_pool = svc.annotations.get(ANN_ALLOCATED_FROM_POOL)
    if not svc.ingress_ips and current_pool is None:
        return None
    return ServiceWrite(
        svc.key,
        () if svc.ingress_ips else KEEP,
        None if current_pool is not None else KEEP,
    )


def _assign(svc: ServiceView, result: Assignment) -> ServiceWrite | None:
    """IPs and pool where they differ from the Service, with MetalLB's Events."""
    events: list[PlannedEvent] = []
    ingress: tuple[IPAddress, ...] | Keep = KEEP
    old = tuple(svc.ingress_ips)
    if old != result.ips:
        ingress = result.ips
        events.extend(_assigned_events(svc, old, result.ips))
    pool: str | Keep | None = KEEP
    if result.pool is not None and svc.annotations.get(ANN_ALLOCATED_FROM_POOL) != result.pool:
        pool = result.pool
    if (
        svc.ip_family_policy is IPFamilyPolicy.PREFER_DUAL_STACK
        and len({ip.version for ip in svc.cluster_ips}) == 2
        and len(result.ips) == 1
    ):
        events.append(
            PlannedEvent(
                EventType.NORMAL,
                Reason.ADDITIONAL_ASSIGN_FAILED,
                "cannot assign additional IP in PreferDualStack: no available IPs of "
                f"the other family in pool {result.pool}",
            )
        )
    if ingress is KEEP and pool is KEEP and not events:
        return None
    return ServiceWrite(svc.key, ingress, pool, tuple(events))


def _assigned_events(
    svc: ServiceView, old: tuple[IPAddress, ...], new: tuple[IPAddress, ...]
) -> list[PlannedEvent]:
    """IPAllocated (and ClearAssignment when IPs it had are taken away)."""
    if old and set(old) < set(new):
        # PreferDualStack: the other family was added next to the kept IP.
        added = next(ip for ip in new if ip not in old)
        message = f'Assigned additional IP "{added}"'
        return [PlannedEvent(EventType.NORMAL, Reason.IP_ALLOCATED, message)]
    events = [_cleared(svc, old)] if old else []
    events.append(
        PlannedEvent(EventType.NORMAL, Reason.IP_ALLOCATED, f"Assigned IP {_go_quoted(new)}")
    )
    return events


def _fail(svc: ServiceView, result: AllocationError) -> ServiceWrite:
    """No IPs for this Service: clear what it had and say why."""
    events: list[PlannedEvent] = []
    if result.reason is AllocationFailure.NOT_ENOUGH_CLUSTER_IPS:
        events.append(
            PlannedEvent(EventType.WARNING, Reason.NOT_ENOUGH_CLUSTER_IPS, result.message)
        )
    elif svc.ingress_ips and result.reason in _REQUEST_FAILURES:
        events.append(
            PlannedEvent(
                EventType.WARNING,
                Reason.LOAD_BALANCER_FAILED,
                f"invalid requested loadbalancer IPs: {result.message}",
            )
        )
    else:
        if svc.ingress_ips:
            events.append(_cleared(svc, svc.ingress_ips))
        events.append(
            PlannedEvent(
                EventType.WARNING,
                Reason.ALLOCATION_FAILED,
                f'Failed to allocate IP for "{svc.key}": {result.message}',
            )
        )
    current_pool = svc.annotations.get(ANN_ALLOCATED_FROM_POOL)
    return ServiceWrite(
        svc.key,
        () if svc.ingress_ips else KEEP,
        None if current_pool is not None else KEEP,
        tuple(events),
    )


def _cleared(svc: ServiceView, ips: Iterable[IPAddress]) -> PlannedEvent:
    return PlannedEvent(
        EventType.NORMAL,
        Reason.CLEAR_ASSIGNMENT,
        f'current IP for "{svc.key}" not allowed by config, will attempt for new IP '
        f"assignment: {_go_quoted(ips)}",
    )


def _go_quoted(ips: Iterable[IPAddress]) -> str:
    """Go's %q of a []string, as MetalLB's messages print IP lists: ["a" "b"]."""
    return "[" + " ".join(f'"{ip}"' for ip in ips) + "]"


def pool_usage(state: ClusterState, allocation: Allocation) -> list[PoolUsage]:
    """Per pool: usable and in-use addresses by family (a shared IP counts once)."""
    out = []
    for pool in state.pools:
        used = allocation.in_use.get(pool.name, frozenset())
        out.append(
            PoolUsage(
                pool=pool.name,
                total_v4=pool.size(4),
                total_v6=pool.size(6),
                in_use_v4=sum(1 for ip in used if ip.version == 4),
                in_use_v6=sum(1 for ip in used if ip.version == 6),
            )
        )
    return out


def pool_status(usage: PoolUsage) -> dict[str, int]:
    """IPAddressPool status fields (MetalLB v0.15+)."""
    return {
        "assignedIPv4": usage.in_use_v4,
        "assignedIPv6": usage.in_use_v6,
        "availableIPv4": max(0, usage.total_v4 - usage.in_use_v4),
        "availableIPv6": max(0, usage.total_v6 - usage.in_use_v6),
    }
