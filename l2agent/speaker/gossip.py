"""Membership from the gossip library: the speaker's view of who is alive.

Readiness guards against the MetalLB #1710 failure: a restarting speaker that has not yet
joined sees only itself and would elect itself for every IP. So the speaker answers nothing
until a join has succeeded, or until `alone_after` seconds of failed joins show that it
really is the first (or only) member; it keeps retrying the join in the background either
way, backing off per peer so a start-up storm or an overload is not fed by rejoins.

"Alone" is a conclusion from silence, so it is never drawn against evidence: if peers
answer with traffic no installed key opens (a half-finished key rotation, a typo in the
Secret), they are there and speak another key. Then the speaker stays unready, announces
nothing, and says so loudly (an ERROR log, the `l2agent_gossip_key_mismatch` gauge and,
in Kubernetes mode, a Warning Event on its Node).

Bad input is reported as the engine reports it: a few `ProtocolViolation` lines, then a
summary line per interval (`ViolationsSuppressed`); the counters by reason are read by the
metrics at scrape time (`input_report`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
from collections.abc import Callable, Iterable, Sequence

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
    UndecryptableTraffic,
    ViolationsSuppressed,
)
from gossip.keyring import Keyring
from gossip.messages import NodeState
from l2agent.model.reports import MemberRow
from l2agent.speaker.membership import (
    ChangeKind,
    GossipReport,
    MembershipChange,
    MembershipCounters,
    OnChange,
)

__all__ = ["GossipMembership", "RejoinBackoff"]

log = logging.getLogger(__name__)

_LIVE = (NodeState.ALIVE, NodeState.SUSPECT)
_QUIET = (DropReason.STREAM_TIMEOUT, DropReason.STREAM_EOF)
_EVIDENCE_WINDOW = 60.0
"""Seconds undecryptable traffic from a peer counts as evidence that it is there."""
_EVENT_BATCH = 256
"""Gossip events handled before the task yields to the loop (a push/pull that brings
thousands of members must not hold it)."""
_MEMBER_LOG_BURST = 20
"""Member joined/left/failed lines per `_MEMBER_LOG_WINDOW` before a summary takes over."""
_MEMBER_LOG_WINDOW = 10.0


def _ignore_change(change: MembershipChange) -> None:
    return None


class RejoinBackoff:
    """When to try each missing peer again: `first` seconds after a failure, doubling up
    to `limit`, stretched by our own health score (a slow node retries less), with jitter
    so a cluster that failed together does not retry together. Pure: times are arguments."""

    def __init__(self, first: float, limit: float, rng: random.Random | None = None) -> None:
        self.first = first
        self.limit = limit
        self._rng = rng or random.Random()
        self._next: dict[Address, tuple[float, float]] = {}

    def due(self, targets: Iterable[Address], now: float) -> list[Address]:
        """The targets whose wait has passed (never tried counts as due)."""
        return [t for t in targets if self._next.get(t, (0.0, 0.0))[0] <= now]

    def failed(self, target: Address, now: float, health: float = 0.0) -> float:
        """Record a failed attempt; returns the wait before the next one."""
        _, delay = self._next.get(target, (0.0, 0.0))
        delay = min(self.limit, self.first if delay == 0 else delay * 2)
        wait = delay * (1.0 + health) * self._rng.uniform(0.75, 1.0)
        self._next[target] = (now + wait, delay)
        return wait

    def reset(self, keep: Iterable[Address] = ()) -> None:
        """Forget every target's back-off except `keep` (they joined, or the list changed)."""
        kept = set(keep)
        self._next = {t: v for t, v in self._next.items() if t in kept}


