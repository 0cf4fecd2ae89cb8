"""SimCluster: N engines on a simulated network, in virtual time, from one seed.

Each engine gets its own `random.Random` derived from the seed, the network gets another;
only engines whose deadline has come are woken. Nothing reads the wall clock, so the same
seed replays the same run exactly.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from gossip._wire import CodecCache
from gossip.actions import Address, CloseStream, OpenStream, ReplyStream
from gossip.config import GossipConfig
from gossip.engine import Engine
from gossip.keyring import Keyring
from gossip.messages import DEFAULT_VSN, Alive
from gossip.sim.clock import EventHeap
from gossip.sim.network import LinkSpec, SimNetwork
from gossip.sim.observe import Observer

__all__ = ["SimCluster", "SimNode", "sim_address"]

log = logging.getLogger(__name__)

ConfigFactory = Callable[..., GossipConfig]


def sim_address(i: int) -> Address:
    """Node i's address: documentation ranges, 250 hosts per port."""
    return (f"192.0.2.{1 + i % 250}", 7946 + i // 250)


@dataclass
class SimNode:
    index: int
    name: str
    addr: Address
    engine: Engine
    wake_at: float = math.inf
    held: list[tuple[Callable[..., None], tuple[Any, ...]]] = field(default_factory=list)


class SimCluster:
    """`n` members named n0000.. at `sim_address(i)`, not yet joined."""

    def __init__(
        self,
        n: int,
        config: ConfigFactory | GossipConfig,
        seed: int,
        *,
        link: LinkSpec | None = None,
        keyring: Keyring | None = None,
        record_trace: bool = True,
        start: float = 0.0,
    ) -> None:
        self.seed = seed
        self._master = random.Random(seed)
        self.heap = EventHeap(start)
        self.net = SimNetwork(random.Random(self._master.getrandbits(64)), link)
        self.observer = Observer(record_trace=record_trace)
        self._config = config
        self._keyring = keyring
        self.nodes: list[SimNode] = []
        self._by_addr: dict[Address, int] = {}
        self._conns: dict[tuple[int, int], tuple[int, int] | None] = {}
        self._open_out: set[tuple[int, int]] = set()
        self.dead: set[str] = set()
        self.codec_cache = CodecCache()
        for _ in range(n):
            self.add_node()

    # ------------------------------------------------------------------ building

    @property
    def now(self) -> float:
        return self.heap.now

    def _make_config(self, name: str, addr: Address) -> GossipConfig:
        if isinstance(self._config, GossipConfig):
            return replace(self._config, name=name, bind_addr=addr[0], bind_port=addr[1])
        return self._config(name, bind_addr=addr[0], bind_port=addr[1])

    def add_node(self) -> SimNode:
        i = len(self.nodes)
        name = f"n{i:04d}"
        addr = sim_address(i)
        rng = random.Random(self._master.getrandbits(64))
        engine = Engine(
            self._make_config(name, addr),
            rng,
            now=self.now,
            keyring=self._keyring,
            codec_cache=self.codec_cache,
        )
        node = SimNode(i, name, addr, engine)
        self.nodes.append(node)
        self._by_addr[addr] = i
        self._drain(node)
        return node

    def join(self, i: int, targets: list[int], at: float | None = None) -> None:
        """Node i joins the given nodes (push/pull) at `at` (default now)."""
        addrs = [self.nodes[t].addr for t in targets]
        self.heap.at(self.now if at is None else at, self._do_join, i, addrs)

    def join_all(self, seed_node: int = 0, spacing: float = 0.001) -> None:
        """Every other node joins `seed_node`, one every `spacing` seconds."""
        for node in self.nodes:
            if node.index != seed_node:
                self.join(node.index, [seed_node], self.now + spacing * node.index)

    def prefill(self) -> None:
        """Start from converged tables, as in a long-running cluster, skipping the join storm.

        Each engine's table learns every other member at incarnation 1 directly, without
        events or re-broadcasts: for steady-state measurements (load, detection time) of
        large clusters, where simulating a thousand simultaneous joins would dominate.
        """
        alives = [
            Alive(1, n.name, ipaddress.ip_address(n.addr[0]).packed, n.addr[1], b"", DEFAULT_VSN)
            for n in self.nodes
        ]
        for node in self.nodes:
            for a in alives:
                if a.node != node.name:
                    node.engine.table.apply_alive(a, self.now)

    def _do_join(self, i: int, addrs: list[Address]) -> None:
        node = self.nodes[i]
        node.engine.join(addrs, self.now)
        self._drain(node)

    # ------------------------------------------------------------------ faults

    def crash(self, i: int) -> None:
        """Node i stops at once (no leave); others' dials to it are refused."""
        self.net.crashed.add(i)
        self.dead.add(self.nodes[i].name)
        self.nodes[i].wake_at = math.inf

    def pause(self, i: int, duration: float) -> None:
        """Node i freezes for `duration`: no ticks, input held until it resumes."""
        self.net.paused.add(i)
        self.heap.at(self.now + duration, self._resume, i)

    def _resume(self, i: int) -> None:
        self.net.paused.discard(i)
        node = self.nodes[i]
        held, node.held = node.held, []
        for fn, args in held:
            fn(*args)
        node.wake_at = math.inf
        self._wake(i, math.inf)

    def leave(self, i: int) -> None:
        node = self.nodes[i]
        node.engine.leave(self.now)
        self._drain(node)

    def partition(self, groups: list[list[int]]) -> None:
        self.net.partition(groups)

    def heal(self) -> None:
        self.net.heal()

    def at(self, when: float, fn: Callable[..., None], *args: Any) -> None:
        """Run fn(*args) at virtual time `when` (for scripted faults)."""
        self.heap.at(when, fn, *args)

    # ------------------------------------------------------------------ running

    def run_for(self, duration: float) -> None:
        self.heap.run_until(self.now + duration)

    def run_until(
        self, predicate: Callable[[], bool], limit: float, check_every: float = 0.05
    ) -> float | None:
        """Run until predicate() holds (checked every `check_every`); its time or None."""
        end = self.now + limit
        while self.now < end:
            if predicate():
                return self.now
            self.heap.run_until(min(self.now + check_every, end))
        return self.now if predicate() else None

    def live_nodes(self) -> list[SimNode]:
        return [n for n in self.nodes if n.index not in self.net.crashed]

    # ------------------------------------------------------------------ plumbing

    def _reschedule(self, node: SimNode) -> None:
        nd = node.engine.next_deadline()
        if nd is not None and nd < node.wake_at:
            node.wake_at = nd
            self.heap.at(nd, self._wake, node.index, nd)

    def _wake(self, i: int, when: float) -> None:
        node = self.nodes[i]
        if i in self.net.crashed or (when != math.inf and node.wake_at != when):
            return
        if i in self.net.paused:
            node.held.append((self._noop, ()))
            return
        node.wake_at = math.inf
        node.engine.tick(self.now)
        self._drain(node)

    def _noop(self) -> None:
        return None

    def _drain(self, node: SimNode) -> None:
        eng = node.engine
        src = node.index
        now = self.now
        for p in eng.packets_to_send():
            dst = self._by_addr.get(p.addr)
            if dst is None:
                continue
            delay = self.net.packet_delay(src, dst)
            if delay is not None:
                self.heap.at(now + delay, self._deliver_packet, dst, node.addr, p.data)
        for act in eng.streams_to_open():
            if isinstance(act, OpenStream):
                self._open(node, act)
            elif isinstance(act, ReplyStream):
                peer = self._conns.get((src, act.conn_id))
                if peer is None:
                    continue
                delay = self.net.stream_delay(src, peer[0])
                if delay is not None:
                    self.heap.at(now + delay, self._stream_data, peer[0], peer[1], act.data)
            elif isinstance(act, CloseStream):
                self._open_out.discard((src, act.conn_id))
                peer = self._conns.pop((src, act.conn_id), None)
                if peer is not None:
                    self._conns.pop(peer, None)
        while (ev := eng.next_event()) is not None:
            self.observer.record(node.name, ev)
        self._reschedule(node)

    def _open(self, node: SimNode, act: OpenStream) -> None:
        src = node.index
        dst = self._by_addr.get(act.addr)
        delay = None if dst is None else self.net.stream_delay(src, dst)
        if dst is None or delay is None:
            # Refused at once by a crashed host on the LAN; a partition times out.
            refused = dst is None or dst in self.net.crashed
            when = self.now + 2 * self.net.default.latency if refused else act.deadline
            self.heap.at(when, self._stream_fail, src, act.conn_id)
            return
        self._open_out.add((src, act.conn_id))
        self.heap.at(self.now + delay, self._stream_arrive, src, act.conn_id, dst, act.data)

    def _stream_arrive(self, src: int, cid: int, dst: int, data: bytes) -> None:
        if not self.net.reachable(src, dst):
            if (src, cid) in self._open_out:
                self._stream_fail(src, cid)
            return
        node = self.nodes[dst]
        if dst in self.net.paused:
            node.held.append((self._stream_arrive, (src, cid, dst, data)))
            return
        peer_cid = node.engine.stream_accepted(self.nodes[src].addr, self.now)
        if (src, cid) in self._open_out:
            self._conns[(src, cid)] = (dst, peer_cid)
            self._conns[(dst, peer_cid)] = (src, cid)
        node.engine.handle_stream(peer_cid, data, self.now)
        self._drain(node)

    def _stream_data(self, dst: int, cid: int, data: bytes) -> None:
        if dst in self.net.crashed:
            return
        node = self.nodes[dst]
        if dst in self.net.paused:
            node.held.append((self._stream_data, (dst, cid, data)))
            return
        node.engine.handle_stream(cid, data, self.now)
        self._drain(node)

    def _stream_fail(self, src: int, cid: int) -> None:
        self._open_out.discard((src, cid))
        if src in self.net.crashed:
            return
        node = self.nodes[src]
        node.engine.stream_failed(cid, self.now)
        self._drain(node)

    def _deliver_packet(self, dst: int, src_addr: Address, data: bytes) -> None:
        if dst in self.net.crashed:
            return
        node = self.nodes[dst]
        if dst in self.net.paused:
            node.held.append((self._deliver_packet, (dst, src_addr, data)))
            return
        node.engine.handle_packet(data, src_addr, self.now)
        self._drain(node)
