"""asyncio driver for the sans-IO `Engine`: sockets in, actions out, one timer.

The engine is fed with `loop.time()` taken when each datagram or stream chunk arrives. After
every input the runtime drains the engine (packets, stream actions, events) and re-arms a
single `call_at(next_deadline())`. Events go to `events`, an asyncio queue, in order.

Randomness defaults to `random.SystemRandom()`: the engine takes its AES-GCM nonces from
its `random.Random`, so a seeded generator must never be used with encryption in production.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
from collections.abc import Iterable, Sequence

from gossip.actions import Address
from gossip.aio.tcp import StreamCallbacks, TcpStreams
from gossip.aio.udp import UdpEndpoint, open_udp
from gossip.config import GossipConfig
from gossip.engine import Engine
from gossip.errors import LocalError
from gossip.events import Event, JoinFinished, Member
from gossip.hooks import StateHooks
from gossip.keyring import Keyring

__all__ = ["GossipRuntime"]

log = logging.getLogger(__name__)

_EVENT_QUEUE_MAX = 100_000


class GossipRuntime:
    """One running member: an Engine plus its UDP endpoint, TCP streams and timer."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.events: asyncio.Queue[Event] = asyncio.Queue(_EVENT_QUEUE_MAX)
        self.dropped_events = 0
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._udp: UdpEndpoint | None = None
        self._tcp = TcpStreams(
            StreamCallbacks(
                accepted=self._stream_accepted,
                data=self._stream_data,
                failed=self._stream_failed,
                flush=self._flush,
            )
        )
        self._join_waiters: dict[int, asyncio.Future[JoinFinished]] = {}
        self._leave_waiter: asyncio.Future[None] | None = None
        self._closed = False

    @classmethod
    async def start(
        cls,
        config: GossipConfig,
        *,
        meta: bytes = b"",
        keyring: Keyring | None = None,
        hooks: StateHooks | None = None,
        rng: random.Random | None = None,
    ) -> GossipRuntime:
        """Bind UDP and TCP on `config.bind_addr:bind_port` and start the engine."""
        if ipaddress.ip_address(config.advertise_ip).is_unspecified:
            raise LocalError("bind address is a wildcard: give an advertise address")
        loop = asyncio.get_running_loop()
        engine = Engine(
            config,
            rng if rng is not None else random.SystemRandom(),
            now=loop.time(),
            meta=meta,
            hooks=hooks,
            keyring=keyring,
        )
        runtime = cls(engine)
        await runtime._tcp.listen(config.bind_addr, config.bind_port)
        try:
            runtime._udp = await open_udp(config.bind_addr, config.bind_port, runtime._packet)
        except OSError:
            await runtime._tcp.close()
            raise
        runtime._flush()
        return runtime

    # ------------------------------------------------------------------ API

    @property
    def name(self) -> str:
        return self.engine.name

    def members(self) -> list[Member]:
        return self.engine.members()

    def alive_members(self) -> list[Member]:
        return self.engine.alive_members()

    def live_names(self) -> frozenset[str]:
        """Names of members alive or suspect (cached by the engine until the table changes)."""
        return self.engine.live_names()

    @property
    def health_score(self) -> int:
        """Lifeguard's local health (0 = healthy; higher: this node is the slow one)."""
        return self.engine.health_score

    def pin(self, names: Iterable[str]) -> None:
        """Probe these members every interval besides the round robin (the owners whose
        IPs this node would take over)."""
        self.engine.set_pinned_targets(names)

    async def join(self, addrs: Sequence[Address], timeout: float | None = None) -> JoinFinished:
        """Push/pull join with each address; returns when every attempt of this call has
        ended (other joins in flight resolve their own waits)."""
        waiter: asyncio.Future[JoinFinished] = self._loop.create_future()
        batch = self.engine.join(list(addrs), self._loop.time())
        self._join_waiters[batch] = waiter
        self._flush()
        try:
            return await asyncio.wait_for(waiter, timeout)
        finally:
            self._join_waiters.pop(batch, None)

    async def leave(self, timeout: float) -> bool:
        """Announce a graceful leave; True once it has been gossiped its full count."""
        self.engine.leave(self._loop.time())
        self._flush()
        if self.engine.leave_done():
            return True
        self._leave_waiter = self._loop.create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._leave_waiter), timeout)
        except TimeoutError:
            return False
        return True

    def set_meta(self, meta: bytes) -> None:
        self.engine.set_meta(meta, self._loop.time())
        self._flush()

    def set_keyring(self, keyring: Keyring | None) -> None:
        """Encrypt with `keyring.primary` from now on and decrypt with any of its keys."""
        self.engine.set_keyring(keyring)

    def send_user(self, addr: Address, data: bytes, reliable: bool = False) -> None:
        self.engine.send_user(addr, data, self._loop.time(), reliable=reliable)
        self._flush()

    def broadcast_user(self, data: bytes) -> None:
        self.engine.broadcast_user(data, self._loop.time())
        self._flush()

    async def close(self) -> None:
        """Stop without a goodbye (call `leave` first for a graceful exit)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._udp is not None:
            self._udp.close()
        await self._tcp.close()

    # ------------------------------------------------------------------ inputs

    def _packet(self, data: bytes, src: Address, now: float) -> None:
        if self._closed:
            return
        self.engine.handle_packet(data, src, now)
        self._flush()

    def _stream_accepted(self, peer: Address, now: float) -> int:
        return self.engine.stream_accepted(peer, now)  # flushed by the TCP side

    def _stream_data(self, conn_id: int, data: bytes, now: float) -> None:
        if self._closed:
            return
        self.engine.handle_stream(conn_id, data, now)
        self._flush()

    def _stream_failed(self, conn_id: int, now: float) -> None:
        if self._closed:
            return
        self.engine.stream_failed(conn_id, now)
        self._flush()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self._closed:
            return
        if self._udp is not None:
            # Read what waits in the socket first: after a stall, the acks and refutations
            # queued there must reach the engine before its overdue timers judge anyone.
            self._udp.drain()
        self.engine.tick(self._loop.time())
        self._flush()

    # ------------------------------------------------------------------ outputs

    def _flush(self) -> None:
        if self._closed:
            return
        engine = self.engine
        if self._udp is not None:
            for packet in engine.packets_to_send():
                self._udp.send(packet.data, packet.addr)
        for action in engine.streams_to_open():
            self._tcp.execute(action)
        while (event := engine.next_event()) is not None:
            if isinstance(event, JoinFinished):
                waiter = self._join_waiters.pop(event.batch, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(event)
            try:
                self.events.put_nowait(event)
            except asyncio.QueueFull:
                self.dropped_events += 1
                if self.dropped_events % 1000 == 1:  # the first, then one line per thousand
                    log.warning(
                        "event queue full; %d events dropped so far (latest %s)",
                        self.dropped_events,
                        type(event).__name__,
                    )
        waiter_leave = self._leave_waiter
        if waiter_leave is not None and not waiter_leave.done() and engine.leave_done():
            waiter_leave.set_result(None)
        self._arm()

    def _arm(self) -> None:
        deadline = self.engine.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = None if deadline is None else self._loop.call_at(deadline, self._on_timer)
