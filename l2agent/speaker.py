"""The speaker: sources + membership -> plan() -> data plane. The composition root.

Every input that can change who announces what (a config reload, a gossip membership event,
a Kubernetes snapshot) calls ``_replan()`` at once on the event loop: no polling period sits
between "member declared dead" and "gratuitous packets on the wire".

Shutdown is a planned handover (SIGTERM): tell the cluster first (gossip leave), keep
answering for ``handover_drain`` seconds while the successors announce, and only then stop.
Start-up is the reverse: the speaker answers nothing until it has joined the cluster and
learned its members, so a restarting node never claims IPs on a one-member view of the world
(MetalLB issue #1710).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry

from l2agent.announce.schedule import AnnounceConfig, Due
from l2agent.dataplane import DataPlane
from l2agent.errors import ConfigError
from l2agent.health import HealthServer, parse_addr, speaker_status
from l2agent.interfaces.inventory import DEFAULT_EXCLUDE, InterfaceSelection
from l2agent.logs import NodeAdapter
from l2agent.metrics import MemberRow, OwnershipChange, OwnershipRow, SpeakerMetrics
from l2agent.model.snapshot import ClusterState, build_state
from l2agent.model.types import IPAddress
from l2agent.plan import Plan, plan
from l2agent.static import load_yaml_files

__all__ = ["Membership", "Speaker", "SpeakerOptions", "StaticMembership"]

log = NodeAdapter(logging.getLogger(__name__))


@dataclass(frozen=True, slots=True)
class SpeakerOptions:
    """What one speaker process is told on its command line."""

    node: str
    config_paths: tuple[Path, ...] = ()
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    ignore_exclude_lb: bool = False
    lb_class: str | None = None
    announce: AnnounceConfig = field(default_factory=AnnounceConfig)
    handover_drain: float = 0.5
    """Seconds to keep answering after the leave notice went out (successors announce)."""
    metrics_addr: str | None = ":7472"
    reload_check: float = 1.0
    """Seconds between checks of the config files' modification times (SIGHUP is instant)."""
    static_inputs: bool = True
    """Static files: allocate IPs the files lack and take a Service with no EndpointSlice as
    served. Kubernetes mode: neither (the controller allocates; slices are authoritative)."""


class Membership:
    """Who is alive, as the speaker's election sees it. Subclasses feed ``on_change``."""

    on_change: Callable[[str], None] = staticmethod(lambda why: None)
    suspected: Callable[[], None] = staticmethod(lambda: None)
    refuted: Callable[[], None] = staticmethod(lambda: None)

    def live(self) -> frozenset[str] | None:
        """Names of live members (alive or suspect); None: take the Node objects."""
        raise NotImplementedError

    def ready(self) -> bool:
        """False until the member list can be trusted (joined the cluster)."""
        return True

    def rows(self) -> list[MemberRow]:
        return []

    def awareness(self) -> float:
        """Lifeguard's local health score (0 = healthy; higher = this node is slow)."""
        return 0.0

    def pin(self, names: Iterable[str]) -> None:
        """Watch these members closely (the owners whose IPs this node would take over)."""

    async def start(self) -> None:
        """Begin (join); call ``on_change`` whenever ``live()`` or ``ready()`` may differ."""

    async def leave(self, timeout: float) -> None:
        """Tell the others we are going (graceful)."""

    async def close(self) -> None:
        """Stop without a goodbye."""


class StaticMembership(Membership):
    """Members = the Node objects of the config (no gossip): issue 2's static mode."""

    def live(self) -> frozenset[str] | None:
        return None


@dataclass(frozen=True, slots=True)
class _Owned:
    wall_since: float
    """Unix time this node started announcing the IP (for /status)."""


