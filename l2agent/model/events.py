"""Kubernetes Event types and reasons as values (MetalLB's strings), shared by the pure
planners that decide which Events to emit and the recorder (`l2agent.kube.events`) that
writes them."""

from __future__ import annotations

import enum

__all__ = ["EventType", "Reason"]


class EventType(enum.Enum):
    NORMAL = "Normal"
    WARNING = "Warning"


class Reason(enum.Enum):
    """Event reasons; the values are MetalLB's strings (append only)."""

    # controller
    IP_ALLOCATED = "IPAllocated"
    ALLOCATION_FAILED = "AllocationFailed"
    CLEAR_ASSIGNMENT = "ClearAssignment"
    LOAD_BALANCER_FAILED = "LoadBalancerFailed"
    ADDITIONAL_ASSIGN_FAILED = "AdditionalAssignFailed"
    NOT_ENOUGH_CLUSTER_IPS = "not enough clusterips"
    INTERNAL_ERROR = "InternalError"
    DEPRECATED_ANNOTATION = "deprecatedAnnotation"
    # speaker
    NODE_ASSIGNED = "nodeAssigned"
    ANNOUNCE_FAILED = "announceFailed"
    GOSSIP_KEY_MISMATCH = "gossipKeyMismatch"  # ours: a peer's gossip no key opens
    # an object of ours that cannot be used (bad IPAddressPool / L2Advertisement)
    INVALID_CONFIG = "InvalidConfig"
    # a Service keeps its IPs while the pool they came from is left out (ours, not MetalLB's)
    POOL_INVALID = "PoolInvalid"
    # another MAC claims a service IP this node announces (ours: MetalLB only logs it)
    ADDRESS_CONFLICT = "addressConflict"
