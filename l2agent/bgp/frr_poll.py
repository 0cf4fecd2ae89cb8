"""Read FRR's session and BFD state for metrics and ``/status``: bounded, off the loop, cached.

``FrrStatePoller(run_dir).run()`` asks vtysh every ``interval`` seconds (5 by default) for
``show bgp vrf all neighbors json``, ``show bfd peers json`` and ``show bfd peers counters
json``; each vtysh is an asyncio child process bounded in time and output. ``state`` is the
latest ``FrrState`` (a scrape-time collector reads it, so a scrape never waits on FRR); a
failed poll keeps the previous sessions and says why in ``FrrState.error``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from l2agent.bgp import _proc
from l2agent.bgp.frr_state import (
    DEFAULT_VRF,
    BgpSession,
    FrrState,
    MalformedFrrOutput,
    parse_bfd_peers,
    parse_bgp_neighbors,
)

log = logging.getLogger(__name__)

OUTPUT_LIMIT = 16 * 1024 * 1024


def parse_all_vrfs(text: str) -> tuple[BgpSession, ...]:
    """``show bgp vrf all neighbors json``: ``{vrf: {address: {...}, "vrfId": ..}}``."""
    stripped = text.strip()
    if not stripped:
        return ()
    try:
        doc = json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise MalformedFrrOutput(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise MalformedFrrOutput("neighbors: expected an object")
    sessions: list[BgpSession] = []
    for vrf, body in doc.items():
        if isinstance(body, dict):
            sessions += parse_bgp_neighbors(json.dumps(body), vrf=str(vrf) or DEFAULT_VRF)
    return tuple(sessions)


class FrrStatePoller:
    """Polls FRR through vtysh; ``state`` is the newest reading (empty before the first)."""

    def __init__(
        self,
        run_dir: Path,
        *,
        config_dir: Path | None = None,
        interval: float = 5.0,
        timeout: float = 5.0,
        vtysh: str = "vtysh",
        on_state: Callable[[FrrState], object] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.config_dir = Path(config_dir) if config_dir is not None else None
        self.interval = interval
        self.timeout = timeout
        self.on_state = on_state
        self._vtysh = vtysh
        self.state = FrrState(error="not polled yet")
        self._last_poll: float | None = None

    def _argv(self, command: str) -> list[str]:
        argv = [self._vtysh, "--vty_socket", str(self.run_dir)]
        if self.config_dir is not None:
            argv += ["--config_dir", str(self.config_dir)]
        return [*argv, "-c", command]

    async def _show(self, command: str) -> str:
        done = await _proc.run(self._argv(command), self.timeout, limit=OUTPUT_LIMIT)
        if done.returncode != 0 or done.truncated:
            why = "output too large" if done.truncated else done.output.strip()[:200]
            raise MalformedFrrOutput(f"vtysh -c {command!r}: {why}")
        return done.stdout

    async def poll(self) -> FrrState:
        """Read FRR now (or return the cached state when the last read is under
        ``interval`` old: callers may ask as often as they like)."""
        now = time.monotonic()
        if self._last_poll is not None and now - self._last_poll < self.interval:
            return self.state
        self._last_poll = now
        try:
            sessions = parse_all_vrfs(await self._show("show bgp vrf all neighbors json"))
            bfd = parse_bfd_peers(
                await self._show("show bfd peers json"),
                await self._show("show bfd peers counters json"),
            )
            state = FrrState(sessions=sessions, bfd_peers=bfd, taken_at=time.monotonic())
        except (MalformedFrrOutput, _proc.StepTimeout, OSError) as exc:
            state = FrrState(
                sessions=self.state.sessions,
                bfd_peers=self.state.bfd_peers,
                taken_at=time.monotonic(),
                error=str(exc)[:300],
            )
        if state.error is not None and self.state.error is None:
            log.warning("cannot read FRR's state: %s", state.error)
        elif state.error is None and self.state.error not in (None, "not polled yet"):
            log.info("reading FRR's state again")
        self.state = state
        if self.on_state is not None:
            self.on_state(state)
        return state

    async def prefixes_sent(self) -> int | None:
        """Prefixes FRR has sent and not withdrawn, over every session, read now (not from
        the cache); None when FRR does not answer. The speaker's planned stop waits for 0
        (``BgpAnnouncer.withdraw(prefixes_sent=...)``): FRR has sent every withdrawal."""
        try:
            sessions = parse_all_vrfs(await self._show("show bgp vrf all neighbors json"))
        except (MalformedFrrOutput, _proc.StepTimeout, OSError) as exc:
            log.debug("FRR prefix count unavailable: %s", exc)
            return None
        return sum(s.prefixes_sent for s in sessions if s.established)

    async def run(self) -> None:
        """Poll every ``interval`` seconds until cancelled."""
        while True:
            await self.poll()
            await asyncio.sleep(self.interval)
