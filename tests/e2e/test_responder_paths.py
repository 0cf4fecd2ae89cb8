"""The Responder's two I/O paths (packet rings; a system call per frame, the fallback) and its
budget, on a real veth pair: the kernel carries the frames, ``decide`` says what the
answers must be, byte for byte."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address

import pytest
from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from l2agent.lab.netns_thread import NetnsThread
from l2agent.packets.ndp import solicited_node_address, solicited_node_mac
from l2agent.responder.budget import DataPathBudget
from l2agent.responder.decide import InterfaceView, Reply, decide
from l2agent.responder.loop import MemoryCounters, Responder
from l2agent.responder.ring import RingConfig

pytestmark = pytest.mark.e2e

MAC = bytes.fromhex("020000000001")
CLIENT = "02:00:00:00:00:99"
V4, V6 = IPv4Address("192.0.2.10"), IPv6Address("2001:db8::10")


def _requests() -> list[bytes]:
    arp = Ether(dst="ff:ff:ff:ff:ff:ff", src=CLIENT) / ARP(
        op=1, hwsrc=CLIENT, psrc="192.0.2.99", pdst=str(V4)
    )
    tagged = Ether(dst="ff:ff:ff:ff:ff:ff", src=CLIENT) / Dot1Q(vlan=7) / arp[ARP]
    ns = (
        Ether(dst=solicited_node_mac(V6).hex(":"), src=CLIENT)
        / IPv6(src="2001:db8::99", dst=str(solicited_node_address(V6)), hlim=255)
        / ICMPv6ND_NS(tgt=str(V6))
        / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT)
    )
    return [bytes(p).ljust(60, b"\0") for p in (arp, tagged, ns)]


@pytest.fixture(scope="module")
def netns() -> Iterator[NetnsThread]:
    ns = f"l2paths{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    thread = NetnsThread(ns)
    try:
        run = ["ip", "-n", ns, "link"]
        subprocess.run(
            [*run, "add", "name", "l2c", "type", "veth", "peer", "name", "l2r"], check=True
        )
        subprocess.run(
            ["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
            check=True,
        )
        subprocess.run([*run, "set", "l2r", "address", MAC.hex(":")], check=True)
        for dev in ("l2c", "l2r"):
            subprocess.run([*run, "set", dev, "up"], check=True)
        yield thread
    finally:
        thread.close()
        subprocess.run(["ip", "netns", "del", ns], check=False)


async def _exchange(
    ring: RingConfig | None,
    frames: list[bytes],
    budget: DataPathBudget | None = None,
    wait: float = 3.0,
) -> tuple[list[bytes], MemoryCounters, Responder]:
    ifindex = socket.if_nametoindex("l2r")
    counters = MemoryCounters()
    responder = Responder(
        InterfaceView("l2r", MAC), ifindex, counters, {V4, V6}, budget=budget, ring=ring
    )
    responder.open()
    client = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    client.setsockopt(263, 8, 1)  # SOL_PACKET, PACKET_AUXDATA: where Linux puts a VLAN tag
    client.bind(("l2c", 0x0003))
    client.setblocking(False)
    got: list[bytes] = []
    try:
        await asyncio.sleep(0.05)
        for frame in frames:
            client.send(frame)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while loop.time() < deadline and len(got) < len(frames):
            try:
                data, anc, _flags, _addr = client.recvmsg(2048, 64)
            except BlockingIOError:
                await asyncio.sleep(0.005)
                continue
            for level, kind, aux in anc:
                status, *_rest, tci, _tpid = struct.unpack_from("=IIIHHHH", aux)
                if (level, kind) == (263, 8) and status & 0x10:  # put the tag back in band
                    data = data[:12] + b"\x81\x00" + tci.to_bytes(2, "big") + data[12:]
            if data[6:12] == MAC:
                got.append(data)
    finally:
        client.close()
        responder.close()
    return got, counters, responder


@pytest.mark.parametrize("ring", [RingConfig(), None], ids=["rings", "syscall-per-frame"])
def test_both_paths_answer_byte_for_byte_what_decide_says(
    netns: NetnsThread, ring: RingConfig | None
) -> None:
    frames = _requests()
    got, counters, _ = netns.call(asyncio.run, _exchange(ring, frames))
    view = InterfaceView("l2r", MAC)
    expected = []
    for frame in frames:
        untagged, vid = frame, None
        if frame[12:14] == b"\x81\x00":  # Linux moves the tag to metadata; replies carry it
            untagged, vid = frame[:12] + frame[16:], 7
        outcome = decide(untagged, view, {V4, V6}, vid)
        assert isinstance(outcome, Reply)
        expected.append(outcome.frame)
    assert sorted(got) == sorted(expected)
    assert counters.responses == {V4: 2, V6: 1}


def test_a_flood_beyond_the_budget_rests_and_is_counted(netns: NetnsThread) -> None:
    """A tiny budget (5 % of a core, 8 frames a wake-up) under 20,000 requests: the data
    path rests, the kernel drops what did not fit, and both are counted."""
    frames = [_requests()[0]] * 20_000
    tiny = DataPathBudget(frames_per_wakeup=8, share=0.05, window=0.01)
    small = RingConfig(rx_frames=256, tx_frames=256)
    start = time.monotonic()
    _got, counters, responder = netns.call(
        asyncio.run, _exchange(small, frames, tiny, wait=1.0), timeout=60
    )
    answered = counters.responses.get(V4, 0)
    assert 0 < answered < len(frames)
    assert responder.rests > 0
    assert counters.overruns.get("l2r", 0) > 0
    assert time.monotonic() - start < 30
