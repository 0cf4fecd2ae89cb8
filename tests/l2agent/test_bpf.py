"""The BPF program, run by our interpreter and by the kernel (the independent judge)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet

from l2agent.responder.bpf import (
    ACCEPT_BYTES,
    PROGRAM,
    BpfInsn,
    make_sock_fprog,
    pack_program,
    run_filter,
)


def _l3() -> dict[str, tuple[Packet, bool]]:
    c = "02:00:00:00:00:99"
    return {
        "arp request": (ARP(op=1, hwsrc=c, psrc="192.0.2.9", pdst="192.0.2.10"), True),
        "arp probe": (ARP(op=1, hwsrc=c, psrc="0.0.0.0", pdst="192.0.2.10"), True),
        "arp reply": (ARP(op=2, hwsrc=c, psrc="192.0.2.9", pdst="192.0.2.10"), True),
        "arp rarp-ish op 3": (ARP(op=3, hwsrc=c, psrc="192.0.2.9", pdst="192.0.2.10"), False),
        "ns": (
            IPv6(src="2001:db8::9", dst="ff02::1:ff00:10", hlim=255)
            / ICMPv6ND_NS(tgt="2001:db8::10")
            / ICMPv6NDOptSrcLLAddr(lladdr=c),
            True,
        ),
        "dad ns": (
            IPv6(src="::", dst="ff02::1:ff00:10", hlim=255) / ICMPv6ND_NS(tgt="2001:db8::10"),
            True,
        ),
        "na": (
            IPv6(src="2001:db8::9", dst="ff02::1", hlim=255) / ICMPv6ND_NA(tgt="2001:db8::10"),
            False,
        ),
        "ipv4 udp": (IP(src="192.0.2.9", dst="192.0.2.10") / UDP(), False),
        "ipv6 udp": (IPv6(src="2001:db8::9", dst="2001:db8::10") / UDP(), False),
    }


def _frames(marker_base: int = 0) -> list[tuple[str, bytes, bool]]:
    """(name, frame, should pass); each frame has a unique source MAC as a marker."""
    out = []
    for i, (name, (l3, ok)) in enumerate(sorted(_l3().items())):
        for tagged in (False, True):
            src = f"02:00:00:00:{marker_base + tagged:02x}:{i:02x}"
            eth = Ether(dst="ff:ff:ff:ff:ff:ff", src=src)
            if tagged:
                eth = eth / Dot1Q(vlan=20)
            label = f"{name}{' tagged' if tagged else ''}"
            out.append((label, bytes(eth / l3).ljust(60, b"\x00"), ok))
    return out


@pytest.mark.parametrize(("name", "frame", "ok"), _frames(), ids=[f[0] for f in _frames()])
def test_interpreter_verdicts(name: str, frame: bytes, ok: bool) -> None:
    assert run_filter(PROGRAM, frame) == (ACCEPT_BYTES if ok else 0)


def test_short_frames_are_dropped() -> None:
    arp = next(f for n, f, _ in _frames() if n == "arp request")
    for cut in (0, 13, 14, 21):
        assert run_filter(PROGRAM, arp[:cut]) == 0


def test_interpreter_basics() -> None:
    prog = [
        BpfInsn(0x20, 0, 0, 0),  # ld [0]
        BpfInsn(0x54, 0, 0, 0xFF),  # and #0xff
        BpfInsn(0x25, 0, 1, 2),  # jgt #2
        BpfInsn(0x16, 0, 0, 0),  # ret a
        BpfInsn(0x06, 0, 0, 7),  # ret #7
    ]
    assert run_filter(prog, b"\x00\x00\x01\x05") == 5
    assert run_filter(prog, b"\x00\x00\x01\x01") == 7
    assert run_filter(prog, b"\x00") == 0


def test_packing_layout() -> None:
    packed = pack_program()
    assert len(packed) == 8 * len(PROGRAM)
    assert struct.unpack_from("=HBBI", packed, 8) == tuple(PROGRAM[1])
    fprog = make_sock_fprog()
    assert struct.unpack_from("@H", fprog.value)[0] == len(PROGRAM)
    assert fprog.buffer.raw[: len(packed)] == packed


_CHILD = r"""
import json, socket, sys, time
from scapy.sendrecv import sendp
from l2agent.packets import vlan_from_auxdata
from l2agent.responder.bpf import SO_ATTACH_FILTER, make_sock_fprog

tx, rx, frames = sys.argv[1], sys.argv[2], json.loads(sys.stdin.read())
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
fprog = make_sock_fprog()
s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog.value)
s.setsockopt(263, 8, 1)  # SOL_PACKET, PACKET_AUXDATA: where Linux puts the VLAN tag
s.bind((rx, 0))
s.setblocking(False)
while True:  # drop anything queued before the filter was attached
    try:
        s.recv(65535)
    except BlockingIOError:
        break
sentinel = bytes.fromhex(frames[-1])
for hexframe in frames:
    sendp(bytes.fromhex(hexframe), iface=tx, verbose=False)
s.settimeout(10)
seen = []
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    data, anc, _, _ = s.recvmsg(65535, 256)
    vids = [vlan_from_auxdata(d) for level, kind, d in anc if (level, kind) == (263, 8)]
    seen.append([data[6:12].hex(), vids[0] if vids else "no auxdata"])
    if data[6:12] == sentinel[6:12]:
        break
print(json.dumps(seen))
"""


@pytest.mark.e2e
def test_kernel_runs_the_filter() -> None:
    """Attach the filter to AF_PACKET in a fresh netns; only the intended frames arrive."""
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2")
    pid = os.getpid()
    ns, tx, rx = f"l2bpf{pid}", f"bt{pid}"[:15], f"br{pid}"[:15]
    frames = _frames()
    sentinel = ("sentinel", bytes.fromhex("ffffffffffff02000000ffff") + frames[0][1][12:], True)
    frames.append(sentinel)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        ip = ["ip", "-n", ns, "link"]
        subprocess.run([*ip, "add", tx, "type", "veth", "peer", "name", rx], check=True)
        subprocess.run(
            ["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
            check=True,
        )
        for dev in (tx, rx):
            subprocess.run([*ip, "set", dev, "up"], check=True)
        proc = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", _CHILD, tx, rx],
            input=json.dumps([f.hex() for _, f, _ in frames]),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    seen = dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    passed = {name for name, frame, _ in frames if frame[6:12].hex() in seen}
    expected = {name for name, _, ok in frames if ok}
    assert passed == expected
    # the kernel hands tagged frames up untagged, with the VID in PACKET_AUXDATA
    vids = {name: seen[frame[6:12].hex()] for name, frame, _ in frames if name in passed}
    assert vids == {name: 20 if name.endswith(" tagged") else None for name in passed}
