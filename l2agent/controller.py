"""The controller: allocates Service IPs from the pools and writes them to the cluster.

Composition root. Watches Services, Namespaces, IPAddressPools and L2Advertisements; the
replica holding the Lease runs the pure allocator on the current `ClusterState` and writes
the difference: `status.loadBalancer.ingress`, the `metallb.io/ip-allocated-from-pool`
annotation, pool status counts, and the Events MetalLB users grep for. The standby replica
watches too, so it takes over with a warm cache.

`plan_writes()` is pure (what to write for each Service, with its Events); `Controller`
is the I/O around it. A configuration with errors (overlapping pools, bad CIDRs) is
rejected as a whole and the last good one stays in force, as MetalLB does, so a typo in a
new pool can never clear the IPs of running Services.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import signal
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from prometheus_client import CollectorRegistry

from l2agent.allocator import (
    ANN_ALLOCATED_FROM_POOL,
    Allocation,
    AllocationError,
    AllocationFailure,
    Assignment,
    allocate,
    class_matches,
)
from l2agent.kube.cache import WatchedObjects
from l2agent.kube.events import (
    CONTROLLER_COMPONENT,
    EventRecorder,
    EventType,
    ObjectRef,
    Reason,
)
from l2agent.kube.lease import LeaseConfig, LeaseElector
from l2agent.kube.status import ServiceStatusWriter
from l2agent.kube.watch import WatchConfig
from l2agent.metrics import ControllerMetrics, PoolUsage
from l2agent.model.crds import IPAddressPool, is_buggy
from l2agent.model.snapshot import BuildResult, ClusterState, build_state
from l2agent.model.types import IPAddress
from l2agent.model.views import IPFamilyPolicy

__all__ = [
    "CONTROLLER_RESOURCES",
    "Controller",
    "ControllerConfig",
    "PlannedEvent",
    "ServiceWrite",
    "plan_writes",
    "pool_usage",
    "run_controller",
]

log = logging.getLogger(__name__)

CONTROLLER_RESOURCES = ("services", "namespaces", "ipaddresspools", "l2advertisements")
_CONFIG_KINDS = frozenset({"IPAddressPool", "L2Advertisement", "Namespace"})
_DEPRECATED_PREFIX = "metallb.universe.tf/"


# ---------------------------------------------------------------------------- pure part


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


def _go_quoted(ips: Iterable[IPAddress]) -> str:
    """Go's %q of a []string, as MetalLB's messages print IP lists: ["a" "b"]."""
    return "[" + " ".join(f'"{ip}"' for ip in ips) + "]"


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

    Non-LoadBalancer Services lose any ingress and pool annotation we gave them; services
    of another loadBalancerClass are not ours and are left alone.
    """
    out: list[ServiceWrite] = []
    for svc in state.services:
        if not class_matches(svc, lb_class):
            continue
        current_pool = svc.annotations.get(ANN_ALLOCATED_FROM_POOL)
        result = allocation.get(svc.key) if svc.is_load_balancer else None
        if result is None:
            if svc.ingress_ips or current_pool is not None:
                out.append(
                    ServiceWrite(
                        svc.key,
                        () if svc.ingress_ips else KEEP,
                        None if current_pool is not None else KEEP,
                    )
                )
            continue
        events: list[PlannedEvent] = []
        if isinstance(result, Assignment):
            ingress: tuple[IPAddress, ...] | Keep = KEEP
            old = tuple(svc.ingress_ips)
            if old != result.ips:
                ingress = result.ips
                if old and set(old) < set(result.ips):
                    # PreferDualStack: the other family was added next to the kept IP.
                    added = next(ip for ip in result.ips if ip not in old)
                    message = f'Assigned additional IP "{added}"'
                else:
                    if old:
                        events.append(
                            PlannedEvent(
                                EventType.NORMAL,
                                Reason.CLEAR_ASSIGNMENT,
                                f'current IP for "{svc.key}" not allowed by config, will '
                                f"attempt for new IP assignment: {_go_quoted(old)}",
                            )
                        )
                    message = f"Assigned IP {_go_quoted(result.ips)}"
                events.append(PlannedEvent(EventType.NORMAL, Reason.IP_ALLOCATED, message))
            pool: str | Keep | None = KEEP
            if result.pool is not None and current_pool != result.pool:
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
            if ingress is not KEEP or pool is not KEEP or events:
                out.append(ServiceWrite(svc.key, ingress, pool, tuple(events)))
            continue
        assert isinstance(result, AllocationError)
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
                events.append(
                    PlannedEvent(
                        EventType.NORMAL,
                        Reason.CLEAR_ASSIGNMENT,
                        f'current IP for "{svc.key}" not allowed by config, will attempt for '
                        f"new IP assignment: {_go_quoted(svc.ingress_ips)}",
                    )
                )
            events.append(
                PlannedEvent(
                    EventType.WARNING,
                    Reason.ALLOCATION_FAILED,
                    f'Failed to allocate IP for "{svc.key}": {result.message}',
                )
            )
        out.append(
            ServiceWrite(
                svc.key,
                () if svc.ingress_ips else KEEP,
                None if current_pool is not None else KEEP,
                tuple(events),
            )
        )
    return out


