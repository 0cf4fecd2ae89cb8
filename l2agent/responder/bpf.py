"""Classic BPF as data: an assembler with labels, the packing for ``SO_ATTACH_FILTER``, a
small interpreter (so tests can run a program without a socket), and ``PROGRAM``, the
pass-every-request program the responder falls back to.

The program the responder normally attaches is generated from the owned set by
``l2agent.responder.filter``; ``PROGRAM`` is what it uses when that would not fit the kernel's
4096-instruction limit. ``PROGRAM`` accepts ARP requests and replies (another MAC claiming
an IP we own shows up as one: ``decide`` reports it as an address conflict) and ICMPv6
Neighbor Solicitations.

VLAN handling: on Linux the receive path moves an 802.1Q tag into skb metadata before
packet sockets see the frame (``skb_vlan_untag``), so a tagged request normally reaches the
filter in the *untagged* layout, and the loop learns the VID from the ring's frame header.
Programs therefore accept by the untagged layout regardless of the metadata tag (they never
use SKF_AD_VLAN_TAG_PRESENT: tagged requests are answered, tagged), and also accept one
in-band 802.1Q tag for paths that leave the tag in the frame. Frames with extension headers
before ICMPv6 are rejected (``parse_ns`` does not follow them either).
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

__all__ = [
    "ACCEPT_BYTES",
    "MAX_INSNS",
    "PROGRAM",
    "SO_ATTACH_FILTER",
    "Assembler",
    "BpfInsn",
    "SockFprog",
    "attach_filter",
    "make_sock_fprog",
    "pack_program",
    "run_filter",
]

SO_ATTACH_FILTER = 26
_SOL_SOCKET = 1
ACCEPT_BYTES = 0x40000
"""Snap length returned on accept: more than any frame, so nothing is cut."""
MAX_INSNS = 4096
"""BPF_MAXINSNS: the kernel refuses longer classic programs."""

# Opcode parts from linux/filter.h (classic BPF).
_LD, _LDX, _ST, _STX, _ALU, _JMP, _RET, _MISC = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07
_W, _H, _B = 0x00, 0x08, 0x10
_IMM, _ABS, _IND, _MEM = 0x00, 0x20, 0x40, 0x60
_JA, _JEQ, _JGT, _JGE, _JSET = 0x00, 0x10, 0x20, 0x30, 0x40
_K, _X, _A = 0x00, 0x08, 0x10
_AND = 0x50
_TAX, _TXA = 0x00, 0x80
_MEMWORDS = 16

LD_W_ABS = _LD | _W | _ABS
LDH_ABS = _LD | _H | _ABS
LDB_ABS = _LD | _B | _ABS
LD_W_IND = _LD | _W | _IND
LDH_IND = _LD | _H | _IND
LDB_IND = _LD | _B | _IND
LDX_IMM = _LDX | _W | _IMM
LDX_MEM = _LDX | _W | _MEM
ST = _ST
STX = _STX
JA = _JMP | _JA
JEQ_K = _JMP | _JEQ | _K
JEQ_X = _JMP | _JEQ | _X
JGT_K = _JMP | _JGT | _K
JGE_K = _JMP | _JGE | _K
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


class Assembler:
    """Build a classic BPF program with symbolic labels.

    Jumps go forward only (classic BPF has no backward jumps). A conditional jump whose
    target lies more than 255 instructions ahead cannot be encoded; ``assemble`` then adds
    ``ja`` trampolines right after it (32-bit offsets) and repeats until every jump fits,
    so generators can write trees and chains without counting instructions.
    """

    def __init__(self) -> None:
        self._src: list[tuple[int, str | None, str | None, int, str | None]] = []
        self._labels: dict[str, int] = {}
        self._fresh = 0

    def label(self, name: str) -> None:
        """``name`` is the address of the next instruction."""
        if name in self._labels:
            raise ValueError(f"label {name!r} defined twice")
        self._labels[name] = len(self._src)

    def fresh(self, hint: str = "L") -> str:
        """A label name not used before."""
        self._fresh += 1
        return f"{hint}#{self._fresh}"

    def op(self, code: int, k: int = 0) -> None:
        """A non-jump instruction (load, store, ALU, return)."""
        self._src.append((code, None, None, k, None))

    def jump(self, code: int, k: int, jt: str | None, jf: str | None) -> None:
        """A conditional jump; ``None`` means the next instruction."""
        self._src.append((code, jt, jf, k, None))

    def goto(self, target: str) -> None:
        """An unconditional jump (``ja``)."""
        self._src.append((JA, None, None, 0, target))

    def __len__(self) -> int:
        return len(self._src)

    def assemble(self) -> tuple[BpfInsn, ...]:
        """Resolve labels (adding trampolines where needed) into instructions."""
        src = self._src
        n = len(src)
        labels = self._labels
        missing = {t for _c, jt, jf, _k, ja in src for t in (jt, jf, ja) if t is not None}
        missing -= labels.keys()
        if missing:
            raise ValueError(f"undefined labels: {sorted(missing)}")
        # Targets as source indices (n = the end); None = the next instruction.
        jts = [None if jt is None else labels[jt] for _c, jt, _f, _k, _a in src]
        jfs = [None if jf is None else labels[jf] for _c, _t, jf, _k, _a in src]
        far_t = [False] * n  # this jump's jt goes through a trampoline ``ja``
        far_f = [False] * n
        while True:
            # Layout: each source instruction, then its trampolines (jt's first, then jf's).
            start = [0] * (n + 1)
            pos = 0
            for i in range(n):
                start[i] = pos
                pos += 1 + far_t[i] + far_f[i]
            start[n] = pos
            grew = False
            for i in range(n):
                limit = start[i] + 256
                t = jts[i]
                if t is not None and not far_t[i] and start[t] > limit:
                    far_t[i] = grew = True
                f = jfs[i]
                if f is not None and not far_f[i] and start[f] > limit:
                    far_f[i] = grew = True
            if not grew:
                break
        out: list[BpfInsn] = []
        for i, (code, _jt, _jf, k, ja) in enumerate(src):
            here = start[i]
            if ja is not None:
                out.append(BpfInsn(JA, 0, 0, start[labels[ja]] - here - 1))
                continue
            if code & 0x07 != _JMP:
                out.append(BpfInsn(code, 0, 0, k))
                continue
            after = here + 1 + far_t[i] + far_f[i]  # past this jump and its trampolines
            t = after if jts[i] is None else start[jts[i]]  # type: ignore[index]
            f = after if jfs[i] is None else start[jfs[i]]  # type: ignore[index]
            slot = here + 1
            jt_off = t - here - 1
            if far_t[i]:
                jt_off, slot = slot - here - 1, slot + 1
            jf_off = f - here - 1
            if far_f[i]:
                jf_off = slot - here - 1
            out.append(BpfInsn(code, jt_off, jf_off, k))
            if far_t[i]:
                out.append(BpfInsn(JA, 0, 0, t - (here + 1) - 1))
            if far_f[i]:
                out.append(BpfInsn(JA, 0, 0, f - (here + 1 + far_t[i]) - 1))
        return tuple(out)


def _program() -> tuple[BpfInsn, ...]:
    asm = Assembler()
    asm.op(LDH_ABS, 12)
    asm.jump(JEQ_K, _ETH_P_8021Q, "tagged", None)
    for shift, prefix in ((0, ""), (4, "t_")):
        if shift:
            asm.label("tagged")
            asm.op(LDH_ABS, 12 + shift)
        asm.jump(JEQ_K, _ETH_P_ARP, f"{prefix}arp", None)
        asm.jump(JEQ_K, _ETH_P_IPV6, f"{prefix}ip6", "reject")
        asm.label(f"{prefix}arp")
        asm.op(LDH_ABS, 20 + shift)  # ARP op (14 + 6)
        asm.jump(JEQ_K, _ARPOP_REQUEST, "accept", None)
        asm.jump(JEQ_K, _ARPOP_REPLY, "accept", "reject")
        asm.label(f"{prefix}ip6")
        asm.op(LDB_ABS, 20 + shift)  # IPv6 next header (14 + 6)
        asm.jump(JEQ_K, _IPPROTO_ICMPV6, None, "reject")
        asm.op(LDB_ABS, 54 + shift)  # ICMPv6 type (14 + 40)
        asm.jump(JEQ_K, _ND_NEIGHBOR_SOLICIT, "accept", "reject")
    asm.label("accept")
    asm.op(RET_K, ACCEPT_BYTES)
    asm.label("reject")
    asm.op(RET_K, 0)
    return asm.assemble()


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


class _Setsockopt(Protocol):
    def setsockopt(self, level: int, option: int, value: bytes, /) -> None: ...


def attach_filter(sock: _Setsockopt, program: Sequence[BpfInsn]) -> None:
    """``setsockopt(SOL_SOCKET, SO_ATTACH_FILTER)``: attach ``program`` to ``sock``, or
    replace the program attached before in one step (the kernel swaps the pointer under
    RCU: every frame meets either the old or the new program, none meets neither)."""
    fprog = make_sock_fprog(program)  # the kernel copies the array during the call
    sock.setsockopt(_SOL_SOCKET, SO_ATTACH_FILTER, fprog.value)


def run_filter(program: Sequence[BpfInsn], frame: bytes) -> int:
    """Interpret a classic BPF program over ``frame`` as the kernel would; returns the snap
    length (0 = drop). Supports loads (absolute, indexed, immediate, scratch memory), stores,
    jumps, AND, TAX/TXA and returns; an out-of-range packet load drops the frame."""
    a = x = 0
    mem = [0] * _MEMWORDS
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
            elif mode == _MEM:
                value = mem[k]
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
        elif cls == _ST:
            mem[k] = a
        elif cls == _STX:
            mem[k] = x
        elif cls == _MISC:
            if code & 0xF8 == _TAX:
                x = a
            else:
                a = x
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
