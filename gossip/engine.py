"""The sans-IO memberlist engine: SWIM probing, Lifeguard suspicion, gossip and push/pull.

The caller feeds it datagrams, stream bytes and the time; it answers with packets to send,
stream actions and events, and says when it next needs `tick`. It owns no socket, reads no
clock and draws randomness only from the `random.Random` it is given, so a seeded
simulator replays it exactly.

Nothing a peer sends can make one call expensive or memory grow without bound: datagrams
are admitted against per-source budgets and opened within per-datagram limits
(`admission`, `framing`), answers never exceed a multiple of what their asker sent, streams
are parsed incrementally within a work budget per call (`streams`, `stream_parser`), and
large push/pulls are merged a slice at a time (`push_pull`). Bad input never raises out of
it: it is counted by reason (`Engine.counters`) and reported as a bounded stream of
`ProtocolViolation` events with periodic summaries (`violations`).

Composition: `members` (table and merge rules), `suspicion`, `awareness`, `broadcast`
(retransmit-limited queues), `probing` (our probes and answering others'), `probe`
(seq-keyed bookkeeping), `streams`, `push_pull`, `admission`, `violations`, `scaling` (the
math) and `_wire` (codec, framing and keyring glue).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from gossip import _wire
from gossip._engine_state import EngineCounters
from gossip.actions import Address, CloseStream, SendPacket, StreamAction
from gossip.admission import SourceBudgets
from gossip.awareness import Awareness
from gossip.broadcast import BroadcastQueue
from gossip.codec import encode_message
from gossip.config import GossipConfig
from gossip.errors import LocalError, MalformedMessage, MalformedReason
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
    Refuted,
    UndecryptableTraffic,
    UserMessage,
)
from gossip.hooks import StateHooks
from gossip.keyring import Keyring
from gossip.members import Change, ChangeKind, MemberTable, NodeEntry, SuspicionParams
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
    PushNodeState,
    PushPull,
    Suspect,
    UserMsg,
)
from gossip.probe import ProbeTracker
from gossip.probing import COMPOUND_OVERHEAD, DATAGRAM_OVERHEAD, Probing
from gossip.push_pull import JoinBatches, MergeJob, MergeQueue, local_push_pull
from gossip.refutation import DirectRefutations
from gossip.scaling import k_random_members, push_pull_scale
from gossip.stream_parser import STATE_COST
from gossip.streams import StreamKind, StreamState, StreamTable
from gossip.violations import SourceEvidence, UndecryptableSources, ViolationReporter

if TYPE_CHECKING:
    import random

__all__ = ["Engine", "EngineCounters"]

log = logging.getLogger(__name__)

_MAX_PINNED = 16
_MAX_INCARNATION = 0xFFFF_FFFF
"""uint32: an accusation at this incarnation could never be refuted (Go wraps to 0)."""
_EVIDENCE = (MalformedReason.DECRYPT_FAILED, MalformedReason.UNENCRYPTED)
"""Malformed input that shows someone nearby runs with another key."""
_MAX_EVENTS = 10_000


def _guards(config: GossipConfig) -> tuple[SourceBudgets, ViolationReporter]:
    """What bounds a peer's input: per-source budgets, and the violation report rate."""
    budgets = SourceBudgets(
        config.source_messages_per_second,
        config.source_bytes_per_second,
        config.reply_amplification,
    )
    violations = ViolationReporter(
        config.violation_events_per_second,
        config.violation_burst,
        config.violation_summary_interval,
    )
    return budgets, violations


