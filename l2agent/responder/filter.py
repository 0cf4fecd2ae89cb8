"""The kernel filter for one interface, generated from the IPs it answers for.

Only frames ``decide`` could act on wake Python: an ARP request for an owned target (to
our MAC or broadcast), an ARP frame whose sender claims an owned IP from another MAC (an
address conflict), and a Neighbor Solicitation (ICMPv6 type 135, code 0, hop limit 255,
to our MAC, broadcast or the IPv6 destination's multicast MAC) for an owned target, DAD or
not. A scan or a busy subnet asking for addresses nobody here owns is dropped in the
kernel, with our own looped-back frames.

What the filter cannot check (the NS checksum, option walk, IPv6 version and payload
length, DAD's destination rule, the reserved VID 4095, a short ARP sender-only frame), it
lets through: ``decide`` stays the judge and drops those as malformed. So the filter's
contract, tested against ``decide`` on a real socket: every frame ``decide`` would answer
or flag passes; every frame that passes and ``decide`` ignores is malformed.

Owned sets are searched as balanced trees of 32-bit comparisons (``jgt`` to split, a short
``jeq`` chain per leaf), IPv6 targets grouped by their upper 96 bits. When the exact program
would exceed the kernel's 4096 instructions, the ARP sender check becomes a range check
(``Coverage.SENDER_RANGE``: conflicts are still seen, a few more frames pass); when even
that does not fit, the pass-everything ``PROGRAM`` is used (``Coverage.PASS_ALL``) and the
caller counts it in a metric.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from l2agent.model.types import IPAddress
from l2agent.responder.bpf import (
    ACCEPT_BYTES,
    JEQ_K,
    JEQ_X,
    JGE_K,
    JGT_K,
    LD_W_ABS,
    LD_W_IND,
    LDB_IND,
    LDH_ABS,
    LDH_IND,
    LDX_IMM,
    LDX_MEM,
    MAX_INSNS,
    PROGRAM,
    RET_K,
    ST,
    STX,
    Assembler,
    BpfInsn,
)

__all__ = ["Coverage", "OwnedFilter", "owned_filter"]

_LEAF = 16
"""Keys compared one by one at the bottom of a tree (a chain of ``jeq``)."""

_ETH_P_8021Q = 0x8100
_ETH_P_ARP = 0x0806
_ETH_P_IPV6 = 0x86DD
_ARP_ETHER_IPV4 = 0x00010800  # hardware type 1, protocol type 0x0800
_ARP_LENGTHS = 0x0604  # hardware address length 6, protocol address length 4


class Coverage(enum.Enum):
    """How closely the attached program matches ``decide``."""

    EXACT = "exact"
    """Only what ``decide`` answers or flags (and malformed frames it must judge) passes."""
    SENDER_RANGE = "senderRange"
    """As EXACT, but ARP frames whose sender lies between the lowest and the highest owned
    IPv4 address pass for the conflict check (the program would not fit otherwise)."""
    PASS_ALL = "passAll"
    """Every ARP request and reply and every NS passes (too many owned IPs for 4096
    instructions): the metric for it says the kernel no longer filters."""


@dataclass(frozen=True, slots=True)
class OwnedFilter:
    """The program to attach, and how much of ``decide`` it covers."""

    program: tuple[BpfInsn, ...]
    coverage: Coverage
    exact_size: int
    """Instructions the exact program needed (more than ``MAX_INSNS`` unless EXACT; a lower
    bound when it was too long to assemble)."""


def owned_filter(
    mac: bytes, owned: Collection[IPAddress], max_insns: int = MAX_INSNS
) -> OwnedFilter:
    """The filter for an interface with MAC ``mac`` answering for ``owned``."""
    if len(mac) != 6:
        raise ValueError("MAC must be 6 bytes")
    v4 = sorted({int(ip) for ip in owned if isinstance(ip, IPv4Address)})
    v6 = sorted({int(ip) for ip in owned if isinstance(ip, IPv6Address)})
    exact_size = 0
    for coverage, sender_tree in ((Coverage.EXACT, True), (Coverage.SENDER_RANGE, False)):
        asm = _build(mac, v4, v6, sender_tree=sender_tree)
        # Trampolines only add instructions: a source already too long is not assembled.
        program = asm.assemble() if len(asm) <= max_insns else None
        size = len(program) if program is not None else len(asm)
        if coverage is Coverage.EXACT:
            exact_size = size
        if program is not None and size <= max_insns:
            return OwnedFilter(program, coverage, exact_size)
    return OwnedFilter(PROGRAM, Coverage.PASS_ALL, exact_size)


def _build(mac: bytes, v4: Sequence[int], v6: Sequence[int], *, sender_tree: bool) -> Assembler:
    mac_hi = int.from_bytes(mac[:4], "big")
    mac_lo = int.from_bytes(mac[4:], "big")
    asm = Assembler()
    # X = 4 with one in-band 802.1Q tag, else 0: every later load is [x + untagged offset].
    asm.op(LDH_ABS, 12)
    asm.jump(JEQ_K, _ETH_P_8021Q, None, "untagged")
    asm.op(LDX_IMM, 4)
    asm.goto("own?")
    asm.label("untagged")
    asm.op(LDX_IMM, 0)
    # Our own frames (looped back by some drivers) are never read.
    asm.label("own?")
    asm.op(LD_W_ABS, 6)
    asm.jump(JEQ_K, mac_hi, None, "type")
    asm.op(LDH_ABS, 10)
    asm.jump(JEQ_K, mac_lo, "reject", "type")
    asm.label("type")
    asm.op(LDH_IND, 12)
    asm.jump(JEQ_K, _ETH_P_ARP, "arp" if v4 else "reject", None)
    asm.jump(JEQ_K, _ETH_P_IPV6, "ip6" if v6 else "reject", "reject")
    if v4:
        _arp(asm, mac_hi, mac_lo, v4, sender_tree)
    if v6:
        _ns(asm, mac_hi, mac_lo, v6)
    asm.label("reject")
    asm.op(RET_K, 0)
    return asm


def _arp(asm: Assembler, mac_hi: int, mac_lo: int, v4: Sequence[int], sender_tree: bool) -> None:
    asm.label("arp")
    asm.op(LD_W_IND, 14)
    asm.jump(JEQ_K, _ARP_ETHER_IPV4, None, "reject")
    asm.op(LDH_IND, 18)
    asm.jump(JEQ_K, _ARP_LENGTHS, None, "reject")
    asm.op(LDH_IND, 20)  # operation
    asm.jump(JEQ_K, 1, None, "arp-reply?")
    # A request is answered when sent to broadcast or to us and the target is owned.
    asm.op(LD_W_ABS, 0)
    asm.jump(JEQ_K, 0xFFFFFFFF, "arp-bcast", None)
    asm.jump(JEQ_K, mac_hi, "arp-me", "conflict")
    asm.label("arp-bcast")
    asm.op(LDH_ABS, 4)
    asm.jump(JEQ_K, 0xFFFF, "arp-target", "conflict")
    asm.label("arp-me")
    asm.op(LDH_ABS, 4)
    asm.jump(JEQ_K, mac_lo, "arp-target", "conflict")
    asm.label("arp-reply?")
    asm.jump(JEQ_K, 2, "conflict", "reject")
    asm.label("arp-target")
    asm.op(LD_W_IND, 38)
    _tree(asm, v4, miss="conflict")
    # Any request or reply whose sender claims an owned IP from another MAC: a conflict.
    asm.label("conflict")
    asm.op(LD_W_IND, 22)
    asm.jump(JEQ_K, mac_hi, None, "sender")
    asm.op(LDH_IND, 26)
    asm.jump(JEQ_K, mac_lo, "reject", "sender")
    asm.label("sender")
    asm.op(LD_W_IND, 28)
    if sender_tree:
        _tree(asm, v4, miss="reject")
    else:
        asm.jump(JGE_K, v4[0], None, "reject")
        asm.jump(JGT_K, v4[-1], "reject", None)
        asm.op(RET_K, ACCEPT_BYTES)


def _ns(asm: Assembler, mac_hi: int, mac_lo: int, v6: Sequence[int]) -> None:
    asm.label("ip6")
    asm.op(LDB_IND, 20)  # next header
    asm.jump(JEQ_K, 58, None, "reject")
    asm.op(LDB_IND, 21)  # hop limit
    asm.jump(JEQ_K, 255, None, "reject")
    asm.op(LDH_IND, 54)  # ICMPv6 type and code
    asm.jump(JEQ_K, 135 << 8, None, "reject")
    # Ethernet destination: us, broadcast, or 33:33 + the low 32 bits of a multicast dst.
    asm.op(LD_W_ABS, 0)
    asm.jump(JEQ_K, mac_hi, "ns-me", None)
    asm.jump(JEQ_K, 0xFFFFFFFF, "ns-bcast", None)
    asm.op(LDH_ABS, 0)
    asm.jump(JEQ_K, 0x3333, None, "reject")
    asm.op(LDB_IND, 38)  # first byte of the IPv6 destination
    asm.jump(JEQ_K, 0xFF, None, "reject")
    asm.op(LD_W_IND, 50)  # its low 32 bits ...
    asm.op(ST, 0)
    asm.op(STX, 1)
    asm.op(LD_W_ABS, 2)  # ... against the Ethernet destination's low 32 bits
    asm.op(LDX_MEM, 0)
    asm.jump(JEQ_X, 0, None, "reject")
    asm.op(LDX_MEM, 1)
    asm.goto("ns-target")
    asm.label("ns-me")
    asm.op(LDH_ABS, 4)
    asm.jump(JEQ_K, mac_lo, "ns-target", "reject")
    asm.label("ns-bcast")
    asm.op(LDH_ABS, 4)
    asm.jump(JEQ_K, 0xFFFF, "ns-target", "reject")
    asm.label("ns-target")
    groups: dict[tuple[int, int, int], list[int]] = {}
    for ip in v6:
        groups.setdefault((ip >> 96, (ip >> 64) & 0xFFFFFFFF, (ip >> 32) & 0xFFFFFFFF), []).append(
            ip & 0xFFFFFFFF
        )
    for (w0, w1, w2), lows in sorted(groups.items()):
        nxt = asm.fresh("group")
        for offset, word in ((62, w0), (66, w1), (70, w2)):
            asm.op(LD_W_IND, offset)
            asm.jump(JEQ_K, word, None, nxt)
        asm.op(LD_W_IND, 74)
        _tree(asm, lows, miss="reject")
        asm.label(nxt)
    asm.goto("reject")


def _tree(asm: Assembler, keys: Sequence[int], miss: str) -> None:
    """Accept when A is one of ``keys`` (sorted, unique), else jump to ``miss``."""
    if len(keys) <= _LEAF:
        hit = asm.fresh("hit")
        for i, key in enumerate(keys):
            asm.jump(JEQ_K, key, hit, miss if i == len(keys) - 1 else None)
        asm.label(hit)
        asm.op(RET_K, ACCEPT_BYTES)
        return
    mid = len(keys) // 2
    right = asm.fresh("right")
    asm.jump(JGT_K, keys[mid - 1], right, None)
    _tree(asm, keys[:mid], miss)
    asm.label(right)
    _tree(asm, keys[mid:], miss)
