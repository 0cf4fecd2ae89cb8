"""Where a Service's IPs come from, and which EndpointSlices count: shared by both plans.

Layer 2 (`plan`) and BGP (`bgp.plan`) answer the same first questions for every
LoadBalancer Service before they differ: which IPs it holds and from which pool (or why
none), and whether its endpoints are known.  Pure.

Where the state came from (`InputSource`) decides two gaps:
- IPs: `status.loadBalancer.ingress` when set (the cluster's word, taken as is); otherwise,
  from static files, the allocator's deterministic answer (which honours
  `metallb.io/loadBalancerIPs` and `spec.loadBalancerIP`); in a cluster (a speaker beside a
  controller) a Service without status IPs is not announced (`noIPAllocated`);
- endpoints: a Service with no EndpointSlice at all counts as served on every node when it
  comes from static files (they rarely carry slices); in a cluster it has no serving
  endpoint, so nobody announces it, as in MetalLB.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from l2agent.allocator import AllocationError, Assignment
from l2agent.election import NotAnnouncing
from l2agent.model.crds import IPAddressPool
from l2agent.model.snapshot import ClusterState
from l2agent.model.types import IPAddress
from l2agent.model.views import EndpointSliceView, ServiceView

__all__ = ["InputSource", "NoServiceIPs", "ServiceIPs", "known_slices", "service_ips"]


class InputSource(enum.Enum):
    """Where a `ClusterState` came from, which decides the two gaps above."""

    STATIC = "static"  # YAML files: allocate missing IPs; no slices at all means served
    CLUSTER = "cluster"  # Kubernetes: the controller allocates; slices are authoritative


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
    source: InputSource,
) -> ServiceIPs | NoServiceIPs:
    """The Service's IPs and pool from the allocator's `result`, or why it has none."""
    if isinstance(result, AllocationError):
        return NoServiceIPs(NotAnnouncing.ALLOCATION_FAILED, error=result.message)
    if result is None or (not svc.ingress_ips and source is InputSource.CLUSTER):
        return NoServiceIPs(NotAnnouncing.NO_IP)
    held = state.held_pool(result.pool) if result.held and result.pool is not None else None
    if held is not None:
        # Its pool is left out: it keeps its IPs, announced as that pool's would be.
        return ServiceIPs(result.ips, held.stand_in(svc))
    pool = state.pool(result.pool) if result.pool is not None else None
    if pool is None:
        return NoServiceIPs(
            NotAnnouncing.IP_NOT_IN_POOL,
            ips=result.ips,
            error=f"{', '.join(map(str, result.ips))} is not in any IPAddressPool",
        )
    return ServiceIPs(result.ips, pool)


def known_slices(
    state: ClusterState, svc: ServiceView, *, source: InputSource
) -> Sequence[EndpointSliceView] | None:
    """The Service's EndpointSlices, or None for "unknown: served everywhere" (static mode)."""
    slices = state.slices_for(svc.key)
    if not slices and source is InputSource.STATIC:
        return None
    return slices