class Engine(Probing):
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
        self._events: deque[Event] = deque()
        self._streams = StreamTable(config, self._wire)
        self._merges = MergeQueue(self.table)
        self._batches = JoinBatches()
        self._budgets, self._violations = _guards(config)
        self._undecryptable = UndecryptableSources()
        self._pinned: tuple[str, ...] = ()
        self._probe_owed = False
        self._allowed = tuple(ipaddress.ip_network(c, strict=False) for c in config.cidrs_allowed)
        self._now = now
        self._asked: float | None = None
        self._held: dict[DropReason, tuple[int, str]] | None = None
        self._replies = None
        self._live: frozenset[str] = frozenset()
        self._live_version = -1
        self._stall_after = max(config.probe_timeout, 0.05)
        self._refutations = DirectRefutations(now)
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
        out, self._streams.actions = self._streams.actions, []
        for act in out:
            if not isinstance(act, CloseStream):
                self.counters.stream_bytes_out += len(act.data)
        return out

    def next_event(self) -> Event | None:
        """The oldest undelivered event, or None."""
        return self._events.popleft() if self._events else None

    def next_deadline(self) -> float | None:
        """When `tick` must next run (the earliest timer), or None if nothing is pending.

        While stream parsing or push/pull merging has work left over from a call's budget,
        that is `now`: the caller runs its other input first, then ticks again. A tick that
        comes much later than asked tells the engine that *it* was stalled (see `tick`).
        """
        if self._merges or self._streams.has_work:
            self._asked = self._now
            return self._now
        times = [self._next_probe]
        if self.config.gossip_nodes > 0:
            times.append(self._next_gossip)
        if self._next_push_pull is not None:
            times.append(self._next_push_pull)
        for t in (
            self._tracker.next_deadline(),
            self.table.next_suspicion_deadline(),
            self._streams.next_deadline(),
            self._violations.next_deadline(),
            self._refutations.next_deadline(),
        ):
            if t is not None:
                times.append(t)
        self._asked = min(times)
        return self._asked

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

    def live_names(self) -> frozenset[str]:
        """Names of members alive or suspect, self included; cached until the table
        changes, so asking after every event costs nothing however large the table."""
        if self._live_version != self.table.version:
            live = (NodeState.ALIVE, NodeState.SUSPECT)
            self._live = frozenset(e.name for e in self.table.nodes if e.state in live)
            self._live_version = self.table.version
        return self._live

    def num_alive(self) -> int:
        """Count of alive (not suspect) members, self included; O(1)."""
        return self.table.alive_count

    def member(self, name: str) -> Member | None:
        e = self.table.get(name)
        return e.snapshot() if e is not None else None

    def local_member(self) -> Member:
        return self.table.local.snapshot()

    def undecryptable_sources(self, since: float = 0.0) -> dict[str, SourceEvidence]:
        """Source IPs that sent what we cannot decrypt, heard from at or after `since`
        (evidence that peers run with another key; bounded to the 256 most recent)."""
        return self._undecryptable.since(since)

    # ================================================================== inputs

    def tick(self, now: float) -> None:
        """Run everything due at or before `now`."""
        self._now = now
        self._check_stall(now)
        self._expire_streams(now)
        self._continue_streams(now)
        for relay in self._tracker.expired_relays(now):
            self._relay_timeout(relay)
        for probe in self._tracker.due_probes(now):
            self._advance_probe(probe, now)
        for dead in self.table.expire_suspicions(now):
            self._apply(self.table.apply_dead(dead, now), now)
        held = self._refutations.due(now, self._refute_window())
        if held is not None:
            self._send_refutation(held)
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
            self._budgets.forget(self.table.addresses)
        summary = self._violations.summary(now)
        if summary is not None:
            self._events.append(summary)

    def handle_packet(self, data: bytes, src: Address, now: float) -> None:
        """One received datagram (timestamped at receipt)."""
        self._now = now
        self.counters.packets_in += 1
        self.counters.bytes_in += len(data)
        key = self._budgets.key(src, self.table.addresses)
        if not self._budgets.admit(key, len(data) + DATAGRAM_OVERHEAD, now):
            self._drop(DropReason.RATE_LIMITED, f"{len(data)} byte datagram", src, now)
            return
        try:
            split = self._wire.unwrap_packet(data, self.config.max_messages_per_packet)
        except MalformedMessage as exc:
            self._budgets.charge(key, 1, len(data), now)
            self._malformed(exc, src, now)
            return
        parts = len(split.messages) + len(split.errors) + split.skipped
        self._budgets.charge(key, parts, len(data) + split.decompressed, now)
        self._held = {}  # one report per reason for the whole datagram, however many parts
        self._replies = {}  # answers to one address leave together at the end
        try:
            if split.skipped:
                self._drop(DropReason.TOO_MANY_MESSAGES, f"{split.skipped} parts", src, now)
            for bad in split.errors:
                self._malformed(bad, src, now)
            self._dispatch_parts(split.messages, src, key, now)
        finally:
            self._flush_replies(now)
            held, self._held = self._held, None
            for reason, (count, detail) in held.items():
                self._report(reason, f"{count} x {detail}" if count > 1 else detail, src, now)

    def _dispatch_parts(
        self, parts: tuple[bytes, ...], src: Address, key: Address, now: float
    ) -> None:
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
            self._dispatch(msg, src, key, now)

    def stream_accepted(self, peer: Address, now: float) -> int:
        """A new inbound connection; returns the conn_id to use for it."""
        self._now = now
        conn_id, evicted = self._streams.accept(peer, now)
        if evicted is not None:
            self._drop(DropReason.TOO_MANY_STREAMS, "oldest inbound stream dropped", peer, now)
        if conn_id in self._streams:
            self.counters.streams_in += 1
        else:
            self._drop(DropReason.TOO_MANY_STREAMS, "inbound stream limit", peer, now)
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
            self._stream_failed(st, DropReason.STREAM_EOF, "stream ended early", now)
            return
        try:
            got = self._streams.receive(st, data, self.config.work_per_call)
        except MalformedMessage as exc:
            self._stream_error(st, exc, now)
            return
        if got is not None:
            self._stream_message(st, got.message, now)
        self._enforce_stream_memory(now)

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
        batch = self._batches.start(len(addrs))
        if not addrs:
            self._events.append(JoinFinished(batch, 0, (), now))
            return batch
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
        inc = min(me.incarnation + 1, _MAX_INCARNATION)
        a = Alive(inc, me.name, me.addr, me.port, bytes(meta), me.vsn)
        self._apply(self.table.apply_alive(a, now, bootstrap=True), now)

    @property
    def keyring(self) -> Keyring | None:
        return self._wire.keyring

    def set_keyring(self, keyring: Keyring | None) -> None:
        """Replace the keyring (memberlist's UseKey/InstallKey/RemoveKey in one step): the
        primary seals everything sent from now on, every key opens what arrives. Streams
        already open finish with the keyring they began with."""
        self._wire.set_keyring(keyring)

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
            payload = self._wire.encode_stream(UserMsg(bytes(data)), dialer=True)
            self.counters.streams_out += 1
            self._streams.send_once(addr, payload, now + self.config.tcp_timeout)
            return
        self._send(addr, [encode_message(UserMsg(bytes(data)))], None)

    # ================================================================== dispatch

    def _dispatch(self, msg: Message, src: Address, key: Address, now: float) -> None:
        if isinstance(msg, Ping):
            self._on_ping(msg, src, key, now)
        elif isinstance(msg, IndirectPingReq):
            self._on_indirect(msg, src, key, now)
        elif isinstance(msg, AckResp):
            self._on_ack(msg, now)
        elif isinstance(msg, NackResp):
            self._on_nack(msg)
        elif isinstance(msg, Alive):
            if self._allowed and not (self._ip_allowed(src[0]) and self._ip_allowed(msg.addr)):
                self._drop(DropReason.NOT_ALLOWED, f"alive {msg.node}", src, now)
                return
            if not self._room_for(msg.node, src, now):
                return
            if msg.port == 0:  # memberlist: a missing port means ours
                msg = dataclasses.replace(msg, port=self.config.bind_port)
            self._apply(self.table.apply_alive(msg, now), now, src)
        elif isinstance(msg, (Suspect, Dead)):
            if msg.incarnation >= _MAX_INCARNATION:
                self._drop(DropReason.INCARNATION_EXHAUSTED, msg.node, src, now)
            elif isinstance(msg, Suspect):
                self._apply(self.table.apply_suspect(msg, now), now, src)
            else:
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

    # ================================================================== membership changes

    def _suspect(self, entry: NodeEntry, now: float) -> None:
        """Our own probe of `entry` failed: suspect it (at any incarnation, even the last)."""
        s = Suspect(entry.incarnation, entry.name, self._name)
        self._apply(self.table.apply_suspect(s, now), now)

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
            if self.config.refute_directly and isinstance(change.rebroadcast, Alive):
                alive = self._refutations.offer(change.rebroadcast, now, self._refute_window())
                if alive is not None:
                    self._send_refutation(alive)
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

    def _refute_window(self) -> float:
        return self.awareness.scale_timeout(self.config.probe_interval)

    def _send_refutation(self, alive: Alive) -> None:
        """Extension (`refute_directly`): our refutation straight to every live member, in
        all `probe_copies` (it is the one message whose loss turns a suspicion into a false
        death; `gossip.refutation` bounds how often)."""
        data = self._encode_gossip(alive)
        for e in self.table.nodes:
            if e.name != self._name and e.state in (NodeState.ALIVE, NodeState.SUSPECT):
                for _ in range(self.config.probe_copies):
                    self._send(e.address, [data], e)

    def _maybe_dead_early(self, entry: NodeEntry, now: float) -> None:
        """Extension: enough independent accusers make a suspect dead at once."""
        needed = self.config.dead_after_confirmations
        sus = self.table.suspicions.get(entry.name)
        if needed <= 0 or sus is None or sus.accusers < needed:
            return
        dead = Dead(entry.incarnation, entry.name, self._name)
        self._apply(self.table.apply_dead(dead, now), now)

    # ================================================================== gossip

    def _take_broadcasts(self, limit: int) -> list[bytes]:
        msgs = self._queue.get(COMPOUND_OVERHEAD, limit)
        if len(self._user_queue):
            used = sum(len(m) + COMPOUND_OVERHEAD for m in msgs)
            msgs += self._user_queue.get(COMPOUND_OVERHEAD, limit - used)
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

    # ================================================================== push/pull

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
        return local_push_pull(
            self.table, self._wire, self._hooks, self._encode_state, join, dialer
        )

    def _open_push_pull(self, addr: Address, join: bool, now: float, batch: int | None) -> None:
        data = self._local_push_pull(join, dialer=True)
        deadline = now + self.config.tcp_timeout
        self._streams.dial(StreamKind.PUSH_PULL, addr, data, deadline, join=join, batch=batch)
        self.counters.streams_out += 1

    def _queue_merge(self, pp: PushPull, src: Address, batch: int | None, now: float) -> None:
        """Check and merge a received push/pull, now or over the next ticks."""
        waiting = (self._merges.pending_states + len(pp.states)) * STATE_COST
        if waiting + self._streams.held > self.config.max_stream_buffer_total:
            self._drop(DropReason.STREAM_BUFFER_FULL, "push/pull merges backlogged", src, now)
            self._batch_ended(batch, src, ok=False, now=now)
            return
        self._merges.add(pp, src, batch)
        self._run_merges(self.config.work_per_call, now)

    def _run_merges(self, budget: int, now: float) -> None:
        def merge(st: PushNodeState, src: Address) -> None:
            self._merge_state(st, src, now)

        for job in self._merges.work(budget, merge):
            self._merge_done(job, now)

    def _merge_state(self, st: PushNodeState, src: Address, now: float) -> None:
        if st.state is NodeState.ALIVE:
            if self._allowed and not self._ip_allowed(st.addr):
                self._drop(DropReason.NOT_ALLOWED, f"push/pull entry {st.name}", src, now)
                return
        elif st.incarnation >= _MAX_INCARNATION:
            self._drop(DropReason.INCARNATION_EXHAUSTED, st.name, src, now)
            return
        if not self._room_for(st.name, src, now):
            return
        if st.port == 0:
            st = dataclasses.replace(st, port=self.config.bind_port)
        self._apply(self.table.apply_push_state(st, now), now, src)

    def _merge_done(self, job: MergeJob, now: float) -> None:
        pp = job.push
        if job.problem:
            self._drop(DropReason.INCOMPATIBLE_VERSION, job.problem, job.src, now)
        elif self._hooks is not None and pp.user_state:
            self._hooks.merge_remote_state(pp.user_state, pp.join)
        self._batch_ended(job.batch, job.src, ok=not job.problem, now=now)

    def _batch_ended(self, batch: int | None, peer: Address, ok: bool, now: float) -> None:
        if batch is None:
            return
        finished = self._batches.ended(batch, peer, ok, now)
        if finished is not None:
            self._events.append(finished)

    # ================================================================== streams

    def _reply(self, st: StreamState, msg: Message) -> None:
        self._streams.reply(st, self._wire.encode_stream(msg, dialer=False))

    def _stream_message(self, st: StreamState, msg: Message, now: float) -> None:
        if st.kind is StreamKind.INBOUND:
            self._inbound_message(st, msg, now)
            return
        if isinstance(msg, ErrResp):
            self._drop(DropReason.REMOTE_ERROR, msg.error, st.peer, now)
            self._end_stream(st, ok=False, now=now)
            return
        if st.kind is StreamKind.PUSH_PULL and isinstance(msg, PushPull):
            self._streams.end(st)
            self._queue_merge(msg, st.peer, st.batch, now)
            return
        if st.kind is StreamKind.TCP_PING and isinstance(msg, AckResp) and msg.seq_no == st.seq:
            probe = self._tracker.by_tcp_conn(st.conn_id)
            if probe is not None:
                probe.tcp_ok = True
            self._end_stream(st, ok=True, now=now)
            return
        self._drop(DropReason.UNEXPECTED_MESSAGE, type(msg).__name__, st.peer, now)
        self._end_stream(st, ok=False, now=now)

    def _inbound_message(self, st: StreamState, msg: Message, now: float) -> None:
        if isinstance(msg, PushPull):
            self._streams.reply(st, self._local_push_pull(msg.join, dialer=False))
            self._end_stream(st, ok=True, now=now)
            self._queue_merge(msg, st.peer, None, now)
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

    def _stream_error(self, st: StreamState, exc: MalformedMessage, now: float) -> None:
        self._malformed(exc, st.peer, now)
        if st.inbound:
            self._reply(st, ErrResp(str(exc)))
        self._end_stream(st, ok=False, now=now)

    def _stream_failed(self, st: StreamState, reason: DropReason, detail: str, now: float) -> None:
        # A dial of ours that failed is usually a peer that is down, not a violation.
        self._drop(reason, detail, st.peer, now, report=st.inbound)
        self._end_stream(st, ok=False, now=now)

    def _end_stream(self, st: StreamState, ok: bool, now: float, close: bool = True) -> None:
        if self._streams.end(st, close=close) and st.batch is not None:
            self._batch_ended(st.batch, st.peer, ok, now)

    def _continue_streams(self, now: float) -> None:
        """Streams and merges whose work outlasted an earlier call's budget."""
        budget = self.config.work_per_call
        if self._streams.has_work:
            for st, got in self._streams.continue_work(budget // 2 if self._merges else budget):
                if isinstance(got, MalformedMessage):
                    self._stream_error(st, got, now)
                elif got is not None:
                    self._stream_message(st, got.message, now)
            self._enforce_stream_memory(now)
        if self._merges:
            self._run_merges(budget // 2, now)

    def _enforce_stream_memory(self, now: float) -> None:
        while (st := self._streams.over_budget()) is not None:
            self._stream_failed(st, DropReason.STREAM_BUFFER_FULL, "stream buffers full", now)

    def _expire_streams(self, now: float) -> None:
        for st in self._streams.expired(now):
            if st.kind is not StreamKind.TCP_PING:
                self._drop(DropReason.STREAM_TIMEOUT, "stream deadline", st.peer, now, st.inbound)
            self._end_stream(st, ok=False, now=now)

    # ================================================================== bad input

    def _malformed(self, exc: MalformedMessage, src: Address | None, now: float) -> None:
        m = self.counters.malformed
        m[exc.reason] = m.get(exc.reason, 0) + 1
        if exc.reason in _EVIDENCE and src is not None:
            evidence = self._undecryptable.note(src[0], now)
            if evidence is not None and len(self._events) < _MAX_EVENTS:
                self._events.append(UndecryptableTraffic(src[0], evidence.count, now))
        self._drop(DropReason.MALFORMED, str(exc), src, now)

    def _drop(
        self,
        reason: DropReason,
        detail: str,
        src: Address | None,
        now: float,
        report: bool = True,
    ) -> None:
        """Count a violation; report it as an event within the violation rate limit (while
        a datagram is being read, once per reason for all of it)."""
        self.counters.drop(reason)
        if not report:
            return
        if self._held is not None:
            count, first = self._held.get(reason, (0, detail))
            self._held[reason] = (count + 1, first)
            return
        self._report(reason, detail, src, now)

    def _report(self, reason: DropReason, detail: str, src: Address | None, now: float) -> None:
        if len(self._events) >= _MAX_EVENTS:
            return
        event = self._violations.report(reason, detail, src, now)
        if event is not None:
            log.debug("%s: dropped input from %s: %s (%s)", self._name, src, reason.name, detail)
            self._events.append(event)
