"""Errors of the gossip package.

A peer's fault (bad bytes, wrong key, incompatible versions) is a `MalformedMessage`:
callers log it, count it by `reason`, and carry on. Our own fault or bad configuration is a
`LocalError`. Both derive from `GossipError` so a caller can catch the package's errors at once.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "DecryptFailed",
    "GossipError",
    "IncompatibleVersion",
    "LocalError",
    "MalformedInput",
    "MalformedMessage",
    "MalformedReason",
]


class MalformedReason(IntEnum):
    """Why received bytes were dropped (also the label of a drop counter). Append only."""

    EMPTY = 0  # no bytes where a message was expected
    UNKNOWN_TYPE = 1  # type byte that memberlist does not define (or not valid in this place)
    TRUNCATED = 2  # the bytes end before the message does
    BAD_MSGPACK = 3  # not decodable msgpack
    BAD_FIELD_TYPE = 4  # a field has the wrong msgpack type (e.g. a map where an int belongs)
    BAD_FIELD_VALUE = 5  # a field is out of range (uint32 overflow, Vsn not 6 bytes, bad UTF-8)
    TOO_LARGE = 6  # a declared or decoded length passes our limits
    BAD_CRC = 7  # hasCrc wrapper whose checksum does not match
    BAD_COMPOUND = 8  # compound header that is inconsistent (zero parts, lying lengths)
    BAD_COMPRESSION = 9  # unknown algorithm or corrupt LZW stream
    BAD_LABEL = 10  # malformed label header (zero length, truncated)
    LABEL_MISMATCH = 11  # label differs from ours, or present/absent when it must not be
    DECRYPT_FAILED = 12  # no installed key opens the envelope, or envelope malformed
    UNENCRYPTED = 13  # plaintext received while encryption with verify-incoming is on
    NESTING_TOO_DEEP = 14  # compress/compound wrappers nested beyond our limit
    INCOMPATIBLE_VERSION = 15  # protocol/delegate version range check failed
    REMOTE_ERROR = 16  # the peer answered a stream with errResp
    UNEXPECTED_MESSAGE = 17  # a valid message that does not belong here (e.g. ack to a push)


class GossipError(Exception):
    """Base class of every error raised by the gossip package."""


class MalformedMessage(GossipError, ValueError):
    """Bytes from a peer that we cannot accept; `reason` says why, `detail` says more."""

    def __init__(self, reason: MalformedReason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.name.lower()}: {detail}" if detail else reason.name.lower())


MalformedInput = MalformedMessage
"""The house name for "a peer's fault"; the same class."""


class IncompatibleVersion(MalformedMessage):
    """A peer's protocol or delegate version range does not overlap ours."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(MalformedReason.INCOMPATIBLE_VERSION, detail)


class DecryptFailed(MalformedMessage):
    """No installed key opens the envelope (wrong key, corrupt or truncated envelope)."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(MalformedReason.DECRYPT_FAILED, detail)


class LocalError(GossipError):
    """Our own fault: bad configuration, a message too big to send, an invalid key."""


class BadAddress(LocalError, ValueError):
    """An address text (`HOST[:PORT]`) that does not parse (`gossip.addresses`)."""
