"""Classic BPF program so the kernel only wakes Python for ARP and ICMPv6 NS.

ARP replies pass too (they are rare on a LAN: answers to our own host's requests and other
stations' gratuitous replies), because another MAC claiming an IP we own shows up as one:
``decide`` reports it as an address conflict.

Kept as data (``PROGRAM``) plus packing helpers, and a small pure interpreter so tests can
run it without a socket.

VLAN handling: on Linux the receive path moves an 802.1Q tag into skb metadata before
packet sockets see the frame (``skb_vlan_untag``), so a tagged request normally reaches the
filter in the *untagged* layout, and the loop learns the VID from PACKET_AUXDATA. The
program therefore accepts by the untagged layout regardless of the metadata tag (it never
uses SKF_AD_VLAN_TAG_PRESENT: tagged requests are answered, tagged), and also accepts one
in-band 802.1Q tag for drivers or paths that leave the tag in the frame. Frames with
extension headers before ICMPv6 are rejected (``parse_ns`` does not follow them either).
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "ACCEPT_BYTES",
    "PROGRAM",
    "SO_ATTACH_FILTER",
    "BpfInsn",
    "SockFprog",
    "make_sock_fprog",
    "pack_program",
    "run_filter",
]

SO_ATTACH_FILTER = 26
ACCEPT_BYTES = 0x40000
"""Snap length returned on accept: more than any frame, so nothing is cut."""

# Opcode parts from linux/filter.h (classic BPF).
_LD, _LDX, _ALU, _JMP, _RET = 0x00, 0x01, 0x04, 0x05, 0x06
_W, _H, _B = 0x00, 0x08, 0x10
_ABS, _IND, _IMM = 0x20, 0x40, 0x00
_JA, _JEQ, _JGT, _JGE, _JSET = 0x00, 0x10, 0x20, 0x30, 0x40
_K, _X, _A = 0x00, 0x08, 0x10
_AND = 0x50

LDH_ABS = _LD | _H | _ABS
LDB_ABS = _LD | _B | _ABS
JEQ_K = _JMP | _JEQ | _K
RET_K = _RET | _K

_ETH_P_8021Q = 0x8100
_ETH_P_ARP = 0x0806
_ETH_P_IPV6 = 0x86DD
_ARPOP_REQUEST = 1
_ARPOP_REPLY = 2
_IPPROTO_ICMPV6 = 58
_ND_NEIGHBOR_SOLICIT = 135


class BpfInsn(NamedTuple):
    """One ``struct sock_filter``: opcode, jump-if-true, jump-if-false, constant."""

    code: int
    jt: int
    jf: int
    k: int


def _program() -> tuple[BpfInsn, ...]:
    """Assemble with labels so jump offsets cannot drift when the program changes."""
    # (label or None, code, jt label, jf label, k)
    src: list[tuple[str | None, int, str | None, str | None, int]] = []

    def ins(code: int, k: int, jt: str | None = None, jf: str | None = None, at: str = "") -> None:
        src.append((at or None, code, jt, jf, k))

    ins(LDH_ABS, 12)
    ins(JEQ_K, _ETH_P_8021Q, "tagged", None)
    for shift, prefix in ((0, ""), (4, "t_")):
        if shift:
            ins(LDH_ABS, 12 + shift, at="tagged")
        ins(JEQ_K, _ETH_P_ARP, f"{prefix}arp", None)
        ins(JEQ_K, _ETH_P_IPV6, f"{prefix}ip6", "reject")
        ins(LDH_ABS, 20 + shift, at=f"{prefix}arp")  # ARP op (14 + 6)
        ins(JEQ_K, _ARPOP_REQUEST, "accept", None)
        ins(JEQ_K, _ARPOP_REPLY, "accept", "reject")
        ins(LDB_ABS, 20 + shift, at=f"{prefix}ip6")  # IPv6 next header (14 + 6)
        ins(JEQ_K, _IPPROTO_ICMPV6, None, "reject")
        ins(LDB_ABS, 54 + shift)  # ICMPv6 type (14 + 40)
        ins(JEQ_K, _ND_NEIGHBOR_SOLICIT, "accept", "reject")
    ins(RET_K, ACCEPT_BYTES, at="accept")
    ins(RET_K, 0, at="reject")

    where = {label: i for i, (label, *_rest) in enumerate(src) if label}

    def rel(i: int, label: str | None) -> int:
        return 0 if label is None else where[label] - i - 1

    return tuple(
        BpfInsn(code, rel(i, jt), rel(i, jf), k) for i, (_, code, jt, jf, k) in enumerate(src)
    )


PROGRAM: tuple[BpfInsn, ...] = _program()
"""Accept ARP requests and replies and ICMPv6 Neighbor Solicitations, untagged or with one
802.1Q tag."""

_INSN = struct.Struct("=HBBI")


def pack_program(program: Sequence[BpfInsn] = PROGRAM) -> bytes:
    """The ``struct sock_filter`` array in native byte order."""
    return b"".join(_INSN.pack(*insn) for insn in program)


@dataclass(frozen=True, slots=True)
class SockFprog:
    """A ``struct sock_fprog`` and the buffer it points to (keep both alive while in use)."""

    buffer: ctypes.Array[ctypes.c_char]
    value: bytes


def make_sock_fprog(program: Sequence[BpfInsn] = PROGRAM) -> SockFprog:
    """Build the setsockopt(SOL_SOCKET, SO_ATTACH_FILTER, ...) argument for ``program``.

    The kernel copies the filter during setsockopt, so the buffer only has to outlive that
    call; returning it together with the struct makes that hard to get wrong.
    """
    buf = ctypes.create_string_buffer(pack_program(program))
    return SockFprog(buf, struct.pack("@HP", len(program), ctypes.addressof(buf)))


def run_filter(program: Sequence[BpfInsn], frame: bytes) -> int:
    """Interpret a classic BPF program over ``frame`` as the kernel would; returns the snap
    length (0 = drop). Supports loads, jumps, AND and returns; out-of-range loads drop."""
    a = x = 0
    pc = 0
    n = len(frame)
    while 0 <= pc < len(program):
        code, jt, jf, k = program[pc]
        pc += 1
        cls = code & 0x07
        if cls in (_LD, _LDX):
            mode, size = code & 0xE0, code & 0x18
            if mode == _IMM:
                value = k
            else:
                off = k + (x if mode == _IND else 0)
                width = {_W: 4, _H: 2, _B: 1}[size]
                if off < 0 or off + width > n:
                    return 0
                value = int.from_bytes(frame[off : off + width], "big")
            if cls == _LD:
                a = value
            else:
                x = value
        elif cls == _ALU and code & 0xF0 == _AND:
            a &= x if code & _X else k
        elif cls == _JMP:
            op = code & 0xF0
            if op == _JA:
                pc += k
                continue
            rhs = x if code & _X else k
            taken = {
                _JEQ: a == rhs,
                _JGT: a > rhs,
                _JGE: a >= rhs,
                _JSET: bool(a & rhs),
            }[op]
            pc += jt if taken else jf
        elif cls == _RET:
            return a if code & 0x18 == _A else k
        else:
            raise ValueError(f"unsupported BPF opcode {code:#x}")
    raise ValueError("BPF program ran off its end")
