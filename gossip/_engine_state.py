"""The engine's bookkeeping values: counters, open streams, join batches."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from gossip.actions import Address
from gossip.errors import MalformedReason
from gossip.events import DropReason
from gossip.framing import StreamReader

__all__ = ["EngineCounters", "JoinBatch", "StreamKind", "StreamState"]


@dataclass(slots=True)
class EngineCounters:
    """What went in and out, and what was dropped and why."""

    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    messages_in: int = 0
    streams_in: int = 0
    streams_out: int = 0
    stream_bytes_in: int = 0
    stream_bytes_out: int = 0
    probes: int = 0
    probe_failures: int = 0
    refutations: int = 0
    """Times we were accused (suspect/dead about us) and refuted with a new incarnation."""
    drops: dict[DropReason, int] = field(default_factory=dict)
    malformed: dict[MalformedReason, int] = field(default_factory=dict)

    def drop(self, reason: DropReason) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1


class StreamKind(IntEnum):
    """Who opened a stream and why. Append only."""

    INBOUND = 0
    PUSH_PULL = 1
    TCP_PING = 2


@dataclass(slots=True)
class StreamState:
    """One open stream: its reader, deadline and what it is for."""

    conn_id: int
    kind: StreamKind
    peer: Address
    deadline: float
    reader: StreamReader
    size: int = 0
    join: bool = False
    batch: int | None = None
    seq: int = 0


@dataclass(slots=True)
class JoinBatch:
    """The push/pulls of one join() call."""

    pending: int
    succeeded: int = 0
    failed: list[Address] = field(default_factory=list)
