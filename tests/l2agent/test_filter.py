"""The owned-set kernel filter against ``decide`` (the policy), run by our interpreter.

The kernel itself runs the same programs in ``tests/e2e/test_filter_kernel.py``; there the
interpreter is checked against the kernel, so these fast, many-example properties speak
for the kernel too.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.utils import rdpcap

from l2agent.model.types import IPAddress
from l2agent.responder.bpf import (
    ACCEPT_BYTES,
    JEQ_K,
    LDB_ABS,
    MAX_INSNS,
    PROGRAM,
    RET_K,
    Assembler,
    run_filter,
)
from l2agent.responder.decide import Drop, DropReason
from l2agent.responder.filter import Coverage, owned_filter
from tests.l2agent._l2frames import (
    OUR_MAC,
    delivered,
    frames,
    judge,
    owned_sets,
    worth_reading,
)

DATA = Path(__file__).resolve().parents[1] / "data"


def check_contract(
    frame: bytes, owned: frozenset[IPAddress], passed: bool, vlan: int | None = None
) -> None:
    """Every answer or conflict passes; whatever passes beyond that is malformed."""
    outcome = judge(frame, owned, vlan)
    if worth_reading(outcome):
        assert passed, f"filter dropped a frame decide acts on: {outcome} {frame.hex()}"
    elif passed:
        assert isinstance(outcome, Drop) and outcome.reason is DropReason.MALFORMED, (
            f"filter passed a frame decide ignores: {outcome} {frame.hex()}"
        )


@settings(max_examples=400, deadline=None)
@given(data=st.data(), owned=owned_sets)
def test_filter_passes_what_decide_acts_on_and_little_else(
    data: st.DataObject, owned: frozenset[IPAddress]
) -> None:
    batch = data.draw(st.lists(frames(owned), min_size=1, max_size=8))
    program = owned_filter(OUR_MAC, owned).program
    for frame in batch:
        # In-band tag (the program's x = 4 path) and the layout Linux hands to taps.
        for seen, tci in ((frame, None), delivered(frame)):
            vid = None if tci is None else tci & 0x0FFF
            passed = run_filter(program, seen) == ACCEPT_BYTES
            check_contract(seen, owned, passed, vid)


def test_golden_requests_pass_only_while_owned() -> None:
    requests = [bytes(p) for p in rdpcap(str(DATA / "l2_requests.pcap"))]
    v4, v6 = IPv4Address("192.0.2.10"), IPv6Address("2001:db8::10")
    mac = bytes.fromhex("020000000001")  # the captures' interface
    for owned, expect in (({v4, v6}, True), (set(), False), ({v4 + 1, v6 + 1}, False)):
        program = owned_filter(mac, frozenset(owned)).program
        for frame in requests:
            seen, _tci = delivered(frame)
            assert (run_filter(program, seen) == ACCEPT_BYTES) is expect, frame.hex()
            assert (run_filter(program, frame) == ACCEPT_BYTES) is expect, frame.hex()


def _arp_request(target: IPv4Address, sender: str = "198.18.255.1") -> bytes:
    from scapy.layers.l2 import ARP, Ether

    pkt = Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:99") / ARP(
        op=1, hwsrc="02:00:00:00:00:99", psrc=sender, pdst=str(target)
    )
    return bytes(pkt)


def _ns(target: IPv6Address) -> bytes:
    from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
    from scapy.layers.l2 import Ether

    from l2agent.packets.ndp import solicited_node_address, solicited_node_mac

    pkt = (
        Ether(dst=solicited_node_mac(target).hex(":"), src="02:00:00:00:00:99")
        / IPv6(src="2001:db8::99", dst=str(solicited_node_address(target)), hlim=255)
        / ICMPv6ND_NS(tgt=str(target))
        / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:99")
    )
    return bytes(pkt)


@pytest.mark.parametrize(
    ("n4", "n6", "coverage"),
    [
        (1000, 1000, Coverage.EXACT),
        (0, 3000, Coverage.EXACT),
        (2500, 0, Coverage.SENDER_RANGE),
        (5000, 0, Coverage.PASS_ALL),
    ],
)
def test_thousands_of_owned_ips(n4: int, n6: int, coverage: Coverage) -> None:
    base4, base6 = IPv4Address("198.18.0.0"), IPv6Address("2001:db8::")
    v4 = [base4 + 3 * i for i in range(n4)]
    v6 = [base6 + 5 * i for i in range(n6 // 2)] + [
        IPv6Address("2001:db8:1::") + 7 * i for i in range(n6 - n6 // 2)
    ]
    owned: frozenset[IPAddress] = frozenset((*v4, *v6))
    result = owned_filter(OUR_MAC, owned)
    assert result.coverage is coverage
    assert len(result.program) <= MAX_INSNS
    if coverage is Coverage.PASS_ALL:
        assert result.program == PROGRAM and result.exact_size > MAX_INSNS
        return
    for ip in v4[:: max(1, n4 // 200)] + v4[-1:]:
        assert run_filter(result.program, _arp_request(ip)) == ACCEPT_BYTES, ip
        assert run_filter(result.program, _arp_request(ip + 1)) == 0, ip + 1  # owned: every 3rd
    for ip in v6[:: max(1, n6 // 200)] + v6[-1:]:
        assert run_filter(result.program, _ns(ip)) == ACCEPT_BYTES, ip
        assert run_filter(result.program, _ns(ip + 1)) == 0, ip + 1
    if coverage is Coverage.SENDER_RANGE:  # conflicts still seen: a gratuitous claim passes
        claim = _arp_request(IPv4Address("203.0.113.9"), sender=str(v4[7]))
        assert run_filter(result.program, claim) == ACCEPT_BYTES


def test_far_conditional_jumps_get_trampolines() -> None:
    asm = Assembler()
    asm.op(LDB_ABS, 0)
    asm.jump(JEQ_K, 7, "far", None)
    for i in range(300):  # 300 instructions between the jump and its target
        asm.jump(JEQ_K, 1000 + i, "never", None)
    asm.op(RET_K, 1)
    asm.label("far")
    asm.op(RET_K, 2)
    asm.label("never")
    asm.op(RET_K, 3)
    program = asm.assemble()
    assert all(insn.jt <= 255 and insn.jf <= 255 for insn in program)
    assert run_filter(program, b"\x07") == 2
    assert run_filter(program, b"\x08") == 1


def test_undefined_labels_are_refused() -> None:
    asm = Assembler()
    asm.goto("nowhere")
    with pytest.raises(ValueError, match="nowhere"):
        asm.assemble()