class Speaker:
    """Glues a config source, a membership source and the data plane together."""

    def __init__(
        self,
        options: SpeakerOptions,
        membership: Membership,
        registry: CollectorRegistry | None = None,
        dataplane: DataPlane | None = None,
    ) -> None:
        self.options = options
        self.membership = membership
        self.registry = registry if registry is not None else CollectorRegistry()
        self.log = log.bind(node=options.node)
        self.metrics = SpeakerMetrics(
            self.registry,
            options.node,
            ownership=self.ownership_rows,
            members=membership.rows,
            awareness=membership.awareness,
        )
        self.dataplane = dataplane or DataPlane(
            self.metrics,
            options.announce,
            exclude=options.exclude,
            on_sent=self._sent,
            on_conflict=self._conflict,
        )
        self.state: ClusterState | None = None
        self.plan: Plan | None = None
        self._owned: dict[IPAddress, _Owned] = {}
        self._owner_since: dict[IPAddress, tuple[str | None, float]] = {}
        self._failed_at: dict[str, float] = {}
        self._leaving = False
        self._previous_owner: dict[IPAddress, str] = {}
        self._timing: dict[IPAddress, float] = {}
        self._mtimes: dict[Path, float] = {}
        self.plan_listeners: list[Callable[[Plan], None]] = []
        """Called after every replan (Kubernetes mode mirrors the plan into ServiceL2Status)."""
        self.ready_checks: list[Callable[[], bool]] = [membership.ready]
        """All must hold for /readyz (e.g. the Kubernetes caches have synced)."""
        self.on_started: list[Callable[[], None]] = []
        """Called once joined and serving (e.g. raise the scheduling priority: start-up's
        imports and parsing must not run ahead of every other process on the CPU)."""
        self.on_shutdown: list[Callable[[], None]] = []
        """Called once the speaker has stopped answering (e.g. stop the watches)."""
        self._stopping = asyncio.Event()
        self._health: HealthServer | None = None
        membership.on_change = self._membership_changed
        membership.suspected = self.metrics.suspicion_raised
        membership.refuted = self.metrics.suspicion_refuted

    # -- inputs -------------------------------------------------------------------------------

    def load_config(self) -> bool:
        """(Re)read the config files; a bad file keeps the last good config. True if applied."""
        paths = self.options.config_paths
        # Remember what we read, good or bad: a bad file is retried when it changes again
        # (or on SIGHUP), not logged every second.
        self._mtimes = {p: _mtime(p) for p in paths}
        try:
            objects = load_yaml_files(paths)
            result = build_state(objects)
        except (ConfigError, OSError) as exc:
            self.log.error("config rejected, keeping the last good one: %s", exc)
            self.metrics.config_rejected()
            return False
        for problem in result.problems:
            if problem in result.blocking:
                self.log.error("config rejected, keeping the last good one: %s", problem.message)
            else:
                self.log.warning("ignored: %s", problem.message)
        if result.blocking:
            self.metrics.config_rejected()
            return False
        self.state = result.state
        self.metrics.config_reloaded()
        self.log.info("config loaded from %s", ", ".join(str(p) for p in paths))
        return True

    def set_state(self, state: ClusterState) -> None:
        """A new snapshot from a live source (Kubernetes): replan at once."""
        self.state = state
        self._replan("config")

    def _membership_changed(self, why: str) -> None:
        kind, _, name = why.partition(":")
        if kind == "failed":
            self._failed_at[name] = asyncio.get_running_loop().time()
            self.metrics.member_failed(name)
        elif kind == "joined":
            self._failed_at.pop(name, None)
        self._replan(why)

    # -- the plan -----------------------------------------------------------------------------

    def _members(self, state: ClusterState) -> frozenset[str]:
        live = self.membership.live()
        if live is not None:
            return live
        nodes = frozenset(state.nodes)
        return nodes or frozenset({self.options.node})

    def _replan(self, why: str) -> None:
        if self._leaving:
            return  # keep answering as we are until the drain ends (planned handover)
        state = self.state
        if state is None or not self.membership.ready():
            self._apply({}, why)
            return
        if self.plan is not None:
            self._previous_owner = {
                ip: svc.owner for svc in self.plan.services for ip in svc.ips if svc.owner
            }
        self.plan = plan(
            state,
            self._members(state),
            self.options.node,
            ignore_exclude_lb=self.options.ignore_exclude_lb,
            lb_class=self.options.lb_class,
            allocate_missing=self.options.static_inputs,
            assume_served_without_slices=self.options.static_inputs,
        )
        self._apply(self.plan.announcements, why)
        for listener in self.plan_listeners:
            try:
                listener(self.plan)
            except Exception:  # a reporting hook must never stop the data plane
                self.log.exception("plan listener failed")
        # The watchdog: probe every interval the owners whose IPs this node would inherit.
        self.membership.pin(
            sorted(
                {
                    svc.candidates[0]
                    for svc in self.plan.services
                    if len(svc.candidates) > 1 and svc.candidates[1] == self.options.node
                }
            )
        )

    def _apply(self, announcements: Mapping[IPAddress, InterfaceSelection], why: str) -> None:
        before = set(self._owned)
        after = set(announcements)
        for ip in sorted(before - after, key=_ip_key):
            del self._owned[ip]
            self._timing.pop(ip, None)
            self.metrics.ownership_changed(ip, OwnershipChange.LOST)
            self.log.info("stopped announcing %s (%s)", ip, why)
        for ip in sorted(after - before, key=_ip_key):
            self._owned[ip] = _Owned(time.time())
            failed_at = self._failed_at.get(self._previous_owner.get(ip) or "")
            if failed_at is not None:
                self._timing[ip] = failed_at
            self.metrics.ownership_changed(ip, OwnershipChange.GAINED)
            self.log.info("announcing %s (%s)", ip, why)
        self.dataplane.apply(announcements)
        for ip in sorted(after - before, key=_ip_key):
            missing = self.dataplane.missing_interfaces(ip)
            if missing:
                self.log.warning(
                    "announceFailed: %s: interfaces %s not on this node", ip, sorted(missing)
                )

    def _sent(self, due: Sequence[Due], now: float) -> None:
        for item in due:
            failed_at = self._timing.pop(item.ip, None)
            if failed_at is not None:
                self.metrics.failover_observed(now - failed_at)
                self.log.info("failover of %s took %.1f ms", item.ip, (now - failed_at) * 1e3)

    def _conflict(self, ip: IPAddress, mac: bytes) -> None:
        # While handing over, the successor's gratuitous packets are expected, not a conflict.
        if not self._leaving:
            self.metrics.conflict_detected(ip, mac)

    # -- views --------------------------------------------------------------------------------

    def ownership_rows(self) -> list[OwnershipRow]:
        """One row per service IP, from the live plan (metrics and /status)."""
        current = self.plan
        if current is None:
            return []
        rows: list[OwnershipRow] = []
        for svc in current.services:
            for ip in svc.ips:
                owned = self._owned.get(ip)
                announcing = owned is not None
                owner_since = self._owner_since.get(ip)
                if owner_since is None or owner_since[0] != svc.owner:
                    owner_since = (svc.owner, time.time())
                    self._owner_since[ip] = owner_since
                rows.append(
                    OwnershipRow(
                        ip=ip,
                        service=svc.key,
                        owner=svc.owner,
                        announcing=announcing,
                        interfaces=self.dataplane.interfaces_for(ip) if announcing else (),
                        since=owned.wall_since if owned else owner_since[1],
                    )
                )
        return rows

    # -- life cycle ---------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; then hand over and stop. Returns the exit status."""
        loop = asyncio.get_running_loop()
        if self.options.config_paths and not self.load_config() and self.state is None:
            return 2
        await self.dataplane.start()
        if self.options.metrics_addr:
            host, port = parse_addr(self.options.metrics_addr)
            self._health = HealthServer(
                self.registry,
                host=host,
                port=port,
                ready=self.ready,
                status=speaker_status(self.options.node, self.ownership_rows, self.membership.rows),
            )
            await self._health.start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        self._replan("start")
        await self.membership.start()
        self._replan("joined")
        for hook in self.on_started:
            hook()
        watcher = asyncio.create_task(self._watch_files())
        try:
            await self._stopping.wait()
        finally:
            watcher.cancel()
            await self.shutdown()
        return 0

    def ready(self) -> bool:
        return all(check() for check in self.ready_checks)

    def stop(self) -> None:
        self._stopping.set()

    def _reload(self) -> None:
        if self.load_config():
            self._replan("config reloaded")

    async def _watch_files(self) -> None:
        while True:
            await asyncio.sleep(self.options.reload_check)
            if any(_mtime(p) != m for p, m in self._mtimes.items()):
                self._reload()

    async def shutdown(self) -> None:
        """Planned handover: leave, keep answering while successors announce, then stop."""
        self.log.info("leaving: handing over %d IPs", len(self._owned))
        self._leaving = True
        try:
            await self.membership.leave(timeout=self.options.handover_drain)
        except Exception as exc:  # a failed goodbye must not keep us from stopping
            self.log.warning("graceful leave failed: %s", exc)
        await asyncio.sleep(self.options.handover_drain)
        self.dataplane.close()
        for hook in self.on_shutdown:
            try:
                hook()
            except Exception:
                self.log.exception("shutdown hook failed")
        await self.membership.close()
        if self._health is not None:
            await self._health.close()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return -1.0


def _ip_key(ip: IPAddress) -> tuple[int, int]:
    return ip.version, int(ip)
