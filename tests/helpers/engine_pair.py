"""EnginePair: engines wired together in memory at a time the test chooses (after h11's
ConnectionPair), shared by the engine tests."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, TypeVar

from gossip.actions import Address, CloseStream, OpenStream, ReplyStream
from gossip.config import GossipConfig, lan
from gossip.engine import Engine
from gossip.events import Event
from gossip.keyring import Keyring
from gossip.messages import NodeState

E = TypeVar("E")


class Hooks:
    def __init__(self, state: bytes) -> None:
        self.state = state
        self.got: list[tuple[bytes, bool]] = []

    def local_state(self, join: bool) -> bytes:
        return self.state

    def merge_remote_state(self, data: bytes, join: bool) -> None:
        self.got.append((data, join))


class EnginePair:
    """Two (or more) engines wired together in memory, after h11's ConnectionPair.

    `pump()` delivers everything outstanding until quiet; `advance()` moves time and ticks
    whoever is due. `cut`/`tcp_cut` decide which packets/dials are lost; `down` are crashed.
    """

    def __init__(
        self,
        n: int,
        make: Callable[..., GossipConfig] = lan,
        keyrings: list[Keyring | None] | None = None,
        hooks: list[Hooks | None] | None = None,
        **overrides: Any,
    ) -> None:
        self.now = 0.0
        self.engines: list[Engine] = []
        self.addrs: list[Address] = []
        self.events: list[list[Event]] = []
        self.cut: Callable[[int, int], bool] = lambda a, b: False
        self.tcp_cut: Callable[[int, int], bool] = lambda a, b: False
        self.down: set[int] = set()
        self.paused: set[int] = set()
        """Stalled engines: not ticked; datagrams to them wait as in a socket buffer."""
        self.queued: dict[int, list[tuple[bytes, Address]]] = {}
        self.sent: list[tuple[int, int, bytes]] = []
        self._conns: dict[tuple[int, int], tuple[int, int]] = {}
        for i in range(n):
            addr = (f"192.0.2.{i + 1}", 7946)
            cfg = make(f"n{i}", bind_addr=addr[0], enable_compression=False, **overrides)
            eng = Engine(
                cfg,
                random.Random(i),
                now=0.0,
                keyring=keyrings[i] if keyrings else None,
                hooks=hooks[i] if hooks else None,
            )
            self.engines.append(eng)
            self.addrs.append(addr)
            self.events.append([])
        self.pump()

    def index(self, addr: Address) -> int | None:
        return self.addrs.index(addr) if addr in self.addrs else None

    def pump(self) -> None:
        """Deliver everything outstanding, repeatedly, until quiet."""
        busy = True
        while busy:
            busy = False
            for i, eng in enumerate(self.engines):
                for p in eng.packets_to_send():
                    busy = True
                    j = self.index(p.addr)
                    self.sent.append((i, -1 if j is None else j, p.data))
                    if j is None or i in self.down or j in self.down or self.cut(i, j):
                        continue
                    if j in self.paused:
                        self.queued.setdefault(j, []).append((p.data, self.addrs[i]))
                        continue
                    self.engines[j].handle_packet(p.data, self.addrs[i], self.now)
                for act in eng.streams_to_open():
                    busy = True
                    self._stream(i, act)
                while (ev := eng.next_event()) is not None:
                    self.events[i].append(ev)

    def _stream(self, i: int, act: OpenStream | ReplyStream | CloseStream) -> None:
        eng = self.engines[i]
        if isinstance(act, OpenStream):
            j = self.index(act.addr)
            if j is None or j in self.down or i in self.down or self.tcp_cut(i, j):
                eng.stream_failed(act.conn_id, self.now)
                return
            peer_cid = self.engines[j].stream_accepted(self.addrs[i], self.now)
            self._conns[(i, act.conn_id)] = (j, peer_cid)
            self._conns[(j, peer_cid)] = (i, act.conn_id)
            self.engines[j].handle_stream(peer_cid, act.data, self.now)
        elif isinstance(act, ReplyStream):
            peer = self._conns.get((i, act.conn_id))
            if peer is not None and peer[0] not in self.down:
                self.engines[peer[0]].handle_stream(peer[1], act.data, self.now)
        else:
            peer = self._conns.pop((i, act.conn_id), None)
            if peer is not None:
                self._conns.pop(peer, None)

    def resume(self, i: int) -> None:
        """End a stall: the engine reads what queued up while it was paused."""
        self.paused.discard(i)
        for data, src in self.queued.pop(i, []):
            self.engines[i].handle_packet(data, src, self.now)
        self.pump()

    def advance(self, seconds: float, step: float = 0.01) -> None:
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now = round(self.now + step, 9)
            for i, eng in enumerate(self.engines):
                if i in self.down or i in self.paused:
                    continue
                deadline = eng.next_deadline()
                if deadline is not None and deadline <= self.now:
                    eng.tick(self.now)
            self.pump()

    def join_all(self) -> None:
        for i in range(1, len(self.engines)):
            self.engines[i].join([self.addrs[0]], self.now)
            self.pump()
        self.advance(2.0)

    def of(self, i: int, kind: type[E]) -> list[E]:
        return [e for e in self.events[i] if isinstance(e, kind)]

    def state(self, i: int, name: str) -> NodeState | None:
        m = self.engines[i].member(name)
        return None if m is None else m.state
