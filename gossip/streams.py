"""The engine's TCP streams: ids, deadlines, parsers, and the memory they may hold.

Every stream carries one message each way (spec §6) and is parsed incrementally by a
`StreamParser` with a work budget per call, so no stream costs one call more than its
budget. Memory is bounded three ways: a stream may hold at most `max_stream_bytes`
(memberlist's 20 MiB; an encrypted envelope declaring more is refused at its header), all
streams together at most `max_stream_buffer_total` (past it the stream holding the most is
dropped: an attacker streaming zeros loses its stream, a small push/pull keeps going), and
each stream lives at most `tcp_timeout`. At `max_inbound_streams` the oldest inbound
stream makes room for a new one, so slow connections cannot lock out real peers.

The table knows nothing of what messages mean: the engine dispatches what `receive` and
`continue_work` return, and says when a stream ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

from gossip._wire import Wire
from gossip.actions import Address, CloseStream, OpenStream, ReplyStream, StreamAction
from gossip.config import GossipConfig
from gossip.errors import MalformedMessage
from gossip.stream_parser import StreamLimits, StreamMessage, StreamParser

__all__ = ["StreamKind", "StreamState", "StreamTable"]


class StreamKind(IntEnum):
    """Who opened a stream and why. Append only."""

    INBOUND = 0
    PUSH_PULL = 1
    TCP_PING = 2


@dataclass(slots=True)
class StreamState:
    """One open stream: its parser, deadline and what it is for."""

    conn_id: int
    kind: StreamKind
    peer: Address
    deadline: float
    parser: StreamParser
    held: int = 0
    join: bool = False
    batch: int | None = None
    seq: int = 0

    @property
    def inbound(self) -> bool:
        return self.kind is StreamKind.INBOUND


class StreamTable:
    """Open streams by conn_id; stream actions queue up in `actions` for the engine."""

    def __init__(self, config: GossipConfig, wire: Wire) -> None:
        self._config = config
        self._wire = wire
        self._limits = StreamLimits(
            max_bytes=config.max_stream_bytes,
            max_decompressed=2 * config.max_stream_bytes,
            max_states=min(config.max_push_nodes, config.max_members),
        )
        self._streams: dict[int, StreamState] = {}
        self._inbound = 0
        self._conn_seq = 0
        self.held = 0
        """Bytes all streams hold together (kept under `max_stream_buffer_total`)."""
        self.actions: list[StreamAction] = []

    def __len__(self) -> int:
        return len(self._streams)

    def __contains__(self, conn_id: int) -> bool:
        return conn_id in self._streams

    def get(self, conn_id: int) -> StreamState | None:
        return self._streams.get(conn_id)

    def values(self) -> Iterator[StreamState]:
        return iter(list(self._streams.values()))

    def new_conn(self) -> int:
        self._conn_seq += 1
        return self._conn_seq

    # ------------------------------------------------------------------ opening

    def accept(self, peer: Address, now: float) -> tuple[int, StreamState | None]:
        """Register an inbound connection; at the limit the oldest inbound one is returned
        for the engine to drop (it makes room)."""
        conn_id = self.new_conn()
        evicted = None
        if self._inbound >= self._config.max_inbound_streams:
            evicted = next((s for s in self._streams.values() if s.inbound), None)
            if evicted is None:
                self.actions.append(CloseStream(conn_id))
                return conn_id, None
            self.end(evicted)
        parser = StreamParser(self._wire.options, expect_label=True, limits=self._limits)
        deadline = now + self._config.tcp_timeout
        self._streams[conn_id] = StreamState(conn_id, StreamKind.INBOUND, peer, deadline, parser)
        self._inbound += 1
        return conn_id, evicted

    def dial(
        self,
        kind: StreamKind,
        addr: Address,
        data: bytes,
        deadline: float,
        *,
        join: bool = False,
        batch: int | None = None,
        seq: int = 0,
    ) -> StreamState:
        """Open an outbound stream that writes `data` and then reads one reply."""
        conn_id = self.new_conn()
        parser = StreamParser(self._wire.options, expect_label=False, limits=self._limits)
        st = StreamState(conn_id, kind, addr, deadline, parser, join=join, batch=batch, seq=seq)
        self._streams[conn_id] = st
        self.actions.append(OpenStream(conn_id, addr, data, deadline))
        return st

    def send_once(self, addr: Address, data: bytes, deadline: float) -> None:
        """A one-way stream (reliable user message): open, write, close."""
        conn_id = self.new_conn()
        self.actions.append(OpenStream(conn_id, addr, data, deadline))
        self.actions.append(CloseStream(conn_id))

    def reply(self, st: StreamState, data: bytes) -> None:
        self.actions.append(ReplyStream(st.conn_id, data))

    # ------------------------------------------------------------------ reading

    def receive(self, st: StreamState, data: bytes, budget: int) -> StreamMessage | None:
        """Feed bytes and parse up to `budget`; MalformedMessage if they cannot be a
        message. The caller checks `over_budget()` afterwards."""
        try:
            st.parser.feed(data)
            return st.parser.step(budget)
        finally:
            self._account(st)

    def continue_work(
        self, budget: int
    ) -> list[tuple[StreamState, StreamMessage | MalformedMessage | None]]:
        """Parse more of the streams whose last step ran out of budget, sharing `budget`
        among them; each with its message, its error, or None (not complete yet)."""
        busy = [s for s in self._streams.values() if s.parser.has_work]
        out: list[tuple[StreamState, StreamMessage | MalformedMessage | None]] = []
        share = max(budget // max(len(busy), 1), 1024)
        for st in busy:
            if budget <= 0:
                break
            got: StreamMessage | MalformedMessage | None
            try:
                got = st.parser.step(min(share, budget))
            except MalformedMessage as exc:
                got = exc
            self._account(st)
            budget -= max(st.parser.spent, 1)
            out.append((st, got))
        return out

    @property
    def has_work(self) -> bool:
        return any(s.parser.has_work for s in self._streams.values())

    def _account(self, st: StreamState) -> None:
        held = st.parser.held if st.conn_id in self._streams else 0
        self.held += held - st.held
        st.held = held

    def over_budget(self) -> StreamState | None:
        """The stream holding the most bytes if all together hold too many, else None."""
        if self.held <= self._config.max_stream_buffer_total:
            return None
        return max(self._streams.values(), key=lambda s: s.held, default=None)

    # ------------------------------------------------------------------ ending

    def end(self, st: StreamState, close: bool = True) -> bool:
        """Forget a stream (and close it unless the runtime already did); False if gone."""
        if self._streams.pop(st.conn_id, None) is None:
            return False
        if st.inbound:
            self._inbound -= 1
        self.held -= st.held
        st.held = 0
        if close:
            self.actions.append(CloseStream(st.conn_id))
        return True

    def expired(self, now: float) -> list[StreamState]:
        return [s for s in self._streams.values() if now >= s.deadline]

    def next_deadline(self) -> float | None:
        if not self._streams:
            return None
        return min(s.deadline for s in self._streams.values())
