"""Membership from the gossip library: the speaker's view of who is alive.

Readiness guards against the MetalLB #1710 failure: a restarting speaker that has not yet
joined sees only itself and would elect itself for every IP. So the speaker answers nothing
until a join has succeeded, or until `alone_after` seconds of failed joins show that it
really is the first (or only) member; it keeps retrying the join in the background either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Iterable, Sequence

from gossip.actions import Address
from gossip.aio.runtime import GossipRuntime
from gossip.config import GossipConfig
from gossip.events import (
    DropReason,
    Event,
    JoinFinished,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberRecovered,
    MemberSuspected,
    MemberUpdated,
    ProbeAcked,
    ProtocolViolation,
    Refuted,
)
from gossip.keyring import Keyring
from gossip.messages import NodeState
from l2agent.model.reports import MemberRow
from l2agent.speaker.membership import (
    ChangeKind,
    MembershipChange,
    MembershipCounters,
    OnChange,
)

__all__ = ["GossipMembership"]

log = logging.getLogger(__name__)

_LIVE = (NodeState.ALIVE, NodeState.SUSPECT)
_QUIET = (DropReason.STREAM_TIMEOUT, DropReason.STREAM_EOF)


def _ignore_change(change: MembershipChange) -> None:
    return None


class GossipMembership:
    """Runs one gossip member and reports membership changes to the speaker."""

    def __init__(
        self,
        config: GossipConfig,
        join: Sequence[Address] = (),
        *,
        keyring: Keyring | None = None,
        meta: bytes = b"",
        alone_after: float = 3.0,
        rejoin_interval: float = 0.25,
    ) -> None:
        self.config = config
        self._join = tuple(join)
        """Join targets as given: (IP or host name, port)."""
        self._keyring = keyring
        self._meta = meta
        self._counters: MembershipCounters | None = None
        self._alone_after = alone_after
        self._rejoin_interval = rejoin_interval
        self._on_change: OnChange = _ignore_change
        self.runtime: GossipRuntime | None = None
        self._ready = not self._join
        self._waiting_since: float | None = None
        self._unresolved: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    # -- the Membership protocol --------------------------------------------------------------

    def live(self) -> frozenset[str] | None:
        if self.runtime is None:
            return frozenset({self.config.name})
        return frozenset(m.name for m in self.runtime.members() if m.state in _LIVE)

    def ready(self) -> bool:
        return self._ready

    def rows(self) -> list[MemberRow]:
        if self.runtime is None:
            return []
        return [MemberRow(m.name, m.addr, m.state.name.lower()) for m in self.runtime.members()]

    def health_score(self) -> float:
        return float(self.runtime.health_score) if self.runtime is not None else 0.0

    def pin(self, names: Iterable[str]) -> None:
        """Probe these members every interval (the owners whose IPs we would take over)."""
        if self.runtime is not None:
            self.runtime.pin(names)

    def member_metas(self) -> dict[str, bytes]:
        """The node meta of every live member but us (what key rotation reads)."""
        if self.runtime is None:
            return {}
        me = self.config.name
        return {m.name: m.meta for m in self.runtime.members() if m.state in _LIVE and m.name != me}

    def set_keyring(self, keyring: Keyring) -> None:
        """Send with `keyring.primary` from now on, decrypt with any of its keys."""
        self._keyring = keyring
        if self.runtime is not None:
            self.runtime.set_keyring(keyring)

    def set_meta(self, meta: bytes) -> None:
        """Advertise `meta` (gossiped to every member with our next alive notice)."""
        self._meta = meta
        if self.runtime is not None:
            self.runtime.set_meta(meta)

    def set_peers(self, peers: Sequence[Address]) -> None:
        """Replace the join list (Kubernetes mode: the other Nodes' addresses). Until one of
        them answers (or `alone_after` passes) the speaker announces nothing."""
        self._join = tuple(peers)
        if self._join and not self._has_peer():
            self._ready = False
            self._waiting_since = None

    async def start(self, on_change: OnChange, counters: MembershipCounters) -> None:
        self._on_change = on_change
        self._counters = counters
        self.runtime = await GossipRuntime.start(
            self.config, keyring=self._keyring, meta=self._meta
        )
        self._tasks.append(asyncio.create_task(self._events()))
        if self._join:
            await self._join_missing()
        self._tasks.append(asyncio.create_task(self._keep_joining()))

    async def leave(self, timeout: float) -> None:
        if self.runtime is not None:
            await self.runtime.leave(timeout)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.runtime is not None:
            await self.runtime.close()
            self.runtime = None

    # -- joining ------------------------------------------------------------------------------

    def _has_peer(self) -> bool:
        return len(self.live() or ()) > 1

    async def _resolve(self, targets: Sequence[Address]) -> list[Address]:
        """Join targets as IP addresses; a name that does not resolve is logged once (until
        it resolves again) and left out of this attempt."""
        loop = asyncio.get_running_loop()
        out: list[Address] = []
        for host, port in targets:
            try:
                ipaddress.ip_address(host.split("%", 1)[0])
                out.append((host, port))
                continue
            except ValueError:
                pass
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
            except OSError as exc:
                if host not in self._unresolved:
                    self._unresolved.add(host)
                    log.warning("join target %s does not resolve: %s", host, exc)
                continue
            self._unresolved.discard(host)
            out.append((str(infos[0][4][0]), port))
        return out

    def _missing(self, targets: Sequence[Address]) -> list[Address]:
        """Targets with no live member behind them (never joined, or declared dead)."""
        assert self.runtime is not None
        live = {m.address for m in self.runtime.members() if m.state in _LIVE}
        return [a for a in targets if a not in live]

    async def _join_missing(self) -> None:
        assert self.runtime is not None
        missing = self._missing(await self._resolve(self._join))
        if not missing:
            return
        try:
            result: JoinFinished = await self.runtime.join(
                missing, timeout=self.config.tcp_timeout + 1.0
            )
        except TimeoutError:
            return
        if result.succeeded:
            log.info("joined through %d of %d peers", result.succeeded, len(missing))
            self._set_ready()

    async def _keep_joining(self) -> None:
        """MetalLB rejoins its peers every minute; we do it every `rejoin_interval`, and
        only towards peers we do not see alive, so a healed partition merges at once (each
        side refutes the other's dead verdict during the push/pull)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._rejoin_interval)
            if not self._join:
                continue
            if not self._ready:
                if self._waiting_since is None:
                    self._waiting_since = loop.time()
                if loop.time() - self._waiting_since >= self._alone_after:
                    log.warning(
                        "no peer answered for %.1f s: announcing as the only member",
                        self._alone_after,
                    )
                    self._set_ready()
            await self._join_missing()

    def _set_ready(self) -> None:
        if not self._ready:
            self._ready = True
            self._on_change(MembershipChange(ChangeKind.READY))

    # -- events -------------------------------------------------------------------------------

    async def _events(self) -> None:
        assert self.runtime is not None
        queue = self.runtime.events
        while True:
            self._handle(await queue.get())

    def _handle(self, event: Event) -> None:
        counters = self._counters
        match event:
            case MemberFailed(member=m):
                log.warning("member %s failed", m.name)
                self._on_change(MembershipChange(ChangeKind.FAILED, m.name))
            case MemberLeft(member=m):
                log.info("member %s left", m.name)
                self._on_change(MembershipChange(ChangeKind.LEFT, m.name))
            case MemberJoined(member=m):
                log.info("member %s joined", m.name)
                if m.name != self.config.name and not self._ready:
                    # A peer's push/pull (ours or theirs) merged its whole member table.
                    self._ready = True
                self._on_change(MembershipChange(ChangeKind.JOINED, m.name))
            case MemberUpdated(member=m) | MemberRecovered(member=m):
                self._on_change(MembershipChange(ChangeKind.UPDATED, m.name))
            case MemberSuspected(member=m, by=by):
                log.info("member %s suspected by %s", m.name, by)
                if counters is not None:
                    counters.suspicion_raised()
            case Refuted():
                if counters is not None:
                    counters.suspicion_refuted()
            case ProbeAcked(rtt=rtt):
                if counters is not None:
                    counters.probe_rtt(rtt)
            case ProtocolViolation(reason=reason, detail=detail, src=src):
                # A stalled stream is usually our own dial to a peer that is down.
                level = logging.DEBUG if reason in _QUIET else logging.WARNING
                log.log(level, "bad gossip input from %s: %s (%s)", src, reason.name, detail)
            case _:
                pass
