"""Where a Service's IPs come from, and which EndpointSlices count: shared by both plans.

Layer 2 (`plan`) and BGP (`bgp.plan`) answer the same first questions for every
LoadBalancer Service before they differ: which IPs it holds and from which pool (or why
none), and whether its endpoints are known.  Pure.

IPs: `status.loadBalancer.ingress` when set (the cluster's word, taken as is); otherwise,
with `allocate_missing=True` (static mode), the allocator's deterministic answer.  With
`allocate_missing=False` (a speaker beside a controller) a Service without status IPs is not
announced (`noIPAllocated`).

Endpoints: a Service with no EndpointSlice at all in the inputs counts as served on every
node when `assume_served_without_slices=True` (static files rarely carry slices); in a
cluster (False) it has no serving endpoint, so nobody announces it, as in MetalLB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from l2agent.allocator import AllocationError, Assignment
from l2agent.election import NotAnnouncing
from l2agent.model.crds import IPAddressPool
from l2agent.model.snapshot import ClusterState
from l2agent.model.types import IPAddress
from l2agent.model.views import EndpointSliceView, ServiceView

__all__ = ["NoServiceIPs", "ServiceIPs", "known_slices", "service_ips"]


@dataclass(frozen=True, slots=True)
class ServiceIPs:
    """The IPs a Service holds (primary family first) and the pool they belong to."""

    ips: tuple[IPAddress, ...]
    pool: IPAddressPool


@dataclass(frozen=True, slots=True)
class NoServiceIPs:
    """Why a Service is announced by nobody before any node is looked at."""

    reason: NotAnnouncing
    ips: tuple[IPAddress, ...] = ()
    error: str | None = None


def service_ips(
    state: ClusterState,
    svc: ServiceView,
    result: Assignment | AllocationError | None,
    *,
    allocate_missing: bool,
) -> ServiceIPs | NoServiceIPs:
    """The Service's IPs and pool from the allocator's `result`, or why it has none."""
    if isinstance(result, AllocationError):
        return NoServiceIPs(NotAnnouncing.ALLOCATION_FAILED, error=result.message)
    if result is None or (not svc.ingress_ips and not allocate_missing):
        return NoServiceIPs(NotAnnouncing.NO_IP)
    pool = state.pool(result.pool) if result.pool is not None else None
    if pool is None:
        return NoServiceIPs(
            NotAnnouncing.IP_NOT_IN_POOL,
            ips=result.ips,
            error=f"{', '.join(map(str, result.ips))} is not in any IPAddressPool",
        )
    return ServiceIPs(result.ips, pool)


def known_slices(
    state: ClusterState, svc: ServiceView, *, assume_served_without_slices: bool
) -> Sequence[EndpointSliceView] | None:
    """The Service's EndpointSlices, or None for "unknown: served everywhere" (static mode)."""
    slices = state.slices_for(svc.key)
    if not slices and assume_served_without_slices:
        return None
    return slices
