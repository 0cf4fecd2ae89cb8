"""What the caller must do for the engine: the only way bytes leave it.

Packets are fire-and-forget UDP datagrams. Streams are TCP connections carrying one
request and at most one reply (memberlist's stream protocol); the engine names each
connection by an int `conn_id` and the runtime executes stream actions in order.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Address", "CloseStream", "OpenStream", "ReplyStream", "SendPacket", "StreamAction"]

Address = tuple[str, int]
"""(IP text, port)."""


@dataclass(frozen=True, slots=True)
class SendPacket:
    """Send `data` as one UDP datagram to `addr`."""

    addr: Address
    data: bytes


@dataclass(frozen=True, slots=True)
class OpenStream:
    """Dial `addr`, write `data`, then feed what is read to `Engine.handle_stream(conn_id)`.

    Report a failed dial, a reset or reaching `deadline` with `Engine.stream_failed`.
    """

    conn_id: int
    addr: Address
    data: bytes
    deadline: float


@dataclass(frozen=True, slots=True)
class ReplyStream:
    """Write `data` on the connection `conn_id`."""

    conn_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class CloseStream:
    """Close `conn_id` once its pending writes are flushed; no further input is expected."""

    conn_id: int


StreamAction = OpenStream | ReplyStream | CloseStream
