"""BGP mode inside the speaker: every new configuration becomes this node's frr.conf, and a
stopping speaker withdraws its prefixes before it goes.

`BgpLink` listens to the speaker's plan outcomes; when the configuration snapshot changed it
plans and renders (`l2agent.bgp.announcer.BgpAnnouncer`) and hands a changed text to the
reloader (`FrrApplier`: `l2agent.bgp.reload.FrrReloader`, which tests, reloads, debounces,
keeps the last good text and retries). Nothing is written while the configuration has never
had a BGP session for this node, so a layer-2-only speaker needs no FRR beside it.

Shutdown (`withdraw`, awaited by the speaker before its layer 2 handover ends): the same
sessions with nothing announced, then wait until FRR reports no prefix sent to any peer
(`prefixes_sent`, from the FRR state poller) or `drain` seconds have passed. The pod's
termination order follows: the speaker container gets SIGTERM and withdraws while FRR still
runs; FRR's containers must outlive it (a longer terminationGracePeriod and a preStop sleep
on FRR's containers, as MetalLB's FRR sidecars have).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from l2agent.bgp.announcer import BgpAnnouncer, FrrApplier
from l2agent.bgp.frr_config import FrrOptions
from l2agent.bgp.frr_state import FrrState
from l2agent.bgp.plan import BgpPlan
from l2agent.bgp.sessions import bgp_report
from l2agent.model.reports import BgpReport
from l2agent.model.snapshot import ClusterState
from l2agent.plan import InputSource

if TYPE_CHECKING:
    from l2agent.speaker.run import Speaker

__all__ = ["BgpLink", "attach_bgp"]

log = logging.getLogger(__name__)


class BgpLink:
    """Keeps FRR in step with the speaker's configuration (see the module docstring).

    `state`: how to read the speaker's current snapshot (`lambda: speaker.state`).
    `prefixes_sent`: FRR's count of prefixes still advertised to peers (None: unknown).
    """

    def __init__(
        self,
        node: str,
        applier: FrrApplier,
        state: Callable[[], ClusterState | None],
        *,
        frr_options: FrrOptions | None = None,
        source: InputSource = InputSource.STATIC,
        ignore_exclude_lb: bool = False,
        lb_class: str | None = None,
        drain: float = 2.0,
        prefixes_sent: Callable[[], Awaitable[int | None]] | None = None,
        on_plan: Callable[[BgpPlan], None] | None = None,
        close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.plan_listeners: list[Callable[[BgpPlan], None]] = [on_plan] if on_plan else []
        """Called with every new plan (Kubernetes mode mirrors it into ServiceBGPStatus)."""
        self.announcer = BgpAnnouncer(
            node,
            applier,
            frr_options=frr_options,
            plan_options={
                "source": source,
                "ignore_exclude_lb": ignore_exclude_lb,
                "lb_class": lb_class,
            },
            on_plan=self._planned,
        )
        self.applier = applier
        self._state = state
        self.drain = drain
        self.prefixes_sent = prefixes_sent
        self._close = close
        self._seen: ClusterState | None = None
        self._engaged = False
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def plan(self) -> BgpPlan | None:
        return self.announcer.plan

    def report(self, state: FrrState) -> BgpReport | None:
        """This node's sessions with FRR's ``state`` of them, for /status; None until the
        node has had a BGP session (a layer-2-only speaker shows no BGP section)."""
        if not self._engaged:
            return None
        return bgp_report(self.announcer.plan, state)

    def _planned(self, plan: BgpPlan) -> None:
        for listener in self.plan_listeners:
            try:
                listener(plan)
            except Exception:  # a reporting hook must never stop BGP mode
                log.exception("bgp: plan listener failed")

    @property
    def engaged(self) -> bool:
        """True once this node has had a BGP session (from then on FRR is kept in step)."""
        return self._engaged

    def plan_changed(self, outcome: object = None) -> None:
        """A speaker plan listener: replan BGP when the snapshot itself changed (membership
        changes do not concern BGP mode: every eligible node announces)."""
        state = self._state()
        if state is None or state is self._seen:
            return
        self._seen = state
        if not state.bgp_peers and not self._engaged:
            return  # no BGPPeer at all: a layer-2-only cluster costs no BGP planning
        text = self.announcer.replan(state)
        plan = self.announcer.plan
        if plan is not None and plan.sessions:
            self._engaged = True
        if text is None or not self._engaged:
            return  # unchanged, or no BGP session here ever: FRR is not needed
        assert plan is not None
        log.info(
            "bgp: %d session(s), %d prefix(es): applying frr.conf",
            len(plan.sessions),
            len(plan.prefixes),
        )
        self.announcer.applied += 1
        self._spawn(self.applier.apply(text))

    def _spawn(self, work: Awaitable[Any]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:  # the reloader reports and retries; never lose the loop
                log.exception("bgp: applying frr.conf failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def withdraw(self) -> None:
        """Before stopping: announce nothing, wait for FRR to have told the peers; then
        stop the reloader (FRR itself keeps running until its own container stops)."""
        try:
            if self._engaged:
                await self.announcer.withdraw(self.drain, prefixes_sent=self.prefixes_sent)
        finally:
            if self._close is not None:
                await self._close()


def attach_bgp(
    speaker: Speaker,
    *,
    config_dir: Path,
    run_dir: Path,
    drain: float,
) -> BgpLink:
    """BGP mode for `speaker`: the FRR reloader, FRR's state for metrics and draining, and
    the link that keeps them in step (what `l2agent speaker` wires up)."""
    from l2agent.bgp.forwarding import read_forwarding
    from l2agent.bgp.frr_poll import FrrStatePoller
    from l2agent.bgp.metrics import BgpMetrics
    from l2agent.bgp.reload import FrrReloader

    poller = FrrStatePoller(run_dir, config_dir=config_dir)
    metrics = BgpMetrics(speaker.registry, frr_state=lambda: poller.state)
    reloader = FrrReloader(config_dir, run_dir, on_outcome=metrics.reload_finished)
    poller.on_state = reloader.check  # an FRR that restarted empty gets its text back

    async def prefixes_sent() -> int | None:
        """A fresh reading (the shared poller caches for its interval)."""
        state = await FrrStatePoller(run_dir, config_dir=config_dir, interval=0.0).poll()
        if state.error is not None:
            return None
        return sum(s.prefixes_sent for s in state.sessions)

    options = speaker.options
    link = BgpLink(
        options.node,
        reloader,
        lambda: speaker.state,
        frr_options=FrrOptions(hostname=socket.gethostname(), forwarding=read_forwarding()),
        source=options.source,
        ignore_exclude_lb=options.ignore_exclude_lb,
        lb_class=options.lb_class,
        drain=drain,
        prefixes_sent=prefixes_sent,
        close=reloader.close,
    )

    async def poll_while_engaged() -> None:
        while True:
            if link.engaged:
                await poller.poll()
            await asyncio.sleep(poller.interval)

    speaker.plan_listeners.append(link.plan_changed)
    speaker.bgp_report = lambda: link.report(poller.state)
    speaker.on_leave.append(link.withdraw)
    speaker.background.append(poll_while_engaged)
    return link
