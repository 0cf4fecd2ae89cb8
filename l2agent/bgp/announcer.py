"""The speaker's BGP half: every new snapshot becomes a plan, the plan an frr.conf, and the
text goes to the reloader; on the way out, everything is withdrawn before FRR stops.

A thin asyncio adapter around the pure pieces (`plan.plan_bgp`, `frr_config.render`) and a
reloader (`FrrApplier`: `l2agent.bgp.reload.FrrReloader` in the speaker, which tests,
reloads, debounces, keeps the last good text and retries). The text is handed over only when
it changed, so a snapshot that does not touch BGP costs one plan and one render, no reload.

Planned handover (SIGTERM): `withdraw()` applies the same sessions with nothing announced,
then waits until FRR reports no prefix sent to any peer (if it can tell) or `drain` seconds
have passed; only then may the speaker exit and FRR stop (the pod's termination order: the
speaker's preStop/SIGTERM handling first, FRR's containers after). Routers move the traffic
to the other nodes on the UPDATE, before the node stops serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from l2agent.bgp.frr_config import FrrOptions, redact, render
from l2agent.bgp.plan import BgpPlan, plan_bgp
from l2agent.model.snapshot import ClusterState

__all__ = ["BgpAnnouncer", "FrrApplier"]

log = logging.getLogger(__name__)


class FrrApplier(Protocol):
    """What the announcer needs from a reloader: make FRR run this text."""

    async def apply(self, config: str) -> Any: ...


class BgpAnnouncer:
    """Plans node `node`'s BGP announcements from each snapshot and keeps FRR in step.

    `plan_options` are `plan_bgp`'s keyword arguments (a speaker in a cluster passes
    `source=InputSource.CLUSTER`).
    """

    def __init__(
        self,
        node: str,
        applier: FrrApplier,
        *,
        frr_options: FrrOptions | None = None,
        plan_options: dict[str, Any] | None = None,
        on_plan: Callable[[BgpPlan], None] | None = None,
    ) -> None:
        self.node = node
        self.applier = applier
        self.frr_options = frr_options or FrrOptions()
        self.plan_options = dict(plan_options or {})
        self.on_plan = on_plan
        self.plan: BgpPlan | None = None
        self.text: str | None = None
        self.withdrawn = False
        self.applied = 0
        """How many texts were handed to the applier (unchanged plans are not)."""

    def replan(self, state: ClusterState) -> str | None:
        """Plan and render for `state`; the text to apply, or None when nothing changed."""
        plan = plan_bgp(state, self.node, **self.plan_options)
        for problem in plan.problems:
            log.warning("bgp: %s", problem.message)
        self.plan = plan
        if self.on_plan is not None:
            self.on_plan(plan)
        if self.withdrawn:
            return None  # stopping: nothing is announced again
        text = render(plan, self.frr_options)
        if text == self.text:
            return None
        self.text = text
        return text

    async def update(self, state: ClusterState) -> Any:
        """Apply the plan for `state` if its frr.conf changed; returns the applier's outcome."""
        text = self.replan(state)
        if text is None:
            return None
        plan = self.plan
        assert plan is not None
        log.info(
            "bgp: %d session(s), %d prefix(es) to announce: applying frr.conf",
            len(plan.sessions),
            len(plan.prefixes),
        )
        log.debug("bgp: frr.conf\n%s", redact(text))
        self.applied += 1
        return await self.applier.apply(text)

    async def withdraw(
        self,
        drain: float,
        *,
        prefixes_sent: Callable[[], Awaitable[int | None]] | None = None,
        poll_interval: float = 0.05,
    ) -> Any:
        """Announce nothing any more (same sessions), then wait until FRR has sent the
        withdrawals (`prefixes_sent()` reaches 0) or `drain` seconds have passed."""
        self.withdrawn = True
        if self.plan is None:
            return None
        text = render(self.plan.withdrawn(), self.frr_options)
        self.text = text
        log.info("bgp: withdrawing every prefix before stopping")
        self.applied += 1
        outcome = await self.applier.apply(text)
        if prefixes_sent is None:
            await asyncio.sleep(drain)
            return outcome
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain
        while loop.time() < deadline:
            try:
                left = await prefixes_sent()
            except Exception as exc:  # FRR's state is a peer's word: never fail the shutdown
                log.warning("bgp: cannot read FRR's sessions while draining: %s", exc)
                left = None
            if left == 0:
                break
            await asyncio.sleep(min(poll_interval, max(0.0, deadline - loop.time())))
        return outcome
