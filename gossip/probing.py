"""SWIM probing (spec §9.3) and answering others' probes, as a part of `Engine`.

Our probes: ping the next target directly; without an ack by `probe_timeout` ask relays
(indirect pings, nacks wanted) and try a TCP ping; suspect the target when nothing acked by
the end of the health-scaled probe interval. Lifeguard's local health (`awareness`) rises
when *we* may be the slow one (missing nacks, refutations, our own timers running late) and
then slows our probing, so an overloaded member does less recovery work, not more. It does
not trim `probe_copies`: packet loss raises the score as much as our own slowness does
(every failed probe counts), so copies trimmed on it vanished exactly when the loss they
exist for set in (the 10 %-loss soak's false deaths).

Others' probes: ack a ping, relay an indirect ping to a target we know at that address.
Every answer is charged to the asker's reply credit (`admission.SourceBudgets`): acks go
to the address the ping names only if it is the sender's own or a known member's, so a
forged ping cannot aim our answers at a third party or multiply its bytes.

This is a mixin: `Engine` provides the state declared below.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING

from gossip.actions import Address, SendPacket
from gossip.admission import SourceBudgets
from gossip.awareness import Awareness
from gossip.codec import encode_message
from gossip.config import GossipConfig
from gossip.errors import MalformedMessage
from gossip.events import DropReason, Event, ProbeAcked
from gossip.members import MemberTable, NodeEntry
from gossip.messages import (
    AckResp,
    IndirectPingReq,
    NackResp,
    NodeState,
    Ping,
    Suspect,
    addr_from_bytes,
)
from gossip.probe import Probe, ProbePhase, ProbeTracker, Relay
from gossip.scaling import k_random_members
from gossip.streams import StreamKind, StreamTable

if TYPE_CHECKING:
    import random

    from gossip._engine_state import EngineCounters
    from gossip._wire import Wire

__all__ = ["COMPOUND_OVERHEAD", "DATAGRAM_OVERHEAD", "Probing"]

log = logging.getLogger(__name__)

COMPOUND_OVERHEAD = 2
"""Bytes charged per part of a compound (its u16 length), and the compound header itself."""
DATAGRAM_OVERHEAD = 28
"""IPv4 and UDP headers: charged on both sides of the reply budget, so many small answers
to one datagram cannot outgrow it on the wire."""
MAX_RELAYS = 1024
"""Pending indirect pings we relay at once; more are dropped (bounds memory and fan-out)."""


class Probing:
    """Probe rounds, the indirect phase, acks and nacks, relaying, answering pings."""

    config: GossipConfig
    table: MemberTable
    counters: EngineCounters
    awareness: Awareness
    _rng: random.Random
    _name: str
    _addr: bytes
    _port: int
    _wire: Wire
    _streams: StreamTable
    _budgets: SourceBudgets
    _tracker: ProbeTracker
    _pinned: tuple[str, ...]
    _probe_owed: bool
    _packets: list[SendPacket]
    _events: deque[Event]
    _now: float
    _asked: float | None
    _stall_after: float

    def _drop(self, reason: DropReason, detail: str, src: Address | None, now: float) -> None:
        raise NotImplementedError

    def _suspect(self, entry: NodeEntry, now: float) -> None:
        raise NotImplementedError

    def _take_broadcasts(self, limit: int) -> list[bytes]:
        raise NotImplementedError

    # ================================================================== our probes

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
            # memberlist warns each time; at a fast probe rate that is a log flood
            log.debug("%s: %s answered TCP ping but not UDP", self._name, probe.target)
            self.awareness.apply_delta(-1)
            return
        self.counters.probe_failures += 1
        if probe.expected_nacks > 0:
            self.awareness.apply_delta(max(probe.expected_nacks - probe.nacks, 0))
        else:
            self.awareness.apply_delta(1)
        entry = self.table.get(probe.target)
        if entry is not None and entry.state in (NodeState.ALIVE, NodeState.SUSPECT):
            self._suspect(entry, now)

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
            ping = Ping(probe.seq, target.name, self._addr, self._name, self._port)
            data = self._wire.encode_stream(ping, dialer=True)
            st = self._streams.dial(
                StreamKind.TCP_PING, target.address, data, probe.end, seq=probe.seq
            )
            probe.tcp_conn = st.conn_id
            self.counters.streams_out += 1

    def _close_tcp_ping(self, probe: Probe) -> None:
        st = self._streams.get(probe.tcp_conn) if probe.tcp_conn is not None else None
        if st is not None:
            self._streams.end(st)

    def _on_ack(self, ack: AckResp, now: float) -> None:
        done = self._tracker.ack(ack.seq_no)
        if done is None:
            self.counters.drop(DropReason.UNKNOWN_ACK)
        elif isinstance(done, Relay):
            self._send_reply(done.requester, encode_message(AckResp(done.their_seq)), done.key)
        else:
            # any success of a probe whose ping went out improves our health (memberlist)
            self.awareness.apply_delta(-1)
            if done.phase is ProbePhase.DIRECT:
                self._events.append(ProbeAcked(done.target, now - done.started, now))
            self._close_tcp_ping(done)
            self._probe_finished(done, now)

    def _on_nack(self, nack: NackResp) -> None:
        if self._tracker.nack(nack.seq_no) is None:
            self.counters.drop(DropReason.UNKNOWN_ACK)

    def _check_stall(self, now: float) -> None:
        """A tick far later than asked means this member was stalled (CPU starved, loop
        blocked): we are the slow one. Raise our health score, and give probes and
        suspicions that ran out during the stall one probe timeout of grace, since their
        acks and refutations may be waiting unread in our socket."""
        asked, self._asked = self._asked, None
        if asked is None or now - asked <= self._stall_after:
            return
        self.counters.stalls += 1
        self.awareness.apply_delta(1)
        grace = now + self.config.probe_timeout
        for probe in self._tracker.probes.values():
            if probe.phase is ProbePhase.DIRECT and probe.direct_deadline <= now:
                probe.direct_deadline = grace
            probe.end = max(probe.end, grace)
        for relay in self._tracker.relays.values():
            relay.deadline = max(relay.deadline, grace)
        for sus in self.table.suspicions.values():
            sus.deadline = max(sus.deadline, grace)

    # ================================================================== others' probes

    def _reply_addr(self, addr: bytes, port: int, src: Address, now: float) -> Address:
        """Where to answer: the address a ping names if it is the sender's own or a known
        member's (memberlist answers there, for NAT), otherwise the sender itself."""
        if not addr or not port:
            return src
        try:
            named = (str(addr_from_bytes(addr)), port)
        except MalformedMessage:
            return src
        if named[0] == src[0] or named in self.table.addresses:
            return named
        self._drop(DropReason.THIRD_PARTY_ADDRESS, f"answer to {named} asked", src, now)
        return src

    def _on_ping(self, ping: Ping, src: Address, key: Address, now: float) -> None:
        if ping.node and ping.node != self._name:
            self._drop(DropReason.PING_NOT_FOR_US, ping.node, src, now)
            return
        to = self._reply_addr(ping.source_addr, ping.source_port, src, now)
        self._send_reply(to, encode_message(AckResp(ping.seq_no)), key, src, now)

    def _on_indirect(self, ind: IndirectPingReq, src: Address, key: Address, now: float) -> None:
        if len(self._tracker.relays) >= MAX_RELAYS:
            self._drop(DropReason.HANDOFF_FULL, "too many pending relays", src, now)
            return
        entry = self.table.get(ind.node)
        try:
            target = (str(addr_from_bytes(ind.target)), ind.port or self.config.bind_port)
        except MalformedMessage:
            target = ("", 0)
        if entry is None or entry.address != target:
            self._drop(DropReason.UNKNOWN_TARGET, f"indirect ping for {ind.node}", src, now)
            return
        requester = self._reply_addr(ind.source_addr, ind.source_port, src, now)
        ping = Ping(0, ind.node, self._addr, self._name, self._port)
        size = len(encode_message(ping)) + self._wire.overhead + DATAGRAM_OVERHEAD
        if not self._budgets.spend(key, size, now):
            self._drop(DropReason.REPLY_BUDGET, "indirect ping past the reply budget", src, now)
            return
        deadline = now + self.config.probe_timeout
        relay = self._tracker.relay(requester, ind.seq_no, ind.nack, deadline, key)
        ping = Ping(relay.seq, ind.node, self._addr, self._name, self._port)
        self._send(target, [encode_message(ping)], None)

    def _relay_timeout(self, relay: Relay) -> None:
        if relay.nack:
            self._send_reply(relay.requester, encode_message(NackResp(relay.their_seq)), relay.key)

    # ================================================================== sending

    def _budget(self) -> int:
        return self.config.udp_buffer_size - COMPOUND_OVERHEAD - self._wire.overhead

    def _send_reply(
        self,
        addr: Address,
        msg: bytes,
        key: Address,
        src: Address | None = None,
        now: float | None = None,
    ) -> None:
        """Answer charged to `key`'s reply credit; dropped (`REPLY_BUDGET`) when the credit
        cannot pay for it. While a datagram is read, answers to one address are held and
        go out together at its end (`_flush_replies`): 255 pings in one datagram cost a
        few datagrams of acks, not 255."""
        t = self._now if now is None else now
        if not self._budgets.spend(key, len(msg) + COMPOUND_OVERHEAD, t):
            self._drop(DropReason.REPLY_BUDGET, "answer past the reply budget", src or addr, t)
            return
        if self._replies is not None:
            self._replies.setdefault((addr, key), []).append(msg)
            return
        self._reply_datagrams(addr, [msg], key, t)

    _replies: dict[tuple[Address, Address], list[bytes]] | None

    def _flush_replies(self, now: float) -> None:
        held, self._replies = self._replies, None
        for (addr, key), msgs in (held or {}).items():
            self._reply_datagrams(addr, msgs, key, now)

    def _reply_datagrams(self, addr: Address, msgs: list[bytes], key: Address, now: float) -> None:
        """Pack answers into datagrams of at most one UDP buffer; the last is topped up
        with queued gossip as far as the credit allows. Each datagram's headers are charged
        too (a datagram the credit cannot pay for is not sent)."""
        budget = self._budget()
        batch: list[bytes] = []
        used = 0
        for m in msgs:
            if batch and used + len(m) + COMPOUND_OVERHEAD > budget:
                if not self._budgets.spend(key, self._wire.overhead + DATAGRAM_OVERHEAD, now):
                    return
                self._send(addr, batch, None)
                batch, used = [], 0
            batch.append(m)
            used += len(m) + COMPOUND_OVERHEAD
        if not self._budgets.spend(key, self._wire.overhead + DATAGRAM_OVERHEAD, now):
            return
        room = min(budget - used, self._budgets.available(key, now))
        extra = self._take_broadcasts(room) if room > COMPOUND_OVERHEAD else []
        if extra:
            self._budgets.spend(key, sum(len(m) + COMPOUND_OVERHEAD for m in extra), now)
        self._send(addr, [*batch, *extra], None)

    def _send_piggyback(self, addr: Address, msg: bytes) -> None:
        """Send a probe-type message of ours topped up with queued broadcasts.

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