class MemberLog:
    """Member joined/left/failed lines, at most `burst` per `window` seconds; the rest are
    counted and said in one line when the window ends (pure: times are arguments)."""

    def __init__(self, burst: int = _MEMBER_LOG_BURST, window: float = _MEMBER_LOG_WINDOW):
        self._burst = burst
        self._window = window
        self._start = -window
        self._used = 0
        self._held: dict[str, int] = {}

    def line(self, level: int, what: str, name: str, now: float) -> None:
        self.tick(now)
        if self._used < self._burst:
            self._used += 1
            log.log(level, "member %s %s", name, what)
        else:
            self._held[what] = self._held.get(what, 0) + 1

    def tick(self, now: float) -> None:
        """End the window once it has passed: say what it held back, start afresh."""
        if now - self._start >= self._window:
            self.flush(now)
            self._start, self._used = now, 0

    def flush(self, now: float) -> None:
        if self._held:
            log.warning(
                "%d more member changes in %.0f s, not logged one by one: %s",
                sum(self._held.values()),
                now - self._start,
                ", ".join(f"{n} {what}" for what, n in sorted(self._held.items())),
            )
            self._held = {}


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
        rejoin_limit: float = 8.0,
    ) -> None:
        self.config = config
        self._join = tuple(join)
        """Join targets as given: (IP or host name, port)."""
        self._keyring = keyring
        self._meta = meta
        self._counters: MembershipCounters | None = None
        self._alone_after = alone_after
        self._rejoin_interval = rejoin_interval
        self._backoff = RejoinBackoff(rejoin_interval, rejoin_limit)
        self._on_change: OnChange = _ignore_change
        self.runtime: GossipRuntime | None = None
        self._ready = not self._join
        self._alone = False
        """Ready only because nobody answered for `alone_after` (not because we joined)."""
        self._waiting_since: float | None = None
        self._unresolved: set[str] = set()
        self._peer_ips: frozenset[str] = frozenset()
        self._mismatch_logged = -1e9
        self._tasks: list[asyncio.Task[None]] = []
        self._member_log = MemberLog()
        self.on_key_mismatch: list[Callable[[str], None]] = []
        """Called with a peer's IP when its traffic cannot be decrypted (Kubernetes mode
        posts a Warning Event on this node)."""

    # -- the Membership protocol --------------------------------------------------------------

    def live(self) -> frozenset[str] | None:
        if self.runtime is None:
            return frozenset({self.config.name})
        return self.runtime.live_names()

    def ready(self) -> bool:
        return self._ready and not self.key_mismatch()

    def rows(self) -> list[MemberRow]:
        if self.runtime is None:
            return []
        return [MemberRow(m.name, m.addr, m.state.name.lower()) for m in self.runtime.members()]

    def health_score(self) -> float:
        return float(self.runtime.health_score) if self.runtime is not None else 0.0

    def input_report(self) -> GossipReport | None:
        if self.runtime is None:
            return None
        counters = self.runtime.engine.counters
        return GossipReport(
            dropped=dict(counters.drops),
            malformed=dict(counters.malformed),
            stalls=counters.stalls,
            undecryptable=frozenset(self._undecryptable_recently()),
            key_mismatch=self.key_mismatch(),
        )

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
        self._backoff.reset()
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

    # -- key mismatch: peers we hear but cannot decrypt ---------------------------------------

    def _undecryptable_recently(self) -> dict[str, int]:
        if self.runtime is None:
            return {}
        since = asyncio.get_running_loop().time() - _EVIDENCE_WINDOW
        sources = self.runtime.engine.undecryptable_sources(since)
        return {ip: ev.count for ip, ev in sources.items()}

    def key_mismatch(self) -> bool:
        """No peer joined, yet a peer's address sent what no installed key opens: the
        cluster is there and speaks another key, so "alone" would be a lie."""
        if not self._join or self._has_peer() or self.runtime is None:
            return False
        peers = self._peer_ips or frozenset(host for host, _ in self._join)
        return any(ip in peers for ip in self._undecryptable_recently())

    def _undecryptable(self, event: UndecryptableTraffic) -> None:
        peer = event.src_ip in (self._peer_ips or {h for h, _ in self._join})
        log.error(
            "gossip from %s%s cannot be decrypted: it runs with another key (a half-finished "
            "key rotation or a wrong Secret?)%s",
            event.src_ip,
            " (a peer)" if peer else "",
            "; announcing nothing until a peer can be understood" if peer else "",
        )
        for hook in self.on_key_mismatch:
            try:
                hook(event.src_ip)
            except Exception:  # a reporting hook must not stop the gossip
                log.exception("key mismatch hook failed")
        if peer and self._ready and not self._has_peer():
            self._on_change(MembershipChange(ChangeKind.UNREADY))

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
        self._peer_ips = frozenset(host for host, _ in out)
        return out

    def _missing(self, targets: Sequence[Address]) -> list[Address]:
        """Targets with no live member behind them (never joined, or declared dead)."""
        assert self.runtime is not None
        live = {m.address for m in self.runtime.members() if m.state in _LIVE}
        return [a for a in targets if a not in live]

    async def _join_missing(self) -> None:
        assert self.runtime is not None
        loop = asyncio.get_running_loop()
        resolved = await self._resolve(self._join)
        missing = self._missing(resolved)
        self._backoff.reset(keep=missing)  # a live peer starts afresh if it is lost again
        due = self._backoff.due(missing, loop.time())
        if not due:
            return
        try:
            result: JoinFinished = await self.runtime.join(
                due, timeout=self.config.tcp_timeout + 1.0
            )
        except TimeoutError:
            result = JoinFinished(0, 0, tuple(due), loop.time())
        health = self.health_score()
        for target in result.failed:
            self._backoff.failed(target, loop.time(), health)
        if result.succeeded:
            log.info("joined through %d of %d peers", result.succeeded, len(due))
            self._set_ready()

    async def _keep_joining(self) -> None:
        """MetalLB rejoins its peers every minute; we retry sooner, and only towards peers
        we do not see alive, so a healed partition merges quickly (each side refutes the
        other's dead verdict during the push/pull). Each peer's retries back off (see
        `RejoinBackoff`), so an overload is not fed by a join storm."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._rejoin_interval)
            self._member_log.tick(loop.time())
            if not self._join:
                continue
            if not self._ready:
                if self._waiting_since is None:
                    self._waiting_since = loop.time()
                if loop.time() - self._waiting_since >= self._alone_after:
                    self._conclude_alone(loop.time())
            await self._join_missing()

    def _conclude_alone(self, now: float) -> None:
        if self.key_mismatch():
            if now - self._mismatch_logged >= _EVIDENCE_WINDOW:
                self._mismatch_logged = now
                log.error(
                    "no peer joined, but %s answer with traffic no installed key opens: "
                    "not announcing as the only member",
                    ", ".join(sorted(self._undecryptable_recently())),
                )
            return
        log.warning("no peer answered for %.1f s: announcing as the only member", self._alone_after)
        self._set_ready(alone=True)

    def _set_ready(self, alone: bool = False) -> None:
        self._alone = alone
        if not self._ready:
            self._ready = True
            self._on_change(MembershipChange(ChangeKind.READY))

    # -- events -------------------------------------------------------------------------------

    async def _events(self) -> None:
        assert self.runtime is not None
        queue = self.runtime.events
        loop = asyncio.get_running_loop()
        while True:
            self._handle(await queue.get())
            for _ in range(_EVENT_BATCH):
                if queue.empty():
                    break
                self._handle(queue.get_nowait())
            self._member_log.tick(loop.time())
            await asyncio.sleep(0)  # others' turn between batches

    def _handle(self, event: Event) -> None:
        now = asyncio.get_running_loop().time()
        match event:
            case MemberFailed(member=m):
                self._member_log.line(logging.WARNING, "failed", m.name, now)
                self._on_change(MembershipChange(ChangeKind.FAILED, m.name))
            case MemberLeft(member=m):
                self._member_log.line(logging.INFO, "left", m.name, now)
                self._on_change(MembershipChange(ChangeKind.LEFT, m.name))
            case MemberJoined(member=m):
                self._member_log.line(logging.INFO, "joined", m.name, now)
                if m.name != self.config.name:
                    # A peer's push/pull (ours or theirs) merged its whole member table.
                    self._alone = False
                    self._ready = True
                self._on_change(MembershipChange(ChangeKind.JOINED, m.name))
            case MemberUpdated(member=m) | MemberRecovered(member=m):
                self._on_change(MembershipChange(ChangeKind.UPDATED, m.name))
            case _:
                self._report(event)

    def _report(self, event: Event) -> None:
        """Counters and log lines for the events that change no membership."""
        counters = self._counters
        match event:
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
                # the engine lets a few through, then summarises (ViolationsSuppressed)
                level = logging.DEBUG if reason in _QUIET else logging.WARNING
                log.log(level, "bad gossip input from %s: %s (%s)", src, reason.name, detail)
            case ViolationsSuppressed(counts=counts, sources=sources, since=since, at=at):
                log.warning(
                    "%d more bad gossip inputs in %.0f s: %s; from %s",
                    sum(n for _, n in counts),
                    at - since,
                    ", ".join(f"{r.name} x{n}" for r, n in counts),
                    ", ".join(f"{ip} x{n}" for ip, n in sources),
                )
            case UndecryptableTraffic():
                self._undecryptable(event)
            case _:
                pass
