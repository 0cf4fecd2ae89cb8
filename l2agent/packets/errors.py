"""Errors of the packet codec: one exception type, a reason enum to count by."""

from __future__ import annotations

import enum

__all__ = ["MalformedPacket", "MalformedReason"]


class MalformedReason(enum.IntEnum):
    """Why a frame was rejected. Append only: values may be logged or exported."""

    TRUNCATED = 1
    BAD_ETHERTYPE = 2
    BAD_HW_TYPE = 3
    BAD_PROTO_TYPE = 4
    BAD_ADDR_LEN = 5
    BAD_OPCODE = 6
    BAD_VERSION = 7
    BAD_NEXT_HEADER = 8
    BAD_HOP_LIMIT = 9
    BAD_ICMP_TYPE = 10
    BAD_ICMP_CODE = 11
    BAD_CHECKSUM = 12
    BAD_OPTION = 13
    BAD_TARGET = 14
    BAD_ADDRESS = 15
    BAD_LENGTH = 16
    BAD_VLAN = 17


class MalformedPacket(ValueError):
    """A peer sent a frame we cannot accept (the peer's fault: log, count, carry on)."""

    def __init__(self, reason: MalformedReason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.name.lower()}: {detail}" if detail else reason.name.lower())
