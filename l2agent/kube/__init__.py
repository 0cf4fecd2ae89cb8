"""Kubernetes glue: watches, status and Event writers, Lease leader election.

Everything here is an I/O adapter around the pure model: objects travel as plain dicts in
the API's JSON shape, exactly what `build_state` reads in static mode too.
"""

from l2agent.kube.cache import WatchedObjects
from l2agent.kube.convert import ApiFailure, new_api_client
from l2agent.kube.events import EventRecorder, EventType, ObjectRef, Reason
from l2agent.kube.lease import LeaseConfig, LeaseElector
from l2agent.kube.source import KubeSource, SourceConfig
from l2agent.kube.status import NodeStatusWriter, ServiceStatusWriter
from l2agent.kube.watch import Delta, DeltaKind, WatchConfig, Watcher

__all__ = [
    "ApiFailure",
    "Delta",
    "DeltaKind",
    "EventRecorder",
    "EventType",
    "KubeSource",
    "LeaseConfig",
    "LeaseElector",
    "NodeStatusWriter",
    "ObjectRef",
    "Reason",
    "ServiceStatusWriter",
    "SourceConfig",
    "WatchConfig",
    "WatchedObjects",
    "Watcher",
    "new_api_client",
]
