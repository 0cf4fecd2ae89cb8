"""memberlist's wire messages as values.

One frozen dataclass per message that memberlist sends, with Python names for memberlist's
Go fields (the Go name is given on each). Bytes fields stay bytes (an address is 4 or 16 raw
bytes, as Go sends it) so a decoded message re-encodes to the same bytes. Each value checks
its ranges when built and raises `MalformedMessage(BAD_FIELD_VALUE)`: the codec builds these
from peer data, so a bad value there is the peer's fault.

Framing wrappers (compound, compress, CRC, label, encryption) are not messages here; they
live in `gossip.framing`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import IntEnum

from gossip.errors import MalformedMessage, MalformedReason

__all__ = [
    "DEFAULT_VSN",
    "META_MAX_SIZE",
    "PROTOCOL_VERSION_MAX",
    "PROTOCOL_VERSION_MIN",
    "AckResp",
    "Alive",
    "CompressionAlgo",
    "Dead",
    "ErrResp",
    "IndirectPingReq",
    "Message",
    "MessageType",
    "NackResp",
    "NodeState",
    "Ping",
    "PushNodeState",
    "PushPull",
    "PushPullHeader",
    "Suspect",
    "UserMsg",
    "UserMsgHeader",
    "addr_bytes",
    "addr_from_bytes",
]

PROTOCOL_VERSION_MIN = 1
"""Lowest memberlist protocol version we speak (Go's ProtocolVersionMin)."""
PROTOCOL_VERSION_MAX = 5
"""Highest memberlist protocol version we speak (Go's ProtocolVersionMax): CRC, nack, TCP ping."""
DEFAULT_VSN = bytes([1, 5, 2, 0, 0, 0])
"""[pmin, pmax, pcur, dmin, dmax, dcur] as every stock Go node advertises it."""
META_MAX_SIZE = 512
"""Go's MetaMaxSize: the largest node metadata a node may advertise."""

_U8 = 0xFF
_U16 = 0xFFFF
_U32 = 0xFFFF_FFFF
_INT_MAX = (1 << 63) - 1


class MessageType(IntEnum):
    """The first byte of every memberlist message. Append only (memberlist's iota order)."""

    PING = 0
    INDIRECT_PING = 1
    ACK_RESP = 2
    SUSPECT = 3
    ALIVE = 4
    DEAD = 5
    PUSH_PULL = 6
    COMPOUND = 7
    USER = 8
    COMPRESS = 9
    ENCRYPT = 10
    NACK_RESP = 11
    HAS_CRC = 12
    ERR = 13
    HAS_LABEL = 244


class NodeState(IntEnum):
    """pushNodeState.State and the member table's states. Append only."""

    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3


class CompressionAlgo(IntEnum):
    """compress.Algo. Append only."""

    LZW = 0


def _bad(detail: str) -> MalformedMessage:
    return MalformedMessage(MalformedReason.BAD_FIELD_VALUE, detail)


def _check_uint(name: str, value: int, limit: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise _bad(f"{name}={value!r} is not in 0..{limit}")


def _check_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _INT_MAX:
        raise _bad(f"{name}={value!r} is not a non-negative int")


def _check_addr(name: str, value: bytes, *, optional: bool = False) -> None:
    if optional and not value:
        return
    if len(value) not in (4, 16):
        raise _bad(f"{name} is {len(value)} bytes, want 4 or 16")


def _check_vsn(value: bytes) -> None:
    if len(value) != 6:
        raise _bad(f"Vsn is {len(value)} bytes, want 6")


def addr_bytes(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    """The wire form of an address: 4 bytes for IPv4 (what a Go node bound to an IP sends)."""
    return ip.packed


def addr_from_bytes(raw: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Parse a wire address; a v4-mapped 16-byte address becomes the IPv4 address."""
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw)
    if len(raw) == 16:
        v6 = ipaddress.IPv6Address(raw)
        return v6.ipv4_mapped or v6
    raise _bad(f"address is {len(raw)} bytes, want 4 or 16")


@dataclass(frozen=True, slots=True)
class Ping:
    """ping (type 0): a probe. `node` names the intended recipient ("" means anyone)."""

    seq_no: int  # SeqNo uint32
    node: str  # Node
    source_addr: bytes = b""  # SourceAddr (omitempty): the sender's advertise IP
    source_node: str = ""  # SourceNode (omitempty)
    source_port: int = 0  # SourcePort (omitempty)

    def __post_init__(self) -> None:
        _check_uint("SeqNo", self.seq_no, _U32)
        _check_uint("SourcePort", self.source_port, _U16)
        _check_addr("SourceAddr", self.source_addr, optional=True)


@dataclass(frozen=True, slots=True)
class IndirectPingReq:
    """indirectPingReq (type 1): ask a relay to ping `target` for us and echo our SeqNo."""

    seq_no: int  # SeqNo uint32 (the requester's)
    target: bytes  # Target: the target's IP
    port: int  # Port uint16
    node: str  # Node: the target's name
    nack: bool = False  # Nack: answer with nackResp if the target stays silent
    source_addr: bytes = b""  # SourceAddr (omitempty)
    source_node: str = ""  # SourceNode (omitempty)
    source_port: int = 0  # SourcePort (omitempty)

    def __post_init__(self) -> None:
        _check_uint("SeqNo", self.seq_no, _U32)
        _check_uint("Port", self.port, _U16)
        _check_uint("SourcePort", self.source_port, _U16)
        _check_addr("Target", self.target)
        _check_addr("SourceAddr", self.source_addr, optional=True)


@dataclass(frozen=True, slots=True)
class AckResp:
    """ackResp (type 2). An empty payload is sent as msgpack nil, as Go does without a delegate."""

    seq_no: int  # SeqNo uint32
    payload: bytes = b""  # Payload

    def __post_init__(self) -> None:
        _check_uint("SeqNo", self.seq_no, _U32)


@dataclass(frozen=True, slots=True)
class NackResp:
    """nackResp (type 11): a relay's "the target did not answer"."""

    seq_no: int  # SeqNo uint32

    def __post_init__(self) -> None:
        _check_uint("SeqNo", self.seq_no, _U32)


@dataclass(frozen=True, slots=True)
class Suspect:
    """suspect (type 3): `from_node` suspects `node` at `incarnation`."""

    incarnation: int  # Incarnation uint32
    node: str  # Node
    from_node: str  # From

    def __post_init__(self) -> None:
        _check_uint("Incarnation", self.incarnation, _U32)


@dataclass(frozen=True, slots=True)
class Alive:
    """alive (type 4): `node` is alive at `incarnation` on addr:port with meta and Vsn."""

    incarnation: int  # Incarnation uint32
    node: str  # Node
    addr: bytes  # Addr: 4 or 16 bytes
    port: int  # Port uint16
    meta: bytes = b""  # Meta: empty is sent as nil; Go limits its own to 512 bytes
    vsn: bytes = DEFAULT_VSN  # Vsn: exactly 6 bytes

    def __post_init__(self) -> None:
        _check_uint("Incarnation", self.incarnation, _U32)
        _check_uint("Port", self.port, _U16)
        _check_addr("Addr", self.addr)
        _check_vsn(self.vsn)


@dataclass(frozen=True, slots=True)
class Dead:
    """dead (type 5): `node` is dead; `from_node == node` means it left on purpose."""

    incarnation: int  # Incarnation uint32
    node: str  # Node
    from_node: str  # From

    def __post_init__(self) -> None:
        _check_uint("Incarnation", self.incarnation, _U32)

    @property
    def is_leave(self) -> bool:
        """A node announcing its own death is a graceful leave."""
        return self.from_node == self.node


@dataclass(frozen=True, slots=True)
class PushPullHeader:
    """pushPullHeader: the head of a push/pull stream (type 6)."""

    nodes: int  # Nodes int: number of pushNodeState values that follow
    user_state_len: int  # UserStateLen int: raw bytes after the states
    join: bool  # Join

    def __post_init__(self) -> None:
        _check_int("Nodes", self.nodes)
        _check_int("UserStateLen", self.user_state_len)


@dataclass(frozen=True, slots=True)
class PushNodeState:
    """pushNodeState: one member table entry in a push/pull."""

    name: str  # Name
    addr: bytes  # Addr
    port: int  # Port uint16
    meta: bytes  # Meta
    incarnation: int  # Incarnation uint32
    state: NodeState  # State int
    vsn: bytes = DEFAULT_VSN  # Vsn: exactly 6 bytes

    def __post_init__(self) -> None:
        _check_uint("Incarnation", self.incarnation, _U32)
        _check_uint("Port", self.port, _U16)
        _check_addr("Addr", self.addr)
        _check_vsn(self.vsn)
        if not isinstance(self.state, NodeState):
            raise _bad(f"State={self.state!r} is not a NodeState")


@dataclass(frozen=True, slots=True)
class PushPull:
    """A whole push/pull (type 6): header, every state, then the delegate's raw user state."""

    join: bool
    states: tuple[PushNodeState, ...]
    user_state: bytes = b""

    @property
    def header(self) -> PushPullHeader:
        return PushPullHeader(
            nodes=len(self.states), user_state_len=len(self.user_state), join=self.join
        )


@dataclass(frozen=True, slots=True)
class UserMsgHeader:
    """userMsgHeader: the length of the raw bytes of a user message on a stream (type 8)."""

    user_msg_len: int  # UserMsgLen int

    def __post_init__(self) -> None:
        _check_int("UserMsgLen", self.user_msg_len)


@dataclass(frozen=True, slots=True)
class UserMsg:
    """A user message (type 8): raw bytes to the end of a packet, or header + bytes on a stream."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class ErrResp:
    """errResp (type 13): a stream responder's error text."""

    error: str  # Error


Message = (
    Ping
    | IndirectPingReq
    | AckResp
    | NackResp
    | Suspect
    | Alive
    | Dead
    | PushPull
    | UserMsg
    | ErrResp
)
"""Every message the codec encodes and decodes (framing wrappers excluded)."""
