"""The controller's I/O half: watches, the Lease, and the writes the planner decides.

Watches Services, Namespaces, IPAddressPools and L2Advertisements; the replica holding the
Lease runs the pure allocator and planner (`l2agent.controller.planner`) on the current
`ClusterState` and writes the difference: `status.loadBalancer.ingress`, the
`metallb.io/ip-allocated-from-pool` annotation, pool status counts, and the Events MetalLB
users grep for. The standby replica watches too, so it takes over with a warm cache. What a
bad configuration object costs is `l2agent.model.problems.cost`'s decision (today: only
itself; the rest is served, a Service whose pool is left out keeps its IPs with a
PoolInvalid Warning, and the bad object gets an InvalidConfig Warning of its own).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from prometheus_client import CollectorRegistry

from l2agent.allocator import allocate, class_matches
from l2agent.controller.planner import (
    Keep,
    ServiceWrite,
    plan_writes,
    pool_status,
    pool_usage,
)
from l2agent.kube.cache import WatchedObjects
from l2agent.kube.events import CONTROLLER_COMPONENT, EventRecorder, ObjectRef, Reason
from l2agent.kube.heartbeat import Heartbeats, Stuck
from l2agent.kube.lease import LeaseConfig, LeaseElector
from l2agent.kube.secret import MEMBERLIST_SECRET, SecretOutcome, ensure_memberlist_secret
from l2agent.kube.status import AllocationWrite, ServiceStatusWriter
from l2agent.kube.watch import WatchConfig
from l2agent.metrics import ControllerMetrics, PoolUsage, register_kube_resources
from l2agent.model.problems import ObjectProblem
from l2agent.model.snapshot import BuildResult, ClusterState, build_state

__all__ = ["CONTROLLER_RESOURCES", "Controller", "ControllerConfig", "PassReport"]

log = logging.getLogger(__name__)

CONTROLLER_RESOURCES = ("services", "namespaces", "ipaddresspools", "l2advertisements")
_CONFIG_RESOURCES = ("ipaddresspools", "l2advertisements", "namespaces")
_DEPRECATED_PREFIX = "metallb.universe.tf/"


def _ref_key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


def _versioned_key(obj: Mapping[str, Any]) -> str:
    """`Kind ns/name@resourceVersion`: the configuration's objects, each at its version."""
    rv = (obj.get("metadata") or {}).get("resourceVersion") or ""
    return f"{obj.get('kind')} {_ref_key(obj)}@{rv}"


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    namespace: str = "metallb-system"
    identity: str = "l2agent-controller"
    """This replica's name in the Lease (the pod name)."""
    lb_class: str | None = None
    lease_name: str = "l2agent-controller"
    lease: LeaseConfig = field(default_factory=LeaseConfig)
    watch: WatchConfig = field(default_factory=WatchConfig)
    debounce: float = 0.05
    retry_interval: float = 5.0
    """Seconds before a pass that had failed writes is tried again."""
    write_timeout: float = 10.0
    """Seconds one Service or pool status write may take."""
    memberlist_secret: str | None = MEMBERLIST_SECRET
    """The speakers' gossip key Secret, created by the leader when missing (None: never)."""
    secret_check_interval: float = 60.0
    """Seconds between the leader's checks that the Secret still exists."""
    reconcile_stall_limit: float = 300.0
    """Seconds the reconcile loop may go without progress before /healthz fails."""


@dataclass
class PassReport:
    """What one reconcile pass did (for logs and tests)."""

    writes: int = 0
    failed: int = 0
    conflicts: int = 0
    """Writes refused because the object changed since it was read (not failures: the
    watch delivers the newer version, and that change starts the next pass)."""
    events: int = 0
    left_out: tuple[ObjectProblem, ...] = ()
    """Configuration objects left out of this pass (each costs only itself)."""
    skipped: str | None = None


