"""The speaker's view of the cluster: watches in, `ClusterState` snapshots out.

`KubeSource` watches Services, EndpointSlices, Nodes, Namespaces, IPAddressPools,
L2Advertisements, the BGP kinds, basic-auth Secrets (own namespace) and the
ServiceL2Status/ServiceBGPStatus objects, and after every settled change hands a fresh
`BuildResult` (from the model's `build_state`) to `on_snapshot`. A kind the API server does
not serve (its CRD is not installed) counts as empty (`l2agent.kube.watch`). When the API server is
unreachable it publishes nothing: the speaker keeps announcing from the last snapshot, and
nothing is withdrawn because a watch broke. The first snapshot waits until every resource
has been listed once.

It also carries the speaker's writes back to the cluster, off the caller's thread:
`report_announcements()` keeps ServiceL2Status objects current and
`report_bgp_announcements()` ServiceBGPStatus objects, both through one status thread and
one write budget (a token bucket); `events` posts `nodeAssigned` / `announceFailed`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from l2agent.kube.cache import WatchedObjects
from l2agent.kube.events import SPEAKER_COMPONENT, EventRecorder, ObjectRef, Reason
from l2agent.kube.heartbeat import Heartbeats, Stuck
from l2agent.kube.ratelimit import TokenBucket
from l2agent.kube.status import (
    BGP_STATUS,
    L2_STATUS,
    NodeStatusKind,
    NodeStatusWriter,
    relevant_node_statuses,
)
from l2agent.kube.watch import WatchConfig
from l2agent.model.crds import InterfaceSelection
from l2agent.model.problems import ObjectProblem
from l2agent.model.snapshot import BuildResult, build_state

__all__ = ["SPEAKER_RESOURCES", "STATUS_KINDS", "KubeSource", "SourceConfig"]

log = logging.getLogger(__name__)

SPEAKER_RESOURCES = (
    "services",
    "endpointslices",
    "nodes",
    "namespaces",
    "ipaddresspools",
    "l2advertisements",
    "servicel2statuses",
    "bgppeers",
    "bgpadvertisements",
    "bfdprofiles",
    "communities",
    "secrets",
    "servicebgpstatuses",
)
STATUS_KINDS: tuple[NodeStatusKind, ...] = (L2_STATUS, BGP_STATUS)


@dataclass(frozen=True, slots=True)
class SourceConfig:
    watch: WatchConfig = field(default_factory=WatchConfig)
    debounce: float = 0.05
    """Seconds of quiet before a burst of changes becomes one snapshot."""
    event_dedupe: float = 60.0
    """Identical Events are not repeated within this many seconds."""
    status_writes_per_second: float = 10.0
    """ServiceL2Status and ServiceBGPStatus writes (create, status, delete) per second on
    average, at most (one budget for both)."""
    status_write_burst: int = 20
    """Status writes allowed at once (a start-up with many Services)."""
    status_stall_limit: float = 300.0
    """Seconds the status thread may go without progress before /healthz fails (one pass
    writes at most a few objects per Service, each call bounded at 10 s)."""


class KubeSource:
    """Speaker-side Kubernetes source. `start()`, then snapshots arrive via `on_snapshot`."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        node_name: str,
        on_snapshot: Callable[[BuildResult], None],
        pod_name: str | None = None,
        pod_uid: str | None = None,
        config: SourceConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config or SourceConfig()
        self.namespace = namespace
        self.node_name = node_name
        self._on_snapshot = on_snapshot
        self.heartbeats = Heartbeats()
        self._watched = WatchedObjects(
            api,
            SPEAKER_RESOURCES,
            namespace=namespace,
            on_change=self._changed,
            watch_config=self.config.watch,
            debounce=self.config.debounce,
            rng=rng,
            heartbeats=self.heartbeats,
        )
        self.events = EventRecorder(
            api,
            component=SPEAKER_COMPONENT,
            host=node_name,
            dedupe_window=self.config.event_dedupe,
        )
        budget = TokenBucket(self.config.status_writes_per_second, self.config.status_write_burst)
        self._writers = {
            kind: NodeStatusWriter(
                api,
                namespace=namespace,
                node=node_name,
                kind=kind,
                pod_name=pod_name,
                pod_uid=pod_uid,
                limiter=budget,
            )
            for kind in STATUS_KINDS
        }
        self._status_seen: dict[NodeStatusKind, tuple[tuple[str, str], ...]] = {}
        self._announcing: dict[NodeStatusKind, dict[str, tuple[str, ...]]] = {}
        """What this node announces, per kind (a kind never reported is left alone)."""
        self._status_wake = threading.Condition()
        self._status_dirty: set[NodeStatusKind] = set()
        self._stopping = threading.Event()
        self._status_thread: threading.Thread | None = None
        self.last_result: BuildResult | None = None
        self.snapshots = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> KubeSource:
        # Each status pass is a few calls bounded by their timeouts, then a wait of 1 s.
        self.heartbeats.register("status", self.config.status_stall_limit, time.monotonic())
        self.events.start()
        self._status_thread = threading.Thread(target=self._status_loop, name="status", daemon=True)
        self._status_thread.start()
        self._watched.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.heartbeats.unregister("status")
        self._watched.stop()
        with self._status_wake:
            self._status_wake.notify_all()
        if self._status_thread is not None:
            self._status_thread.join(5)
        self.events.stop()

    # ------------------------------------------------------------------ state

    @property
    def synced(self) -> bool:
        """Every resource listed at least once (readiness)."""
        return self._watched.synced

    @property
    def connected(self) -> bool:
        """All watches connected; False while the API server is unreachable."""
        return self._watched.connected

    def stuck(self) -> list[Stuck]:
        """Watch or status threads that stopped making progress (for /healthz)."""
        return self.heartbeats.stuck(time.monotonic())

    @property
    def watched(self) -> WatchedObjects:
        return self._watched

    def objects(self) -> list[Mapping[str, Any]]:
        return self._watched.objects()

    # ------------------------------------------------------------------ speaker -> cluster

    def report_announcements(self, announcing: Mapping[str, InterfaceSelection]) -> None:
        """What this node announces now in layer 2 mode (service key -> interfaces);
        non-blocking. Keeps the ServiceL2Status objects in step, retrying failed writes on
        later changes."""
        desired = {
            key: () if sel.all else tuple(sorted(sel.names)) for key, sel in announcing.items()
        }
        self._report(L2_STATUS, desired)

    def report_bgp_announcements(self, service_peers: Mapping[str, tuple[str, ...]]) -> None:
        """What this node advertises in BGP mode (service key -> BGPPeer names, as
        `BgpPlan.service_peers()` gives them); non-blocking. Keeps the ServiceBGPStatus
        objects in step, as `report_announcements` does ServiceL2Status."""
        self._report(BGP_STATUS, {key: tuple(sorted(p)) for key, p in service_peers.items()})

    def _report(self, kind: NodeStatusKind, desired: dict[str, tuple[str, ...]]) -> None:
        with self._status_wake:
            if desired == self._announcing.get(kind) and kind not in self._status_dirty:
                return
            self._announcing[kind] = desired
            self._status_dirty.add(kind)
            self._status_wake.notify_all()

    def key_mismatch(self, peer_ip: str) -> None:
        """A Warning on this Node: gossip from `peer_ip` cannot be decrypted (the peers run
        with another memberlist key); the recorder drops repeats within its window."""
        self.events.warning(
            self._watched.ref("Node", "", self.node_name),
            Reason.GOSSIP_KEY_MISMATCH,
            f"gossip from {peer_ip} cannot be decrypted: a peer runs with another memberlist "
            "key (a half-finished rotation or a wrong Secret); this speaker announces nothing "
            "while it hears no peer it can decrypt",
        )

    def node_assigned(self, service_key: str) -> None:
        """MetalLB's `nodeAssigned` Event for a service this node announces."""
        self.events.normal(
            self.service_ref(service_key),
            Reason.NODE_ASSIGNED,
            f'announcing from node "{self.node_name}" with protocol "layer2"',
        )

    def announce_failed(self, service_key: str, message: str) -> None:
        self.events.warning(self.service_ref(service_key), Reason.ANNOUNCE_FAILED, message)

    def address_conflict(self, service_key: str, message: str) -> None:
        """An addressConflict Warning on a Service whose IP another station claims."""
        self.events.warning(self.service_ref(service_key), Reason.ADDRESS_CONFLICT, message)

    def invalid_config(self, problem: ObjectProblem) -> None:
        """An InvalidConfig Warning on the object left out (uid from the watch cache)."""
        ref = self._watched.ref(
            problem.kind, problem.namespace or self.namespace, problem.name, "metallb.io/v1beta1"
        )
        self.events.warning(ref, Reason.INVALID_CONFIG, problem.message)

    def service_ref(self, service_key: str) -> ObjectRef:
        """The Service as an Event names it, uid included (from the watch cache)."""
        namespace, _, name = service_key.partition("/")
        return self._watched.ref("Service", namespace, name)

    # ------------------------------------------------------------------ internals

    def _changed(self) -> None:
        result = build_state(self._watched.objects())
        self.last_result = result
        self.snapshots += 1
        try:
            self._on_snapshot(result)
        finally:
            # Someone may have deleted or edited our status objects (or a node left and
            # its objects are ours to clean up): re-check. Other nodes' objects changing
            # is no reason to look: that is what made two speakers ping-pong.
            nodes = self._node_names()
            for kind in STATUS_KINDS:
                seen = relevant_node_statuses(
                    self.node_name, self._watched.objects(kind.plural), nodes
                )
                with self._status_wake:
                    if kind in self._announcing and seen != self._status_seen.get(kind):
                        self._status_seen[kind] = seen
                        self._status_dirty.add(kind)
                        self._status_wake.notify_all()

    def _node_names(self) -> frozenset[str] | None:
        """The cluster's nodes, or None when our own is missing (the view is not one to
        delete other nodes' objects by)."""
        names = frozenset(
            str((n.get("metadata") or {}).get("name")) for n in self._watched.objects("nodes")
        )
        return names if self.node_name in names else None

    def _status_loop(self) -> None:
        while not self._stopping.is_set():
            with self._status_wake:
                while not self._status_dirty and not self._stopping.is_set():
                    self.heartbeats.beat("status", time.monotonic())
                    self._status_wake.wait(1.0)
                if self._stopping.is_set():
                    return
                work = {k: dict(self._announcing[k]) for k in self._status_dirty}
                self._status_dirty.clear()
            self.heartbeats.beat("status", time.monotonic())
            if not self._watched.synced:
                continue
            retry = [kind for kind, desired in work.items() if self._sync_kind(kind, desired)]
            if retry:
                # Out of tokens: wait for the next one. A failure (an outage, a conflict):
                # back off. Either way do not spin.
                pause = max(w.retry_in() if w.deferred else 0.0 for w in self._writers.values())
                self._stopping.wait(max(pause, self.config.watch.backoff_initial))
                with self._status_wake:
                    self._status_dirty.update(retry)

    def _sync_kind(self, kind: NodeStatusKind, desired: dict[str, tuple[str, ...]]) -> int:
        """One kind's objects brought in step; how many writes failed or were deferred."""
        existing, version = self._watched.snapshot_of(kind.plural)
        return self._writers[kind].sync(desired, existing, version, self._node_names())
