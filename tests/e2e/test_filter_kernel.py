"""The owned-set filter on a real AF_PACKET socket: the kernel runs it, ``decide`` judges it.

One namespace, one veth pair. Frames go out of ``tx``; on ``rx`` two packet sockets read:
one unfiltered (what the kernel delivers to taps, with the VLAN tag it moved into metadata),
one with the generated program attached. Linux hands each frame to every tap in turn, so
once the unfiltered socket has seen the closing marker, the filtered one has had its chance
at every frame before it. For each delivered frame: ``decide`` says whether it is worth
reading, the kernel says whether it passed, and the interpreter must agree with the kernel.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.l2 import ARP, Ether
from scapy.utils import rdpcap

from l2agent.lab.netns_thread import NetnsThread
from l2agent.model.types import IPAddress
from l2agent.responder.bpf import (
    ACCEPT_BYTES,
    SO_ATTACH_FILTER,
    attach_filter,
    make_sock_fprog,
    run_filter,
)
from l2agent.responder.filter import owned_filter
from tests.l2agent._l2frames import OUR_MAC, frames, owned_sets
from tests.l2agent.test_filter import check_contract

pytestmark = pytest.mark.e2e

DATA = Path(__file__).resolve().parents[1] / "data"
SOL_PACKET, PACKET_AUXDATA, PACKET_STATISTICS = 263, 8, 6
SO_RCVBUFFORCE = 33
TP_STATUS_VLAN_VALID = 0x10
_AUX = struct.Struct("=IIIHHHH")
_MARKER_TYPE = 0x88B5  # IEEE local experimental EtherType: never an ARP or NS


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@dataclass
class Wire:
    """Sockets in the test namespace, used only from ``thread``."""

    thread: NetnsThread
    tx: socket.socket | None = None
    everything: socket.socket | None = None
    filtered: socket.socket | None = None
    seq: int = 0


def _open(wire: Wire) -> None:
    tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    tx.bind(("l2tx", 0))
    rx = []
    for attach in (False, True):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        if attach:  # before bind, as the responder does: nothing unfiltered is queued
            attach_filter(sock, owned_filter(OUR_MAC, ()).program)
        sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        # FORCE: past net.core.rmem_max (212,992 bytes by default: about 600 frames)
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 1 << 24)
        sock.bind(("l2rx", 0x0003))
        rx.append(sock)
    wire.tx, (wire.everything, wire.filtered) = tx, rx


def _read(sock: socket.socket, timeout: float | None) -> tuple[bytes, int | None] | None:
    sock.settimeout(timeout)
    try:
        data, anc, _flags, _addr = sock.recvmsg(65535, socket.CMSG_SPACE(_AUX.size))
    except (TimeoutError, BlockingIOError):
        return None
    tci = None
    for level, kind, raw in anc:
        if (level, kind) == (SOL_PACKET, PACKET_AUXDATA):
            status, *_rest, vlan_tci, _tpid = _AUX.unpack_from(raw)
            if status & TP_STATUS_VLAN_VALID:
                tci = vlan_tci
    return data, tci


def _exchange(
    wire: Wire, program: tuple, batch: list[bytes]
) -> list[tuple[bytes, int | None, bool]]:
    """Attach ``program``, send ``batch``, return (frame as delivered, tci, passed) each."""
    assert wire.tx and wire.everything and wire.filtered
    attach_filter(wire.filtered, program)
    for sock in (wire.everything, wire.filtered):
        while _read(sock, 0) is not None:
            pass
    wire.seq += 1
    marker = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x98" + struct.pack("!HI", _MARKER_TYPE, wire.seq)
    for frame in batch:
        wire.tx.send(frame)
    wire.tx.send(marker.ljust(60, b"\0"))
    delivered: list[tuple[bytes, int | None]] = []
    while True:
        got = _read(wire.everything, 5.0)
        assert got is not None, "the closing marker never arrived"
        if got[0][:18] == marker:
            break
        delivered.append(got)
    passed: list[tuple[bytes, int | None]] = []
    while (got := _read(wire.filtered, 0)) is not None:
        passed.append(got)
    out = []
    for item in delivered:  # the filtered socket saw a subsequence, in the same order
        hit = bool(passed) and passed[0] == item
        if hit:
            passed.pop(0)
        out.append((item[0], item[1], hit))
    assert not passed, f"filtered socket saw frames the tap did not: {passed}"
    return out


@pytest.fixture(scope="module")
def wire() -> Iterator[Wire]:
    ns = f"l2filter{os.getpid()}"
    _run("ip", "netns", "add", ns)
    thread = NetnsThread(ns)
    try:
        _run("ip", "-n", ns, "link", "add", "name", "l2tx", "type", "veth", "peer", "name", "l2rx")
        _run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        _run("ip", "-n", ns, "link", "set", "l2rx", "address", OUR_MAC.hex(":"))
        for dev in ("l2tx", "l2rx"):
            _run("ip", "-n", ns, "link", "set", dev, "up")
        w = Wire(thread)
        thread.call(_open, w)
        yield w
    finally:
        for sock in (
            (getattr(w, "tx", None), getattr(w, "everything", None), getattr(w, "filtered", None))
            if "w" in locals()
            else ()
        ):
            if sock is not None:
                sock.close()
        thread.close()
        subprocess.run(["ip", "netns", "del", ns], check=False)


def _judge(owned: frozenset[IPAddress], program: tuple, seen: list) -> int:
    passes = 0
    for frame, tci, passed in seen:
        vid = None if tci is None else tci & 0x0FFF
        check_contract(frame, owned, passed, vid)
        assert (run_filter(program, frame) == ACCEPT_BYTES) is passed, (
            f"interpreter and kernel disagree on {frame.hex()}"
        )
        passes += passed
    return passes


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), owned=owned_sets)
def test_kernel_filter_agrees_with_decide(
    wire: Wire, data: st.DataObject, owned: frozenset
) -> None:
    batch = data.draw(st.lists(frames(owned), min_size=1, max_size=12))
    program = owned_filter(OUR_MAC, owned).program
    seen = wire.thread.call(_exchange, wire, program, batch)
    _judge(owned, program, seen)


def test_kernel_passes_the_golden_requests_only_while_owned(wire: Wire) -> None:
    requests = [bytes(p) for p in rdpcap(str(DATA / "l2_requests.pcap"))]
    v4, v6 = IPv4Address("192.0.2.10"), IPv6Address("2001:db8::10")
    for owned, expect in ((frozenset({v4, v6}), len(requests)), (frozenset({v4 + 1}), 0)):
        program = owned_filter(OUR_MAC, owned).program
        seen = wire.thread.call(_exchange, wire, program, requests)
        assert len(seen) == len(requests)
        assert _judge(owned, program, seen) == expect


def test_a_big_owned_set_fits_the_kernel(wire: Wire) -> None:
    owned = frozenset(
        [IPv4Address("198.18.0.0") + 3 * i for i in range(1000)]
        + [IPv6Address("2001:db8::") + 5 * i for i in range(1000)]
    )
    program = owned_filter(OUR_MAC, owned).program
    assert len(program) > 3000
    asks = [IPv4Address("198.18.0.0") + i for i in range(0, 3000, 7)]
    batch = [
        bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:99")
              / ARP(op=1, hwsrc="02:00:00:00:00:99", psrc="192.0.2.99", pdst=str(ip)))
        for ip in asks
    ]  # fmt: skip
    seen = wire.thread.call(_exchange, wire, program, batch)
    assert _judge(owned, program, seen) == sum(1 for ip in asks if ip in owned) > 100


_FLOOD = r"""
import socket, struct, sys, time
frame, count = bytes.fromhex(sys.argv[1]), int(sys.argv[2])
tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
tx.bind(("l2tx", 0))
for i in range(count):
    tx.send(frame[:42] + struct.pack("!I", i) + frame[46:])
    if i % 32 == 31:
        time.sleep(0.001)