def family_size(pool: IPAddressPool, version: int) -> int:
    """Usable addresses of one family (MetalLB's poolCount per family, avoidBuggyIPs)."""
    total = 0
    for cidr in pool.cidrs:
        if cidr.version != version:
            continue
        n = cidr.num_addresses
        if pool.avoid_buggy_ips and version == 4:
            if cidr.prefixlen <= 24:
                n -= 2 * 2 ** (24 - cidr.prefixlen)
            else:
                n -= int(is_buggy(cidr.network_address)) + int(is_buggy(cidr.broadcast_address))
        total += n
    return total


def pool_usage(state: ClusterState, allocation: Allocation) -> list[PoolUsage]:
    """Per pool: usable and in-use addresses by family (a shared IP counts once)."""
    out = []
    for pool in state.pools:
        used = allocation.in_use.get(pool.name, frozenset())
        out.append(
            PoolUsage(
                pool=pool.name,
                total_v4=family_size(pool, 4),
                total_v6=family_size(pool, 6),
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


def _ref_key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


# ---------------------------------------------------------------------------- I/O part


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


@dataclass
class PassReport:
    """What one reconcile pass did (for logs and tests)."""

    writes: int = 0
    failed: int = 0
    events: int = 0
    config_rejected: bool = False
    skipped: str | None = None


class Controller:
    """Watches, elects, allocates, writes. `start()` / `stop()`; passes run on a thread."""

    def __init__(
        self,
        api: client.ApiClient,
        config: ControllerConfig,
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.config = config
        self._watched = WatchedObjects(
            api,
            CONTROLLER_RESOURCES,
            namespace=config.namespace,
            on_change=self._wake,
            watch_config=config.watch,
            debounce=config.debounce,
        )
        self.elector = LeaseElector(
            api,
            namespace=config.namespace,
            name=config.lease_name,
            identity=config.identity,
            config=config.lease,
            on_started_leading=self._became_leader,
            on_stopped_leading=self._lost_leadership,
        )
        self.writer = ServiceStatusWriter(api, namespace=config.namespace)
        self.events = EventRecorder(api, component=CONTROLLER_COMPONENT)
        self.metrics = (
            ControllerMetrics(registry, pools=lambda: self.usage) if registry is not None else None
        )
        self.usage: tuple[PoolUsage, ...] = ()
        self.last_report: PassReport | None = None
        self.passes = 0
        self._good_config: list[Mapping[str, Any]] | None = None
        self._rejected_config: list[Mapping[str, Any]] | None = None
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

    # ------------------------------------------------------------------ triggers

    def _wake(self) -> None:
        with self._wakeup:
            self._pending = True
            self._wakeup.notify_all()

    def _became_leader(self) -> None:
        log.info("leading: reconciling every Service")
        self._inflight.clear()
        self._pool_status_written.clear()
        self._wake()

    def _lost_leadership(self) -> None:
        log.warning("no longer leading: writes stop")

    def _loop(self) -> None:
        while not self._stopping.is_set():
            with self._wakeup:
                while not self._pending and not self._stopping.is_set():
                    self._wakeup.wait(1.0)
                if self._stopping.is_set():
                    return
                self._pending = False
            try:
                report = self.reconcile()
            except Exception:
                log.exception("reconcile pass failed")
                report = PassReport(failed=1)
            if report.failed:
                self._stopping.wait(self.config.retry_interval)
                self._wake()

    # ------------------------------------------------------------------ one pass

    def _config_objects(self) -> tuple[list[Mapping[str, Any]], BuildResult | None]:
        """The config in force: the current one if valid, else the last good one."""
        current = self._watched.objects("ipaddresspools", "l2advertisements", "namespaces")
        checked = build_state(current)
        if not checked.blocking:
            if self._good_config != current and self.metrics is not None:
                self.metrics.config_reloaded()
            self._good_config = current
            self._rejected_config = None
            return current, None
        if self._rejected_config != current:
            self._rejected_config = current
            if self.metrics is not None:
                self.metrics.config_rejected()
            for problem in checked.blocking:
                ref = ObjectRef(
                    problem.kind,
                    problem.name,
                    problem.namespace or self.config.namespace,
                    "metallb.io/v1beta1",
                )
                self.events.warning(ref, Reason.INVALID_CONFIG, problem.message)
            log.error(
                "configuration rejected, keeping the last good one: %s",
                "; ".join(p.message for p in checked.blocking),
            )
        return (self._good_config or []), checked

    def reconcile(self) -> PassReport:
        """One pass: allocate on the current state and write the differences (leader only)."""
        self.passes += 1
        report = PassReport()
        self.last_report = report
        if not self._watched.synced:
            report.skipped = "not synced"
            return report
        config_objs, rejected = self._config_objects()
        report.config_rejected = rejected is not None
        if rejected is not None and self._good_config is None:
            report.skipped = "no valid configuration yet"
            return report
        services = self._watched.objects("services")
        result = build_state([*config_objs, *services])
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
            ok = self._apply(write, report)
            if ok:
                self._inflight[write.key] = (write, versions.get(write.key))
        self._warn_deprecated(state)
        self._write_pool_status(state, report)
        if report.writes or report.failed:
            log.info(
                "reconciled: %d service writes, %d failed, %d events",
                report.writes,
                report.failed,
                report.events,
            )
        return report

    def _apply(self, write: ServiceWrite, report: PassReport) -> bool:
        # The pool annotation goes first, so whoever sees the new ingress sees its pool.
        ok = True
        if write.pool is not KEEP:
            assert not isinstance(write.pool, Keep)
            failure = self.writer.set_pool_annotation(write.key, write.pool)
            ok = failure is None or failure.not_found
        if ok and write.ingress is not KEEP:
            assert not isinstance(write.ingress, Keep)
            failure = self.writer.set_ingress(write.key, write.ingress)
            ok = failure is None or failure.not_found
        if not ok:
            report.failed += 1
            return False
        report.writes += 1
        ref = ObjectRef.service(write.key)
        for ev in write.events:
            self.events.emit(ref, ev.type, ev.reason, ev.message)
            report.events += 1
        return True

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
                        ObjectRef.service(svc.key),
                        Reason.DEPRECATED_ANNOTATION,
                        f"Service uses deprecated annotation {key}",
                    )

    def _write_pool_status(self, state: ClusterState, report: PassReport) -> None:
        current = {
            str((o.get("metadata") or {}).get("name")): (o.get("status") or {})
            for o in self._watched.objects("ipaddresspools")
        }
        for usage in self.usage:
            wanted = pool_status(usage)
            if current.get(usage.pool) == wanted:
                self._pool_status_written[usage.pool] = wanted
                continue
            if self._pool_status_written.get(usage.pool) == wanted:
                continue  # written; the watch has not caught up
            failure = self.writer.set_pool_status(usage.pool, wanted)
            if failure is None:
                self._pool_status_written[usage.pool] = wanted
            elif not failure.not_found:
                report.failed += 1


# ---------------------------------------------------------------------------- entry point


def run_controller(args: Any) -> int:
    """`l2agent controller`: run until SIGTERM/SIGINT; 0 on a clean stop.

    Reads `args.kubeconfig` ('-' or None in a pod: in-cluster), `args.namespace`,
    `args.identity` (pod name), `args.lb_class`, `args.metrics_addr`, `args.log_level`,
    and optionally `args.lease_name`.
    """
    from l2agent import logs
    from l2agent.health import HealthServer, parse_addr
    from l2agent.kube.convert import new_api_client

    logs.setup(getattr(args, "log_level", "info") or "info")
    identity = getattr(args, "identity", None)
    if not identity:
        import socket

        identity = socket.gethostname()
    config = ControllerConfig(
        namespace=args.namespace,
        identity=identity,
        lb_class=getattr(args, "lb_class", None) or None,
        lease_name=getattr(args, "lease_name", None) or "l2agent-controller",
    )
    try:
        api = new_api_client(getattr(args, "kubeconfig", None))
    except Exception as exc:
        log.error("cannot configure the Kubernetes client: %s", exc)
        return 1
    registry = CollectorRegistry()
    controller = Controller(api, config, registry=registry)
    host, port = parse_addr(getattr(args, "metrics_addr", ":7472") or ":7472")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        server = HealthServer(registry, host=host, port=port, ready=lambda: controller.ready)
        await server.start()
        controller.start()
        try:
            await stop.wait()
        finally:
            await loop.run_in_executor(None, controller.stop)
            await server.close()

    asyncio.run(main())
    return 0
