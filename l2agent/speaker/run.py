"""The speaker: configuration + membership -> plan() -> data plane, and its life cycle.

Data flows one way. A source (files, `l2agent.speaker.files`, or Kubernetes,
`l2agent.speaker.kube`) offers a `BuildResult`; `offer` applies the one policy
(`l2agent.model.problems.cost`: a bad object costs only itself) and replans. A membership
source reports `MembershipChange`s; each replans at once on the event loop: no polling
period sits between "member declared dead" and "gratuitous packets on the wire". After every
plan, listeners get a `PlanOutcome` (Kubernetes mode mirrors it into ServiceL2Status and
Events).

Shutdown is a planned handover (SIGTERM): tell the cluster first (gossip leave), keep
answering for `handover_drain` seconds while the successors announce, and only then stop.
Start-up is the reverse: the speaker answers nothing until it has joined the cluster and
learned its members, so a restarting node never claims IPs on a one-member view of the world
(MetalLB issue #1710).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from l2agent.announce.defense import AddressConflict
from l2agent.announce.schedule import AnnounceConfig, Due
from l2agent.health import HealthServer, parse_metrics_addr, speaker_status
from l2agent.interfaces.inventory import DEFAULT_EXCLUDE
from l2agent.logs import NodeAdapter
from l2agent.metrics import OwnershipChange, OwnershipRow, SpeakerMetrics
from l2agent.model.problems import Cost, ObjectProblem, cost
from l2agent.model.reports import BgpReport
from l2agent.model.snapshot import BuildResult, ClusterState
from l2agent.model.types import IPAddress
from l2agent.plan import InputSource, Plan, plan
from l2agent.speaker.dataplane import DataPlane
from l2agent.speaker.gossip_metrics import GossipInputCollector
from l2agent.speaker.membership import ChangeKind, Membership, MembershipChange
from l2agent.speaker.ownership import OwnershipLedger

__all__ = ["PlanListener", "PlanOutcome", "Speaker", "SpeakerOptions"]

log = NodeAdapter(logging.getLogger(__name__))

_PROBLEM_LINES = 20
"""Configuration problems logged one by one per offer; the rest are summarised."""
_PROBLEMS_TRACKED = 1000
"""Problems remembered between offers (so each is logged once, when it appears)."""


@dataclass(frozen=True, slots=True)
class SpeakerOptions:
    """What one speaker process is told on its command line."""

    node: str
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    ignore_exclude_lb: bool = False
    lb_class: str | None = None
    announce: AnnounceConfig = field(default_factory=AnnounceConfig)
    handover_drain: float = 0.5
    """Seconds to keep answering after the leave notice went out (successors announce)."""
    metrics_addr: str | None = ":7472"
    source: InputSource = InputSource.STATIC
    """Static files or Kubernetes: which gaps the plan fills (see `l2agent.plan`)."""


@dataclass(frozen=True, slots=True)
class PlanOutcome:
    """A plan the speaker applied, and the IPs it could not announce (MetalLB's
    `announceFailed`: none of the interfaces the advertisement names exists here)."""

    plan: Plan
    announce_failed: frozenset[IPAddress] = frozenset()


class PlanListener(Protocol):
    def __call__(self, outcome: PlanOutcome) -> None: ...


class Speaker:
    """Glues configuration, membership and the data plane; owns the asyncio life cycle."""

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
        self.ledger = OwnershipLedger()
        self.metrics = SpeakerMetrics(
            self.registry,
            options.node,
            ownership=self.ownership_rows,
            members=membership.rows,
            awareness=membership.health_score,
        )
        self.registry.register(GossipInputCollector(membership.input_report))
        self.dataplane = dataplane or DataPlane(
            self.metrics,
            options.announce,
            exclude=options.exclude,
            on_sent=self.packets_sent,
            on_conflict=self._conflict,
            on_conflict_report=self.conflict_reported,
        )
        self.state: ClusterState | None = None
        self.plan: Plan | None = None
        self.conflict_listeners: list[Callable[[AddressConflict], None]] = []
        """Called with each address-conflict report (start, every 10 s, end): Kubernetes
        mode posts a Warning Event on the Service."""
        self.plan_listeners: list[PlanListener] = []
        """Called after every replan (Kubernetes mode mirrors the plan into ServiceL2Status)."""
        self.ready_checks: list[Callable[[], bool]] = [membership.ready]
        """All must hold for /readyz (e.g. the Kubernetes caches have synced)."""
        self.liveness_checks: list[Callable[[], Iterable[object]]] = []
        """Each names what is stuck (e.g. a watch thread); /healthz fails while any does.
        The event loop itself needs no check: a stuck loop cannot answer /healthz."""
        self.on_started: list[Callable[[], None]] = []
        """Called once joined and serving (e.g. raise the scheduling priority: start-up's
        imports and parsing must not run ahead of every other process on the CPU)."""
        self.on_reload: list[Callable[[], None]] = []
        """Called on SIGHUP (re-read the configuration files)."""
        self.background: list[Callable[[], Coroutine[Any, Any, None]]] = []
        """Tasks to run while serving (e.g. watch the configuration files)."""
        self.status_sections: dict[str, Callable[[], Any]] = {}
        """More /status sections by name, built at request time (e.g. ``gossip_keys``)."""
        self.on_shutdown: list[Callable[[], None]] = []
        """Called once the speaker has stopped answering (e.g. stop the watches)."""
        self.on_leave: list[Callable[[], Coroutine[Any, Any, None]]] = []
        """Awaited when the handover starts, beside the layer 2 drain; the speaker stops
        only when all have finished (BGP mode withdraws its prefixes here)."""
        self.bgp_report: Callable[[], BgpReport | None] | None = None
        """This node's BGP sessions for /status (BGP mode sets it)."""
        self._reported: frozenset[ObjectProblem] = frozenset()
        self._announce_failed: frozenset[IPAddress] = frozenset()
        self._leaving = False
        self._burst: list[str] | None = None
        """Changes held for one replan at the end of this loop pass (None: no burst)."""
        self._stopping = asyncio.Event()
        self._health: HealthServer | None = None

    # -- inputs -------------------------------------------------------------------------------

    def offer(self, result: BuildResult) -> bool:
        """A source's new configuration, applied at once: a bad object costs only itself
        (the policy, `cost`), so whatever else it holds is served. Each object left out is
        logged once and counted in the stale-config metric. True when nothing was left out."""
        self._report(result.problems)
        self.metrics.config_applied(len(result.stale))
        self.set_state(result.state)
        return not result.stale

    def _report(self, problems: Sequence[ObjectProblem]) -> None:
        """Each problem is logged once, when it first appears (sources re-offer the same
        configuration on every change; a bad object must not log on each), and at most
        `_PROBLEM_LINES` per offer: a file of 100,000 bad objects gives one summary line."""
        # Only the first `_PROBLEMS_TRACKED` are remembered: this runs on the event loop,
        # and a file of 100,000 bad objects must not cost 100,000 hashes per offer.
        tracked = problems[:_PROBLEMS_TRACKED]
        current = frozenset(tracked)
        fresh = [p for p in tracked if p not in self._reported]
        fresh_count = len(fresh) + max(0, len(problems) - _PROBLEMS_TRACKED)
        for problem in fresh[:_PROBLEM_LINES]:
            if cost(problem) is Cost.OBJECT:
                self.log.warning("left out (the rest is served): %s", problem.message)
            else:
                self.log.info("not read: %s", problem.message)
        if fresh_count > _PROBLEM_LINES:
            self.log.warning(
                "%d more configuration problems not logged one by one",
                fresh_count - min(len(fresh), _PROBLEM_LINES),
            )
        self._reported = current

    def set_state(self, state: ClusterState) -> None:
        """A new snapshot: replan at once."""
        self.state = state
        self._replan("config")

    def membership_changed(self, change: MembershipChange) -> None:
        """The membership source's `on_change`: record failures, then replan.

        The first change replans at once (a failover waits for nothing); more changes in
        the same pass of the loop (a push/pull that brought many members) are folded into
        one replan when the pass ends, so a burst costs one plan, not one per member.
        """
        loop = asyncio.get_running_loop()
        if change.kind is ChangeKind.FAILED and change.member is not None:
            self.ledger.member_failed(change.member, loop.time())
            self.metrics.member_failed(change.member)
        elif change.kind is ChangeKind.JOINED and change.member is not None:
            self.ledger.member_joined(change.member)
        if self._burst is not None:
            self._burst.append(str(change))
            return
        self._burst = []
        loop.call_soon(self._end_burst)
        self._replan(str(change))

    def _end_burst(self) -> None:
        held, self._burst = self._burst or [], None
        if held:
            why = held[0] if len(held) == 1 else f"{len(held)} membership changes"
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
            self._apply(None, why)
            return
        self.plan = plan(
            state,
            self._members(state),
            self.options.node,
            ignore_exclude_lb=self.options.ignore_exclude_lb,
            lb_class=self.options.lb_class,
            source=self.options.source,
        )
        self._apply(self.plan, why)
        outcome = PlanOutcome(self.plan, self._announce_failed)
        for listener in self.plan_listeners:
            try:
                listener(outcome)
            except Exception:  # a reporting hook must never stop the data plane
                self.log.exception("plan listener failed")
        self.membership.pin(_watchdog_targets(self.plan, self.options.node))

    def _apply(self, current: Plan | None, why: str) -> None:
        announcements = current.announcements if current is not None else {}
        diff = self.ledger.update(current, announcements.keys(), time.time())
        for ip in diff.lost:
            self.metrics.ownership_changed(ip, OwnershipChange.LOST)
            self.log.info("stopped announcing %s (%s)", ip, why)
        for ip in diff.gained:
            self.metrics.ownership_changed(ip, OwnershipChange.GAINED)
            self.log.info("announcing %s (%s)", ip, why)
        self.dataplane.apply(announcements)
        failed = frozenset(ip for ip in announcements if self.dataplane.announce_failed(ip))
        for ip in sorted(failed - self._announce_failed, key=_ip_key):
            self.log.warning("announceFailed: none of the interfaces for %s is on this node", ip)
        self._announce_failed = failed

    def packets_sent(self, due: Sequence[Due], now: float) -> None:
        """The data plane sent `due` at `now`: first packets end the failovers they time."""
        for timing in self.ledger.first_sent((item.ip for item in due), now):
            self.metrics.failover_observed(timing.seconds)
            self.log.info(
                "failover of %s from %s took %.1f ms",
                timing.ip,
                timing.previous_owner,
                timing.seconds * 1e3,
            )

    def _conflict(self, ip: IPAddress, mac: bytes) -> None:
        # While handing over, the successor's gratuitous packets are expected, not a conflict.
        if not self._leaving:
            self.metrics.conflict_detected(ip, mac)

    def conflict_reported(self, conflict: AddressConflict) -> None:
        """The data plane's bounded report of an address conflict (already logged)."""
        if not self._leaving:
            for listener in self.conflict_listeners:
                listener(conflict)

    # -- views --------------------------------------------------------------------------------

    def ownership_rows(self) -> list[OwnershipRow]:
        """One row per service IP of the live plan (the gauges and /status read this)."""
        return self.ledger.rows(self.dataplane.interfaces_for)

    def ready(self) -> bool:
        return all(check() for check in self.ready_checks)

    def stuck(self) -> list[object]:
        """What keeps the speaker from being live (empty: live)."""
        return [item for check in self.liveness_checks for item in check()]

    # -- life cycle ---------------------------------------------------------------------------

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT; then hand over and stop. Returns the exit status."""
        loop = asyncio.get_running_loop()
        await self.dataplane.start()
        if self.options.metrics_addr:
            host, port = parse_metrics_addr(self.options.metrics_addr)
            self._health = HealthServer(
                self.registry,
                host=host,
                port=port,
                ready=self.ready,
                live=self.stuck,
                status=speaker_status(
                    self.options.node,
                    self.ownership_rows,
                    self.membership.rows,
                    lambda: self.bgp_report() if self.bgp_report is not None else None,
                    self.status_sections,
                ),
            )
            await self._health.start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self._hup)
        self._replan("start")
        await self.membership.start(self.membership_changed, self.metrics)
        self._replan("joined")
        for hook in self.on_started:
            hook()
        tasks = [asyncio.create_task(make()) for make in self.background]
        try:
            await self._stopping.wait()
        finally:
            for task in tasks:
                task.cancel()
            await self.shutdown()
        return 0

    def stop(self) -> None:
        self._stopping.set()

    def _hup(self) -> None:
        for hook in self.on_reload:
            hook()

    async def shutdown(self) -> None:
        """Planned handover: leave, keep answering while successors announce, then stop."""
        self.log.info("leaving: handing over %d IPs", len(self.ledger.owned))
        self._leaving = True
        leaving = [asyncio.create_task(make()) for make in self.on_leave]
        try:
            await self.membership.leave(timeout=self.options.handover_drain)
        except Exception as exc:  # a failed goodbye must not keep us from stopping
            self.log.warning("graceful leave failed: %s", exc)
        await asyncio.sleep(self.options.handover_drain)
        for result in await asyncio.gather(*leaving, return_exceptions=True):
            if isinstance(result, BaseException):
                self.log.warning("handover step failed: %r", result)
        self.dataplane.close()
        for hook in self.on_shutdown:
            try:
                hook()
            except Exception:
                self.log.exception("shutdown hook failed")
        await self.membership.close()
        if self._health is not None:
            await self._health.close()


def _watchdog_targets(current: Plan, me: str) -> list[str]:
    """The owners whose IPs `me` inherits (ranked second): probed every interval."""
    return sorted(
        {
            svc.candidates[0]
            for svc in current.services
            if len(svc.candidates) > 1 and svc.candidates[1] == me
        }
    )


def _ip_key(ip: IPAddress) -> tuple[int, int]:
    return ip.version, int(ip)
