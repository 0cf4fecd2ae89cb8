"""The sans-IO memberlist engine: SWIM probing, Lifeguard suspicion, gossip and push/pull.

The caller feeds it datagrams, stream bytes and the time; it answers with packets to send,
stream actions and events, and says when it next needs `tick`. It owns no socket, reads no
clock and draws randomness only from the `random.Random` it is given, so a seeded
simulator replays it exactly. Bad input never raises out of it: it is dropped, logged and
counted by reason (`Engine.counters`), with memory bounded by the config's limits.

Composition: `members` (table and merge rules), `suspicion`, `awareness`, `broadcast`
(retransmit-limited queues), `probe` (seq-keyed bookkeeping), `scaling` (the math) and
`_wire` (codec, framing and keyring glue).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from gossip import _wire
from gossip._engine_state import EngineCounters, JoinBatch, StreamKind, StreamState
from gossip.actions import Address, CloseStream, OpenStream, ReplyStream, SendPacket, StreamAction
from gossip.awareness import Awareness
from gossip.broadcast import BroadcastQueue
from gossip.codec import encode_message
from gossip.config import GossipConfig
from gossip.errors import LocalError, MalformedMessage
from gossip.events import (
    DropReason,
    Event,
    JoinFinished,
    Member,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberRecovered,
    MemberSuspected,
    MemberUpdated,
    ProbeAcked,
    ProtocolViolation,
    Refuted,
    UserMessage,
)
from gossip.hooks import StateHooks
from gossip.keyring import Keyring
from gossip.members import (
    Change,
    ChangeKind,
    MemberTable,
    NodeEntry,
    SuspicionParams,
    verify_protocol,
)
from gossip.messages import (
    META_MAX_SIZE,
    AckResp,
    Alive,
    Dead,
    ErrResp,
    IndirectPingReq,
    Message,
    NackResp,
    NodeState,
    Ping,
    PushPull,
    Suspect,
    UserMsg,
    addr_from_bytes,
)
from gossip.probe import Probe, ProbePhase, ProbeTracker, Relay
from gossip.scaling import k_random_members, push_pull_scale

if TYPE_CHECKING:
    import random

__all__ = ["Engine", "EngineCounters"]

log = logging.getLogger(__name__)

_COMPOUND_OVERHEAD = 2
"""Bytes charged per part of a compound (its u16 length), and the compound header itself."""
_MAX_PINNED = 16
_MAX_RELAYS = 1024
"""Pending indirect pings we relay at once; more are dropped (bounds memory and fan-out)."""


class Engine:
    """One memberlist member, sans-IO. See docs/internal-api.md (gossip engine)."""

    def __init__(
        self,
        config: GossipConfig,
        rng: random.Random,
        *,
        now: float,
        meta: bytes = b"",
        hooks: StateHooks | None = None,
        keyring: Keyring | None = None,
        codec_cache: _wire.CodecCache | None = None,
    ) -> None:
        if len(meta) > META_MAX_SIZE:
            raise LocalError(f"meta of {len(meta)} bytes exceeds {META_MAX_SIZE}")
        self.config = config
        self._rng = rng
        self._hooks = hooks
        self._wire = _wire.Wire(config, keyring, rng)
        self._decode = (
            codec_cache.decode if codec_cache is not None else _wire.decode_packet_message
        )
        self._encode_gossip = codec_cache.encode if codec_cache is not None else encode_message
        self._encode_state = (
            codec_cache.encode_state if codec_cache is not None else _wire.encode_state
        )
        ip, port = config.advertise
        self._addr = ipaddress.ip_address(ip).packed
        self._port = port
        self._name = config.name
        self.counters = EngineCounters()
        self.awareness = Awareness(config.awareness_max_multiplier)
        self.table = MemberTable(
            config.name,
            rng,
            SuspicionParams(
                config.suspicion_mult,
                config.suspicion_max_timeout_mult,
                config.probe_interval,
                config.suspicion_min_timeout,
            ),
            config.dead_node_reclaim_time,
        )
        self._queue = BroadcastQueue(config.retransmit_mult, self.table.__len__)
        self._user_queue = BroadcastQueue(config.retransmit_mult, self.table.__len__)
        self._tracker = ProbeTracker()
        self._packets: list[SendPacket] = []
        self._stream_actions: list[StreamAction] = []
        self._events: deque[Event] = deque()
        self._streams: dict[int, StreamState] = {}
        self._inbound = 0
        self._conn_seq = 0
        self._batches: dict[int, JoinBatch] = {}
        self._batch_seq = 0
        self._pinned: tuple[str, ...] = ()
        self._probe_owed = False
        self._allowed = tuple(ipaddress.ip_network(c, strict=False) for c in config.cidrs_allowed)
        self._now = now
        # Stagger the periodic tasks, as memberlist does, so members do not tick together.
        self._next_probe = now + rng.random() * config.probe_interval
        self._next_gossip = now + rng.random() * config.gossip_interval
        self._next_push_pull: float | None = (
            now + rng.random() * config.push_pull_interval
            if config.push_pull_interval > 0
            else None
        )
        me = Alive(1, config.name, self._addr, port, bytes(meta), config.vsn)
        self._apply(self.table.apply_alive(me, now, bootstrap=True), now)

    # ================================================================== outputs

    def packets_to_send(self) -> list[SendPacket]:
        """Datagrams to send, oldest first; the list is handed over (drained)."""
        out, self._packets = self._packets, []
        return out

    def streams_to_open(self) -> list[StreamAction]:
        """Stream actions (open, reply, close) to execute in order; drained."""
        out, self._stream_actions = self._stream_actions, []
        for act in out:
            if not isinstance(act, CloseStream):
                self.counters.stream_bytes_out += len(act.data)
        return out

    def next_event(self) -> Event | None:
        """The oldest undelivered event, or None."""
        return self._events.popleft() if self._events else None

    def next_deadline(self) -> float | None:
        """When `tick` must next run (the earliest timer), or None if nothing is pending."""
        times = [self._next_probe]
        if self.config.gossip_nodes > 0:
            times.append(self._next_gossip)
        if self._next_push_pull is not None:
            times.append(self._next_push_pull)
        t = self._tracker.next_deadline()
        if t is not None:
            times.append(t)
        t = self.table.next_suspicion_deadline()
        if t is not None:
            times.append(t)
        if self._streams:
            times.append(min(s.deadline for s in self._streams.values()))
        return min(times)

    # ================================================================== queries

    @property
    def name(self) -> str:
        return self._name

    @property
    def health_score(self) -> int:
        return self.awareness.score

    def members(self) -> list[Member]:
        """Every known member, self included, in any state."""
        return [e.snapshot() for e in self.table.nodes]

    def alive_members(self) -> list[Member]:
        """Members not dead or left (alive or suspect), self included."""
        return [
            e.snapshot()
            for e in self.table.nodes
            if e.state in (NodeState.ALIVE, NodeState.SUSPECT)
        ]

    def num_alive(self) -> int:
        """Count of alive (not suspect) members, self included; O(1)."""
        return self.table.alive_count

    def member(self, name: str) -> Member | None:
        e = self.table.get(name)
        return e.snapshot() if e is not None else None

    def local_member(self) -> Member:
        return self.table.local.snapshot()

    # ================================================================== inputs

    def tick(self, now: float) -> None:
        """Run everything due at or before `now`."""
        self._now = now
        self._expire_streams(now)
        for relay in self._tracker.expired_relays(now):
            self._relay_timeout(relay)
        for probe in self._tracker.due_probes(now):
            self._advance_probe(probe, now)
        for dead in self.table.expire_suspicions(now):
            self._apply(self.table.apply_dead(dead, now), now)
        if now >= self._next_probe:
            self._next_probe = max(self._next_probe + self.config.probe_interval, now)
            if self._next_probe <= now:
                self._next_probe = now + self.config.probe_interval
            self._probe_round(now)
        if self.config.gossip_nodes > 0 and now >= self._next_gossip:
            self._next_gossip = now + self.config.gossip_interval
            self._gossip(now)
        if self._next_push_pull is not None and now >= self._next_push_pull:
            n = len(self.table)
            self._next_push_pull = now + push_pull_scale(self.config.push_pull_interval, n)
            self._periodic_push_pull(now)

    def handle_packet(self, data: bytes, src: Address, now: float) -> None:
        """One received datagram (timestamped at receipt)."""
        self._now = now
        self.counters.packets_in += 1
        self.counters.bytes_in += len(data)
        try:
            parts, errors = self._wire.unwrap_packet(data)
        except MalformedMessage as exc:
            self._malformed(exc, src, now)
            return
        for err in errors:
            self._malformed(err, src, now)
        gossip_budget = self.config.handoff_queue_depth
        for part in parts:
            try:
                msg = self._decode(part)
            except MalformedMessage as exc:
                self._malformed(exc, src, now)
                continue
            self.counters.messages_in += 1
            if isinstance(msg, (Alive, Suspect, Dead, UserMsg)):
                gossip_budget -= 1
                if gossip_budget < 0:
                    self._drop(DropReason.HANDOFF_FULL, "handoff queue full", src, now)
                    continue
            self._dispatch(msg, src, now)

    def stream_accepted(self, peer: Address, now: float) -> int:
        """A new inbound connection; returns the conn_id to use for it."""
        self._now = now
        conn_id = self._new_conn()
        if self._inbound >= self.config.max_inbound_streams:
            self._drop(DropReason.TOO_MANY_STREAMS, "inbound stream limit", peer, now)
            self._stream_actions.append(CloseStream(conn_id))
            return conn_id
        self._inbound += 1
        self.counters.streams_in += 1
        deadline = now + self.config.tcp_timeout
        reader = self._wire.stream_reader(dialer=False)
        self._streams[conn_id] = StreamState(conn_id, StreamKind.INBOUND, peer, deadline, reader)
        return conn_id

    def handle_stream(self, conn_id: int, data: bytes, now: float) -> None:
        """Bytes read on a stream (`b""` = the peer closed its side)."""
        self._now = now
        self.counters.stream_bytes_in += len(data)
        st = self._streams.get(conn_id)
        if st is None:
            self.counters.drop(DropReason.UNKNOWN_STREAM)
            return
        if not data:
            self._drop(DropReason.STREAM_EOF, "stream ended early", st.peer, now)
            self._end_stream(st, ok=False, now=now)
            return
        st.size += len(data)
        if st.size > self.config.max_stream_bytes:
            self._drop(DropReason.STREAM_TOO_LARGE, "stream too large", st.peer, now)
            self._end_stream(st, ok=False, now=now)
            return
        try:
            got = st.reader.feed(data)
        except MalformedMessage as exc:
            self._malformed(exc, st.peer, now)
            if st.kind is StreamKind.INBOUND:
                self._reply(st, ErrResp(str(exc)))
            self._end_stream(st, ok=False, now=now)
            return
        if got is not None:
            self._stream_message(st, got.message, now)

    def stream_failed(self, conn_id: int, now: float) -> None:
        """The connection failed (refused, reset, timed out); the runtime closed it."""
        self._now = now
        st = self._streams.get(conn_id)
        if st is not None:
            self._end_stream(st, ok=False, now=now, close=False)

    def join(self, addrs: Sequence[Address], now: float) -> int:
        """Push/pull (Join=true) with each address; `JoinFinished(batch)` when all have
        ended. Returns the batch number."""
        self._now = now
        self._batch_seq += 1
        batch = self._batch_seq
        if not addrs:
            self._events.append(JoinFinished(batch, 0, (), now))
            return batch
        self._batches[batch] = JoinBatch(pending=len(addrs))
        for addr in addrs:
            self._open_push_pull(addr, join=True, now=now, batch=batch)
        return batch

    def leave(self, now: float) -> None:
        """Announce a graceful leave (dead about ourselves, From = us)."""
        self._now = now
        if self.table.leaving:
            return
        self.table.leaving = True
        me = self.table.local
        self._apply(self.table.apply_dead(Dead(me.incarnation, me.name, me.name), now), now)

    def leave_done(self) -> bool:
        """True once the leave notice has been sent its full retransmit count."""
        if not self.table.leaving:
            return False
        others = any(e.state is NodeState.ALIVE for e in self.table.nodes if e.name != self._name)
        return not others or not self._queue.pending(self._name)

    def set_meta(self, meta: bytes, now: float) -> None:
        """Change our metadata and announce it (memberlist's UpdateNode)."""
        self._now = now
        if len(meta) > META_MAX_SIZE:
            raise LocalError(f"meta of {len(meta)} bytes exceeds {META_MAX_SIZE}")
        me = self.table.local
        a = Alive(me.incarnation + 1, me.name, me.addr, me.port, bytes(meta), me.vsn)
        self._apply(self.table.apply_alive(a, now, bootstrap=True), now)

    def set_pinned_targets(self, names: Iterable[str]) -> None:
        """Members probed every probe interval besides the round robin (extension)."""
        self._pinned = tuple(n for n in names if n != self._name)[:_MAX_PINNED]

    def broadcast_user(self, data: bytes, now: float) -> None:
        """Gossip a user message to the cluster (retransmit-limited, best effort)."""
        self._now = now
        self._user_queue.queue(None, encode_message(UserMsg(bytes(data))))

    def send_user(self, addr: Address, data: bytes, now: float, reliable: bool = False) -> None:
        """Send a user message to one address, by UDP or (reliable) over TCP."""
        self._now = now
        if reliable:
            conn_id = self._new_conn()
            payload = self._wire.encode_stream(UserMsg(bytes(data)), dialer=True)
            self.counters.streams_out += 1
            deadline = now + self.config.tcp_timeout
            self._stream_actions.append(OpenStream(conn_id, addr, payload, deadline))
            self._stream_actions.append(CloseStream(conn_id))
            return
        self._send(addr, [encode_message(UserMsg(bytes(data)))], None)

    # ================================================================== dispatch

    def _dispatch(self, msg: Message, src: Address, now: float) -> None:
        if isinstance(msg, Ping):
            self._on_ping(msg, src)
        elif isinstance(msg, IndirectPingReq):
            self._on_indirect(msg, src, now)
        elif isinstance(msg, AckResp):
            self._on_ack(msg, now)
        elif isinstance(msg, NackResp):
            if self._tracker.nack(msg.seq_no) is None:
                self.counters.drop(DropReason.UNKNOWN_ACK)
        elif isinstance(msg, Alive):
            if self._allowed and not (self._ip_allowed(src[0]) and self._ip_allowed(msg.addr)):
                self._drop(DropReason.NOT_ALLOWED, f"alive {msg.node}", src, now)
                return
            if not self._room_for(msg.node, src, now):
                return
            if msg.port == 0:  # memberlist: a missing port means ours
                msg = dataclasses.replace(msg, port=self.config.bind_port)
            self._apply(self.table.apply_alive(msg, now), now, src)
        elif isinstance(msg, Suspect):
            self._apply(self.table.apply_suspect(msg, now), now, src)
        elif isinstance(msg, Dead):
            self._apply(self.table.apply_dead(msg, now), now, src)
        elif isinstance(msg, UserMsg):
            self._events.append(UserMessage(msg.payload, src, False, now))
        else:
            self._drop(DropReason.UNEXPECTED_MESSAGE, type(msg).__name__, src, now)

    def _room_for(self, name: str, src: Address | None, now: float) -> bool:
        if len(self.table) < self.config.max_members or self.table.get(name) is not None:
            return True
        self._drop(DropReason.TABLE_FULL, name, src, now)
        return False

    def _ip_allowed(self, ip: str | bytes) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self._allowed)

    def _reply_addr(self, addr: bytes, port: int, src: Address) -> Address:
        if addr and port:
            try:
                return (str(addr_from_bytes(addr)), port)
            except MalformedMessage:
                return src
        return src

    def _on_ping(self, ping: Ping, src: Address) -> None:
        if ping.node and ping.node != self._name:
            self._drop(DropReason.PING_NOT_FOR_US, ping.node, src, self._now)
            return
        to = self._reply_addr(ping.source_addr, ping.source_port, src)
        self._send_piggyback(to, encode_message(AckResp(ping.seq_no)))

    def _on_indirect(self, ind: IndirectPingReq, src: Address, now: float) -> None:
        if len(self._tracker.relays) >= _MAX_RELAYS:
            self._drop(DropReason.HANDOFF_FULL, "too many pending relays", src, now)
            return
        requester = self._reply_addr(ind.source_addr, ind.source_port, src)
        relay = self._tracker.relay(
            requester, ind.seq_no, ind.nack, now + self.config.probe_timeout
        )
        target = (str(addr_from_bytes(ind.target)), ind.port or self.config.bind_port)
        ping = Ping(relay.seq, ind.node, self._addr, self._name, self._port)
        self._send_piggyback(target, encode_message(ping))

    def _on_ack(self, ack: AckResp, now: float) -> None:
        done = self._tracker.ack(ack.seq_no)
        if done is None:
            self.counters.drop(DropReason.UNKNOWN_ACK)
        elif isinstance(done, Relay):
            self._send_piggyback(done.requester, encode_message(AckResp(done.their_seq)))
        else:
            # any success of a probe whose ping went out improves our health (memberlist)
            self.awareness.apply_delta(-1)
            if done.phase is ProbePhase.DIRECT:
                self._events.append(ProbeAcked(done.target, now - done.started, now))
            self._close_tcp_ping(done)
            self._probe_finished(done, now)

    def _refute_directly(self, alive: Message) -> None:
        data = self._encode_gossip(alive)
        for e in self.table.nodes:
            if e.name != self._name and e.state in (NodeState.ALIVE, NodeState.SUSPECT):
                for _ in range(self.config.probe_copies):
                    self._send(e.address, [data], e)

    def _relay_timeout(self, relay: Relay) -> None:
        if relay.nack:
            self._send_piggyback(relay.requester, encode_message(NackResp(relay.their_seq)))

    # ================================================================== membership changes

    def _apply(self, change: Change, now: float, src: Address | None = None) -> None:
        kind = change.kind
        if kind is ChangeKind.NONE and change.rebroadcast is None:
            return
        if change.rebroadcast is not None:
            msg = change.rebroadcast
            self._queue.queue(msg.node, self._encode_gossip(msg))
        entry = change.entry
        if kind is ChangeKind.REFUTED:
            self.counters.refutations += 1
            self.awareness.apply_delta(1)
            self._events.append(Refuted(self.table.local.incarnation, now))
            if self.config.refute_directly and change.rebroadcast is not None:
                self._refute_directly(change.rebroadcast)
        elif kind is ChangeKind.CONFLICT:
            self._drop(DropReason.ADDRESS_CONFLICT, entry.name if entry else "", src, now)
        elif kind is ChangeKind.BAD_VSN:
            self._drop(DropReason.BAD_VSN, "alive with bad Vsn", src, now)
        elif entry is None:
            return
        elif kind is ChangeKind.JOINED:
            self._events.append(MemberJoined(entry.snapshot(), now))
        elif kind is ChangeKind.UPDATED:
            self._events.append(MemberUpdated(entry.snapshot(), now))
        elif kind is ChangeKind.RECOVERED:
            if self.config.emit_suspect_events:
                self._events.append(MemberRecovered(entry.snapshot(), now))
        elif kind is ChangeKind.FAILED:
            self._events.append(MemberFailed(entry.snapshot(), now))
        elif kind is ChangeKind.LEFT:
            self._events.append(MemberLeft(entry.snapshot(), now))
        elif kind in (ChangeKind.SUSPECTED, ChangeKind.CONFIRMED):
            if kind is ChangeKind.SUSPECTED and self.config.emit_suspect_events:
                self._events.append(MemberSuspected(entry.snapshot(), change.by, now))
            self._maybe_dead_early(entry, now)

    def _maybe_dead_early(self, entry: NodeEntry, now: float) -> None:
        """Extension: enough independent accusers make a suspect dead at once."""
        needed = self.config.dead_after_confirmations
        sus = self.table.suspicions.get(entry.name)
        if needed <= 0 or sus is None or sus.accusers < needed:
            return
        dead = Dead(entry.incarnation, entry.name, self._name)
        self._apply(self.table.apply_dead(dead, now), now)

    # ================================================================== probing

    def _probe_round(self, now: float) -> None:
        if self._tracker.regular_in_flight():
            # memberlist's ticker keeps one tick while a probe runs: probe again when it ends
            self._probe_owed = True
        else:
            self._probe_next(now)
        if self.config.probe_pinned_every_round:
            for name in self._pinned:
                entry = self.table.get(name)
                if entry is None or entry.state not in (NodeState.ALIVE, NodeState.SUSPECT):
                    continue
                if not self._tracker.in_flight(name):
                    self._start_probe(entry, now, pinned=True)

    def _probe_next(self, now: float) -> None:
        target = self.table.next_probe_target(now, self.config.gossip_to_the_dead_time)
        if target is not None and not self._tracker.in_flight(target.name):
            self._start_probe(target, now, pinned=False)

    def _probe_finished(self, probe: Probe, now: float) -> None:
        if not probe.pinned and self._probe_owed:
            self._probe_owed = False
            self._probe_next(now)

    def _start_probe(self, target: NodeEntry, now: float, pinned: bool) -> None:
        interval = self.awareness.scale_timeout(self.config.probe_interval)
        probe = self._tracker.start(target.name, now, self.config.probe_timeout, interval, pinned)
        self.counters.probes += 1
        ping = encode_message(Ping(probe.seq, target.name, self._addr, self._name, self._port))
        if target.state is NodeState.ALIVE:
            self._send_piggyback(target.address, ping)
            for _ in range(self.config.probe_copies - 1):
                self._send(target.address, [ping], target)
        else:
            # Tell a suspect it is suspected so it can refute at once (Lifeguard buddy system).
            sus = encode_message(Suspect(target.incarnation, target.name, self._name))
            for _ in range(self.config.probe_copies):
                self._send(target.address, [ping, sus], target)

    def _advance_probe(self, probe: Probe, now: float) -> None:
        if probe.phase is ProbePhase.DIRECT:
            probe.phase = ProbePhase.INDIRECT
            entry = self.table.get(probe.target)
            if entry is None:
                self._tracker.finish(probe)
                self._probe_finished(probe, now)
                return
            self._indirect_phase(probe, entry, now)
            if now < probe.end:
                return
        self._tracker.finish(probe)
        self._close_tcp_ping(probe)
        self._probe_finished(probe, now)
        if probe.tcp_ok:
            log.warning("%s: %s answered TCP ping but not UDP", self._name, probe.target)
            self.awareness.apply_delta(-1)
            return
        self.counters.probe_failures += 1
        if probe.expected_nacks > 0:
            self.awareness.apply_delta(max(probe.expected_nacks - probe.nacks, 0))
        else:
            self.awareness.apply_delta(1)
        entry = self.table.get(probe.target)
        if entry is None or entry.state not in (NodeState.ALIVE, NodeState.SUSPECT):
            return
        s = Suspect(entry.incarnation, entry.name, self._name)
        self._apply(self.table.apply_suspect(s, now), now)

    def _indirect_phase(self, probe: Probe, target: NodeEntry, now: float) -> None:
        local = self._name
        relays = k_random_members(
            self._rng,
            self.config.indirect_checks,
            self.table.nodes,
            lambda e: e.name == local or e.name == target.name or e.state is not NodeState.ALIVE,
        )
        for relay in relays:
            nack = relay.pmax >= 4
            probe.expected_nacks += nack
            req = IndirectPingReq(
                seq_no=probe.seq,
                target=target.addr,
                port=target.port,
                node=target.name,
                nack=nack,
                source_addr=self._addr,
                source_node=self._name,
                source_port=self._port,
            )
            data = encode_message(req)
            self._send_piggyback(relay.address, data)
            for _ in range(self.config.probe_copies - 1):
                self._send(relay.address, [data], relay)
        if not self.config.disable_tcp_pings and target.pmax >= 3:
            conn_id = self._new_conn()
            ping = Ping(probe.seq, target.name, self._addr, self._name, self._port)
            data = self._wire.encode_stream(ping, dialer=True)
            reader = self._wire.stream_reader(dialer=True)
            st = StreamState(
                conn_id, StreamKind.TCP_PING, target.address, probe.end, reader, seq=probe.seq
            )
            self._streams[conn_id] = st
            probe.tcp_conn = conn_id
            self.counters.streams_out += 1
            self._stream_actions.append(OpenStream(conn_id, target.address, data, probe.end))

    def _close_tcp_ping(self, probe: Probe) -> None:
        if probe.tcp_conn is not None and probe.tcp_conn in self._streams:
            del self._streams[probe.tcp_conn]
            self._stream_actions.append(CloseStream(probe.tcp_conn))

    # ================================================================== gossip, push/pull

    def _budget(self) -> int:
        return self.config.udp_buffer_size - _COMPOUND_OVERHEAD - self._wire.overhead

    def _take_broadcasts(self, limit: int) -> list[bytes]:
        msgs = self._queue.get(_COMPOUND_OVERHEAD, limit)
        if len(self._user_queue):
            used = sum(len(m) + _COMPOUND_OVERHEAD for m in msgs)
            msgs += self._user_queue.get(_COMPOUND_OVERHEAD, limit - used)
        return msgs

    def _gossip(self, now: float) -> None:
        if not len(self._queue) and not len(self._user_queue):
            return
        local = self._name
        dead_time = self.config.gossip_to_the_dead_time

        def exclude(e: NodeEntry) -> bool:
            if e.name == local or e.state is NodeState.LEFT:
                return True
            return e.state is NodeState.DEAD and now - e.state_change > dead_time

        for node in k_random_members(
            self._rng, self.config.gossip_nodes, self.table.nodes, exclude
        ):
            msgs = self._take_broadcasts(self._budget())
            if not msgs:
                return
            self._send(node.address, msgs, node)

    def _periodic_push_pull(self, now: float) -> None:
        local = self._name
        peers = k_random_members(
            self._rng,
            1,
            self.table.nodes,
            lambda e: e.name == local or e.state is not NodeState.ALIVE,
        )
        if peers:
            self._open_push_pull(peers[0].address, join=False, now=now, batch=None)

    def _local_push_pull(self, join: bool, dialer: bool) -> bytes:
        """Our whole table (every state, self included) and the hook's user state."""
        user = self._hooks.local_state(join) if self._hooks is not None else b""
        enc = self._encode_state
        states = [
            enc((e.name, e.addr, e.port, e.meta, e.incarnation, e.state, e.vsn))
            for e in self.table.nodes
        ]
        return self._wire.encode_push_pull(join, states, user, dialer)

    def _open_push_pull(self, addr: Address, join: bool, now: float, batch: int | None) -> None:
        conn_id = self._new_conn()
        deadline = now + self.config.tcp_timeout
        reader = self._wire.stream_reader(dialer=True)
        self._streams[conn_id] = StreamState(
            conn_id, StreamKind.PUSH_PULL, addr, deadline, reader, join=join, batch=batch
        )
        self.counters.streams_out += 1
        data = self._local_push_pull(join, dialer=True)
        self._stream_actions.append(OpenStream(conn_id, addr, data, deadline))

    def _merge_push_pull(self, pp: PushPull, src: Address, now: float) -> bool:
        problem = verify_protocol(pp.states, self.table.nodes)
        if problem:
            self._drop(DropReason.INCOMPATIBLE_VERSION, problem, src, now)
            return False
        for st in pp.states:
            if st.state is NodeState.ALIVE and self._allowed and not self._ip_allowed(st.addr):
                self._drop(DropReason.NOT_ALLOWED, f"push/pull entry {st.name}", src, now)
                continue
            if not self._room_for(st.name, src, now):
                continue
            if st.port == 0:
                st = dataclasses.replace(st, port=self.config.bind_port)
            self._apply(self.table.apply_push_state(st, now), now, src)
        if self._hooks is not None and pp.user_state:
            self._hooks.merge_remote_state(pp.user_state, pp.join)
        return True

    # ================================================================== streams

    def _new_conn(self) -> int:
        self._conn_seq += 1
        return self._conn_seq

    def _reply(self, st: StreamState, msg: Message) -> None:
        self._stream_actions.append(
            ReplyStream(st.conn_id, self._wire.encode_stream(msg, dialer=False))
        )

    def _stream_message(self, st: StreamState, msg: Message, now: float) -> None:
        if st.kind is StreamKind.INBOUND:
            if isinstance(msg, PushPull):
                data = self._local_push_pull(msg.join, dialer=False)
                self._stream_actions.append(ReplyStream(st.conn_id, data))
                self._end_stream(st, ok=True, now=now)
                self._merge_push_pull(msg, st.peer, now)
                return
            if isinstance(msg, Ping):
                if not msg.node or msg.node == self._name:
                    self._reply(st, AckResp(msg.seq_no))
                else:
                    self._drop(DropReason.PING_NOT_FOR_US, msg.node, st.peer, now)
            elif isinstance(msg, UserMsg):
                self._events.append(UserMessage(msg.payload, st.peer, True, now))
            else:
                self._drop(DropReason.UNEXPECTED_MESSAGE, type(msg).__name__, st.peer, now)
            self._end_stream(st, ok=True, now=now)
            return
        if isinstance(msg, ErrResp):
            self._drop(DropReason.REMOTE_ERROR, msg.error, st.peer, now)
            self._end_stream(st, ok=False, now=now)
            return
        if st.kind is StreamKind.PUSH_PULL and isinstance(msg, PushPull):
            self._end_stream(st, ok=True, now=now, merge=msg)
            return
        if st.kind is StreamKind.TCP_PING and isinstance(msg, AckResp) and msg.seq_no == st.seq:
            for probe in self._tracker.probes.values():
                if probe.tcp_conn == st.conn_id:
                    probe.tcp_ok = True
            self._end_stream(st, ok=True, now=now)
            return
        self._drop(DropReason.UNEXPECTED_MESSAGE, type(msg).__name__, st.peer, now)
        self._end_stream(st, ok=False, now=now)

    def _end_stream(
        self,
        st: StreamState,
        ok: bool,
        now: float,
        close: bool = True,
        merge: PushPull | None = None,
    ) -> None:
        if self._streams.pop(st.conn_id, None) is None:
            return
        if st.kind is StreamKind.INBOUND:
            self._inbound -= 1
        if close:
            self._stream_actions.append(CloseStream(st.conn_id))
        if merge is not None:
            ok = self._merge_push_pull(merge, st.peer, now)
        if st.batch is not None:
            batch = self._batches.get(st.batch)
            if batch is not None:
                batch.pending -= 1
                if ok:
                    batch.succeeded += 1
                else:
                    batch.failed.append(st.peer)
                if batch.pending <= 0:
                    del self._batches[st.batch]
                    self._events.append(
                        JoinFinished(st.batch, batch.succeeded, tuple(batch.failed), now)
                    )

    def _expire_streams(self, now: float) -> None:
        for st in [s for s in self._streams.values() if now >= s.deadline]:
            if st.kind is not StreamKind.TCP_PING:
                self._drop(DropReason.STREAM_TIMEOUT, "stream deadline", st.peer, now)
            self._end_stream(st, ok=False, now=now)

    # ================================================================== sending

    def _send_piggyback(self, addr: Address, msg: bytes) -> None:
        """Send a probe-type message topped up with queued broadcasts.

        memberlist sends these by address only, so they carry no CRC (spec §5.1).
        """
        avail = self._budget() - len(msg)
        extra = self._take_broadcasts(avail) if avail > 0 else []
        self._send(addr, [msg, *extra], None)

    def _send(self, addr: Address, parts: list[bytes], entry: NodeEntry | None) -> None:
        crc = entry is not None and entry.pmax >= 5
        for data in self._wire.wrap_packet(parts, crc=crc):
            self.counters.packets_out += 1
            self.counters.bytes_out += len(data)
            self._packets.append(SendPacket(addr, data))

    # ================================================================== bad input

    def _malformed(self, exc: MalformedMessage, src: Address | None, now: float) -> None:
        m = self.counters.malformed
        m[exc.reason] = m.get(exc.reason, 0) + 1
        self._drop(DropReason.MALFORMED, str(exc), src, now)

    def _drop(self, reason: DropReason, detail: str, src: Address | None, now: float) -> None:
        self.counters.drop(reason)
        log.debug("%s: dropped input from %s: %s (%s)", self._name, src, reason.name, detail)
        if len(self._events) < 10_000:
            self._events.append(ProtocolViolation(reason, detail[:200], src, now))