class Controller:
    """Watches, elects, allocates, writes. `start()` / `stop()`; passes run on a thread."""

    def __init__(
        self,
        api: client.ApiClient,
        config: ControllerConfig,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._api = api
        self.heartbeats = Heartbeats()
        self._watched = WatchedObjects(
            api,
            CONTROLLER_RESOURCES,
            namespace=config.namespace,
            on_change=self._wake,
            watch_config=config.watch,
            debounce=config.debounce,
            heartbeats=self.heartbeats,
        )
        self.elector = LeaseElector(
            api,
            namespace=config.namespace,
            name=config.lease_name,
            identity=config.identity,
            config=config.lease,
            on_started_leading=self._became_leader,
            on_stopped_leading=self._lost_leadership,
            heartbeat=lambda: self.heartbeats.beat("lease", time.monotonic()),
            clock=clock,
        )
        self.writer = ServiceStatusWriter(
            api, namespace=config.namespace, request_timeout=config.write_timeout
        )
        self.secret: SecretOutcome | None = None
        """The last memberlist Secret check's outcome (None: not checked yet)."""
        self._secret_checked: float | None = None
        self.events = EventRecorder(api, component=CONTROLLER_COMPONENT)
        self.metrics = (
            ControllerMetrics(registry, pools=lambda: self.usage) if registry is not None else None
        )
        if registry is not None:
            register_kube_resources(registry, self._watched.names, self._watched.absent)
        self.usage: tuple[PoolUsage, ...] = ()
        self.last_report: PassReport | None = None
        self.passes = 0
        self._reported: frozenset[ObjectProblem] = frozenset()
        self._posted: set[ObjectProblem] = set()
        self._config_version: tuple[str, ...] | None = None
        # key -> (what we wrote, the resourceVersion the cache had for it then)
        self._inflight: dict[str, tuple[ServiceWrite, str | None]] = {}
        self._pool_status_written: dict[str, dict[str, int]] = {}
        self._deprecation_warned: set[tuple[str, str]] = set()
        self._wakeup = threading.Condition()
        self._pending = False
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Controller:
        now = time.monotonic()
        self.heartbeats.register("lease", self.config.lease.stall_limit, now)
        self.heartbeats.register("reconcile", self.config.reconcile_stall_limit, now)
        self.events.start()
        self._watched.start()
        for target, name in ((self.elector.run, "lease"), (self._loop, "reconcile")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reconciling, release the Lease (the standby takes over at once)."""
        self._stopping.set()
        self.elector.stop()
        with self._wakeup:
            self._wakeup.notify_all()
        for t in self._threads:
            t.join(timeout)
        self._watched.stop()
        self.events.stop()

    @property
    def ready(self) -> bool:
        """Every watch has listed once (a standby is ready too: it is warm)."""
        return self._watched.synced

    @property
    def is_leader(self) -> bool:
        return self.elector.is_leader

    def stuck(self) -> list[Stuck]:
        """Loops (watches, the Lease, reconciling) that stopped making progress: the
        liveness endpoint fails while this is not empty."""
        return self.heartbeats.stuck(time.monotonic())

    # ------------------------------------------------------------------ triggers

    def _wake(self) -> None:
        with self._wakeup:
            self._pending = True
            self._wakeup.notify_all()

    def _became_leader(self) -> None:
        log.info("leading: reconciling every Service")
        self._secret_checked = None
        self._inflight.clear()
        self._pool_status_written.clear()
        self._posted.clear()  # the new leader says what is wrong, whoever said it before
        self._wake()

    def _lost_leadership(self) -> None:
        log.warning("no longer leading: writes stop")

    def _loop(self) -> None:
        while not self._stopping.is_set():
            with self._wakeup:
                if not self._pending and not self._stopping.is_set():
                    self._wakeup.wait(1.0)
                if self._stopping.is_set():
                    return
                pending, self._pending = self._pending, False
            self.heartbeats.beat("reconcile", time.monotonic())
            self._keep_secret()
            if not pending:
                continue
            try:
                report = self.reconcile()
            except Exception:
                log.exception("reconcile pass failed")
                report = PassReport(failed=1)
            if report.failed:
                self._stopping.wait(self.config.retry_interval)
                self._wake()

    def _keep_secret(self) -> None:
        """The leader makes sure the speakers' gossip key exists (MetalLB's controller
        does the same); checked on winning the Lease and every secret_check_interval."""
        name = self.config.memberlist_secret
        if name is None or not self.elector.is_leader:
            return
        now = time.monotonic()
        due = (
            self._secret_checked is None
            or (
                self.secret is SecretOutcome.FAILED
                and now - self._secret_checked >= self.config.retry_interval
            )
            or now - self._secret_checked >= self.config.secret_check_interval
        )
        if not due:
            return
        self._secret_checked = now
        self.secret = ensure_memberlist_secret(
            self._api, self.config.namespace, name, request_timeout=self.config.write_timeout
        )

    # ------------------------------------------------------------------ one pass

    def _report_problems(self, result: BuildResult, version: tuple[str, ...]) -> None:
        """Each object left out is logged once, when it first appears, on every replica;
        the stale-config metric follows every change; the leader posts an InvalidConfig
        Warning on each bad configuration object (once per object and problem). `version`:
        the configuration objects' resourceVersions (a change is a configuration update)."""
        current = frozenset(p for p in result.dropped)
        config = frozenset(result.stale)
        for problem in sorted(current - self._reported, key=lambda p: p.ref):
            log.warning("left out (the rest is served): %s", problem.message)
        if self.metrics is not None and version != self._config_version:
            self.metrics.config_applied(len(config))
        self._config_version = version
        self._reported = current
        self._posted &= config
        if not self.elector.is_leader:
            return
        for problem in sorted(config - self._posted, key=lambda p: p.ref):
            ref = self._watched.ref(
                problem.kind,
                problem.namespace or self.config.namespace,
                problem.name,
                "metallb.io/v1beta1",
            )
            self.events.warning(ref, Reason.INVALID_CONFIG, problem.message)
            self._posted.add(problem)

    def reconcile(self) -> PassReport:
        """One pass: allocate on the current state and write the differences (leader only)."""
        self.passes += 1
        report = PassReport()
        self.last_report = report
        if not self._watched.synced:
            report.skipped = "not synced"
            return report
        services = self._watched.objects("services")
        config = self._watched.objects(*_CONFIG_RESOURCES)
        result = build_state([*config, *services])
        self._report_problems(result, tuple(_versioned_key(o) for o in config))
        report.left_out = result.stale
        state = result.state
        allocation = allocate(state, lb_class=self.config.lb_class)
        self.usage = tuple(pool_usage(state, allocation))
        if not self.elector.is_leader:
            report.skipped = "not leader"
            return report
        versions = {_ref_key(o): (o.get("metadata") or {}).get("resourceVersion") for o in services}
        for write in plan_writes(state, allocation, lb_class=self.config.lb_class):
            inflight = self._inflight.get(write.key)
            if (
                inflight is not None
                and inflight[0] == write
                and inflight[1] == versions.get(write.key)
            ):
                continue  # written already; the watch has not delivered it yet
            self._inflight.pop(write.key, None)
            ok = self._apply(write, versions.get(write.key), report)
            if ok:
                self._inflight[write.key] = (write, versions.get(write.key))
            elif report.skipped:
                return report
        self._warn_deprecated(state)
        self._write_pool_status(state, report)
        if report.skipped:
            return report
        if report.writes or report.failed:
            log.info(
                "reconciled: %d service writes, %d failed, %d events",
                report.writes,
                report.failed,
                report.events,
            )
        return report

    def _apply(self, write: ServiceWrite, version: str | None, report: PassReport) -> bool:
        """One conditional write: the pool annotation and the ingress land together (so
        whoever sees the new ingress sees its pool), only if we still lead and only on
        the Service version the decision was made on."""
        if not self.elector.is_leader:
            report.skipped = "lost leadership"
            return False
        change = AllocationWrite(
            write.key,
            version,
            ingress=None if isinstance(write.ingress, Keep) else write.ingress,
            set_pool=not isinstance(write.pool, Keep),
            pool=None if isinstance(write.pool, Keep) else write.pool,
        )
        failure = self.writer.write_allocation(change)
        if failure is not None and failure.conflict:
            report.conflicts += 1  # the watch brings the newer version: the next pass
            return False
        if failure is not None and not failure.not_found:
            report.failed += 1
            return False
        report.writes += 1
        ref = self._service_ref(write.key)
        for ev in write.events:
            self.events.emit(ref, ev.type, ev.reason, ev.message)
            report.events += 1
        return True

    def _service_ref(self, key: str) -> ObjectRef:
        namespace, _, name = key.partition("/")
        return self._watched.ref("Service", namespace, name)

    def _warn_deprecated(self, state: ClusterState) -> None:
        for svc in state.services:
            if not svc.is_load_balancer or not class_matches(svc, self.config.lb_class):
                continue
            for key in svc.annotations:
                if key.startswith(_DEPRECATED_PREFIX) and (svc.key, key) not in (
                    self._deprecation_warned
                ):
                    self._deprecation_warned.add((svc.key, key))
                    self.events.warning(
                        self._service_ref(svc.key),
                        Reason.DEPRECATED_ANNOTATION,
                        f"Service uses deprecated annotation {key}",
                    )

    def _write_pool_status(self, state: ClusterState, report: PassReport) -> None:
        pools = {
            str((o.get("metadata") or {}).get("name")): o
            for o in self._watched.objects("ipaddresspools")
        }
        for usage in self.usage:
            wanted = pool_status(usage)
            obj = pools.get(usage.pool) or {}
            if (obj.get("status") or {}) == wanted:
                self._pool_status_written[usage.pool] = wanted
                continue
            if self._pool_status_written.get(usage.pool) == wanted:
                continue  # written; the watch has not caught up
            if not self.elector.is_leader:
                report.skipped = "lost leadership"
                return
            version = (obj.get("metadata") or {}).get("resourceVersion")
            failure = self.writer.set_pool_status(usage.pool, wanted, version)
            if failure is None:
                self._pool_status_written[usage.pool] = wanted
            elif failure.conflict:
                report.conflicts += 1
            elif not failure.not_found:
                report.failed += 1