"""


def _drain(wire: Wire) -> None:
    for sock in (wire.everything, wire.filtered):
        assert sock is not None
        while _read(sock, 0) is not None:
            pass


def _stats(sock: socket.socket) -> tuple[int, int]:
    """(frames that passed the socket's filter, of which dropped for a full buffer) since
    the last call."""
    passed, dropped = struct.unpack("=II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    return int(passed), int(dropped)


def test_swapping_the_filter_loses_no_request(wire: Wire) -> None:
    """While numbered requests for an owned IP stream in, the program is replaced again and
    again (other IPs come and go); every request that reached the unfiltered socket also
    reached the filtered one, however fast the flood and the swaps ran (a loaded CI machine
    runs both slowly: the verdict compares the two sockets, never a rate)."""
    vip = IPv4Address("192.0.2.10")
    request = bytes(
        Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:99")
        / ARP(op=1, hwsrc="02:00:00:00:00:99", psrc="192.0.2.99", pdst=str(vip))
    ).ljust(60, b"\0")
    others = [IPv4Address("198.18.0.0") + j for j in range(50)]
    programs = [
        make_sock_fprog(owned_filter(OUR_MAC, {vip, *others[:i]}).program) for i in range(50)
    ]

    def swap_many() -> int:
        """Swap until the flood is over: every frame is sent while swaps go on."""
        assert wire.filtered is not None
        swaps = 0
        while flooder.poll() is None:
            program = programs[swaps % len(programs)]
            wire.filtered.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, program.value)
            swaps += 1
        return swaps

    def numbers(sock: socket.socket) -> tuple[list[int], tuple[int, int]]:
        seen = []
        while (got := _read(sock, 0)) is not None:
            assert got[0][:42] == request[:42], got[0].hex()
            seen.append(struct.unpack_from("!I", got[0], 42)[0])
        return seen, _stats(sock)

    def both() -> list[tuple[list[int], tuple[int, int]]]:
        assert wire.filtered is not None and wire.everything is not None
        return [numbers(wire.everything), numbers(wire.filtered)]

    wire.thread.call(attach_filter, wire.filtered, owned_filter(OUR_MAC, {vip}).program)
    wire.thread.call(_drain, wire)
    wire.thread.call(both)  # zero the statistics
    sent = 6000  # about 0.3 s on an idle machine: a process of its own, so no GIL is shared
    flooder = subprocess.Popen(
        ["ip", "netns", "exec", wire.thread.netns, sys.executable, "-c", _FLOOD,
         request.hex(), str(sent)]
    )  # fmt: skip
    try:
        swaps = wire.thread.call(swap_many)
    finally:
        flooder.wait(timeout=60)
    time.sleep(0.1)
    (everything, (tapped, tap_drops)), (filtered, (passed, drops)) = wire.thread.call(both)
    assert tap_drops == drops == 0, "a socket overflowed: the test, not the swap, lost frames"
    assert swaps > 0 and 0 < len(everything) == tapped <= sent, (swaps, len(everything), tapped)
    assert filtered == everything, f"lost in a swap: {sorted(set(everything) - set(filtered))}"
    assert passed == tapped
