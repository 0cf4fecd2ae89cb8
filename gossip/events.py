"""What happened, as values the caller drains with `Engine.next_event()`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from gossip.actions import Address
from gossip.messages import NodeState

__all__ = [
    "DropReason",
    "Event",
    "JoinFinished",
    "Member",
    "MemberFailed",
    "MemberJoined",
    "MemberLeft",
    "MemberRecovered",
    "MemberState",
    "MemberSuspected",
    "MemberUpdated",
    "ProbeAcked",
    "ProtocolViolation",
    "Refuted",
    "UndecryptableTraffic",
    "UserMessage",
    "ViolationsSuppressed",
]

MemberState = NodeState
"""alive 0, suspect 1, dead 2, left 3 (the wire numbers)."""


class DropReason(IntEnum):
    """Why the engine dropped input that decoded (or failed to). Append only.

    Decoding failures carry the codec's `MalformedReason`; these are the engine's own.
    """

    MALFORMED = 0  # see EngineCounters.malformed for the codec's reason
    UNEXPECTED_MESSAGE = 1  # valid message in the wrong place (push/pull over UDP, ...)
    PING_NOT_FOR_US = 2  # ping naming another node
    UNKNOWN_ACK = 3  # ack or nack for a sequence number we are not waiting on
    HANDOFF_FULL = 4  # more gossip messages in one burst than handoff_queue_depth
    TOO_MANY_STREAMS = 5  # inbound streams beyond max_inbound_streams
    STREAM_TIMEOUT = 6  # a stream stalled past its deadline
    STREAM_TOO_LARGE = 7  # a stream buffered more than max_stream_bytes
    STREAM_EOF = 8  # a stream ended before a whole message arrived
    UNKNOWN_STREAM = 9  # input for a conn_id we do not know (already closed)
    INCOMPATIBLE_VERSION = 10  # push/pull failing the version-range check
    BAD_VSN = 11  # alive with an impossible protocol range
    ADDRESS_CONFLICT = 12  # alive for a known name from another address
    REMOTE_ERROR = 13  # peer answered our stream with errResp
    OVERSIZED_META = 14  # set_meta larger than 512 bytes (local misuse)
    NOT_ALLOWED = 15  # alive from or about an address outside cidrs_allowed
    TABLE_FULL = 16  # alive for a new member while the table holds max_members
    STREAM_BUFFER_FULL = 17  # the stream holding the most bytes, when all together hold too many
    TOO_MANY_MESSAGES = 18  # datagram parts beyond max_messages_per_packet
    RATE_LIMITED = 19  # datagram from a source past its messages or bytes per second
    REPLY_BUDGET = 20  # an answer that would send a source more than reply_amplification x
    THIRD_PARTY_ADDRESS = 21  # ping/indirect ping asking for replies at someone else's address
    UNKNOWN_TARGET = 22  # indirect ping for a target we do not know at that address
    INCARNATION_EXHAUSTED = 23  # suspect/dead at incarnation 2^32-1: could never be refuted


@dataclass(frozen=True, slots=True)
class Member:
    """A snapshot of one member table entry."""

    name: str
    addr: str
    port: int
    meta: bytes
    incarnation: int
    state: NodeState
    vsn: tuple[int, ...]

    @property
    def address(self) -> Address:
        return (self.addr, self.port)


@dataclass(frozen=True, slots=True)
class MemberJoined:
    """A member became alive (new, or back from dead/left): memberlist's NotifyJoin."""

    member: Member
    at: float


@dataclass(frozen=True, slots=True)
class MemberUpdated:
    """An alive member changed its meta (NotifyUpdate)."""

    member: Member
    at: float


@dataclass(frozen=True, slots=True)
class MemberLeft:
    """A member left gracefully (dead message from itself): NotifyLeave."""

    member: Member
    at: float


@dataclass(frozen=True, slots=True)
class MemberFailed:
    """A member was declared dead (NotifyLeave for a failure); emitted at that instant."""

    member: Member
    at: float


@dataclass(frozen=True, slots=True)
class MemberSuspected:
    """We started suspecting a member (extension; memberlist has no such event)."""

    member: Member
    by: str
    at: float


@dataclass(frozen=True, slots=True)
class MemberRecovered:
    """A suspected member refuted and is alive again (extension)."""

    member: Member
    at: float


@dataclass(frozen=True, slots=True)
class UserMessage:
    """A user message (gossiped broadcast or direct), `reliable` if it came over TCP."""

    data: bytes
    src: Address | None
    reliable: bool
    at: float


@dataclass(frozen=True, slots=True)
class JoinFinished:
    """Every push/pull started by one `join()` call has ended.

    `batch` is the number `Engine.join` returned, so a caller with several joins in flight
    resolves each wait with its own result.
    """

    batch: int
    succeeded: int
    failed: tuple[Address, ...]
    at: float


@dataclass(frozen=True, slots=True)
class Refuted:
    """Someone accused us (suspect or dead) and we refuted with `incarnation` (extension)."""

    incarnation: int
    at: float


@dataclass(frozen=True, slots=True)
class ProbeAcked:
    """A direct probe of ours was acked after `rtt` seconds (extension; feeds RTT metrics)."""

    name: str
    rtt: float
    at: float


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    """Input dropped because it was bad; also counted in `Engine.counters`."""

    reason: DropReason
    detail: str
    src: Address | None
    at: float


@dataclass(frozen=True, slots=True)
class ViolationsSuppressed:
    """Violations not reported one by one since `since` (the rate limit held them back):
    counts by reason, and the sources that sent the most (IP, count)."""

    counts: tuple[tuple[DropReason, int], ...]
    sources: tuple[tuple[str, int], ...]
    since: float
    at: float

    @property
    def total(self) -> int:
        return sum(n for _, n in self.counts)


@dataclass(frozen=True, slots=True)
class UndecryptableTraffic:
    """`src_ip` sent what no installed key opens (or plaintext while we encrypt): someone
    nearby runs with another key. Emitted once per source, again after a quiet minute."""

    src_ip: str
    count: int
    at: float


Event = (
    MemberJoined
    | MemberUpdated
    | MemberLeft
    | MemberFailed
    | MemberSuspected
    | MemberRecovered
    | UserMessage
    | JoinFinished
    | Refuted
    | ProbeAcked
    | ProtocolViolation
    | ViolationsSuppressed
    | UndecryptableTraffic
)
