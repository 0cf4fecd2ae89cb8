"""gossip: a hashicorp/memberlist-compatible membership library (SWIM + Lifeguard).

The core is sans-IO: `Engine` takes datagrams, stream bytes and the time, and returns
packets to send, stream actions and events; `gossip.aio.runtime` drives it on real sockets
and `gossip.sim` in virtual time. Wire format and algorithms follow memberlist 0.2.2-0.6.0.
"""

from gossip.actions import Address, CloseStream, OpenStream, ReplyStream, SendPacket, StreamAction
from gossip.config import GossipConfig, fast, lan, local, wan
from gossip.engine import Engine, EngineCounters
from gossip.errors import (
    DecryptFailed,
    GossipError,
    IncompatibleVersion,
    LocalError,
    MalformedMessage,
    MalformedReason,
)
from gossip.events import (
    DropReason,
    Event,
    JoinFinished,
    Member,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberRecovered,
    MemberState,
    MemberSuspected,
    MemberUpdated,
    ProtocolViolation,
    UndecryptableTraffic,
    UserMessage,
    ViolationsSuppressed,
)
from gossip.hooks import StateHooks
from gossip.keyring import Keyring, metallb_key

__all__ = [
    "Address",
    "CloseStream",
    "DecryptFailed",
    "DropReason",
    "Engine",
    "EngineCounters",
    "Event",
    "GossipConfig",
    "GossipError",
    "IncompatibleVersion",
    "JoinFinished",
    "Keyring",
    "LocalError",
    "MalformedMessage",
    "MalformedReason",
    "Member",
    "MemberFailed",
    "MemberJoined",
    "MemberLeft",
    "MemberRecovered",
    "MemberState",
    "MemberSuspected",
    "MemberUpdated",
    "OpenStream",
    "ProtocolViolation",
    "ReplyStream",
    "SendPacket",
    "StateHooks",
    "StreamAction",
    "UndecryptableTraffic",
    "UserMessage",
    "ViolationsSuppressed",
    "fast",
    "lan",
    "local",
    "metallb_key",
    "wan",
]
