"""Why the responder's receive ring is TPACKET_V2, not V3: how long a frame waits in the ring
before user space can see it, at a quiet 10,000 frames/s, and what reading costs under a
full-rate flood (trafgen).

A V3 ring hands user space whole blocks: a block is released when it is full or when its
retire timer fires (``tp_retire_blk_tov``, in milliseconds, 1 at least), so at low rates
every frame waits for the timer. A V2 ring releases each frame as soon as the kernel has
written it. Both readers here are minimal (poll, then walk what is ready, no answering);
the delay is "seen by user space" minus the kernel's receive timestamp of the frame, and
the cost the reading thread's CPU time per 10,000 frames. The reader runs at SCHED_RR 10,
the speaker's priority, so other work on the machine does not decide the tail.

Usage (root): ``python -m bench.ring_versions [--seconds 3]``; writes
``bench/results/ring_versions.json``.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import select
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

from bench._stats import percentile
from bench.failover import source_version
from bench.responder_rate import arp_request
from l2agent.lab.load import trafgen
from l2agent.lab.netns import Lab
from l2agent.lab.netns_thread import NetnsThread

RESULTS = Path(__file__).resolve().parent / "results"
SOL_PACKET, PACKET_RX_RING, PACKET_VERSION = 263, 5, 10
TPACKET_V2, TPACKET_V3 = 1, 2
TP_STATUS_USER = 1
_V2 = struct.Struct("=IIIHHII")  # status, len, snaplen, mac, net, sec, nsec
_V3_BLOCK = struct.Struct("=III I I")  # version, offset_to_priv, status, num_pkts, first
_V3_PKT = struct.Struct("=IIIIII")  # next_offset, sec, nsec, snaplen, len, status


def _v2_delays(seconds: float) -> tuple[list[float], float]:
    os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(10))
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
    frames, size = 1024, 256
    sock.setsockopt(SOL_PACKET, PACKET_RX_RING, struct.pack("=IIII", 65536, 4, size, frames))
    mm = mmap.mmap(sock.fileno(), frames * size)
    sock.bind(("eth0", 0x0806))
    delays: list[float] = []
    index = 0
    cpu = time.thread_time()
    end = time.time() + seconds
    while time.time() < end:
        select.select([sock], [], [], 0.1)
        while True:
            base = index * size
            status, _l, _s, _m, _n, sec, nsec = _V2.unpack_from(mm, base)
            if not status & TP_STATUS_USER:
                break
            delays.append((time.time() - (sec + nsec * 1e-9)) * 1e6)
            mm[base : base + 4] = b"\0\0\0\0"
            index = (index + 1) % frames
    cpu = time.thread_time() - cpu
    mm.close()
    sock.close()
    return delays, cpu


def _v3_delays(seconds: float) -> tuple[list[float], float]:
    os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(10))
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
    block, blocks = 1 << 16, 16
    req = struct.pack("=IIIIIII", block, blocks, 256, block // 256 * blocks, 1, 0, 0)
    sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)  # retire_blk_tov: 1 ms, the least
    mm = mmap.mmap(sock.fileno(), block * blocks)
    sock.bind(("eth0", 0x0806))
    delays: list[float] = []
    current = 0
    cpu = time.thread_time()
    end = time.time() + seconds
    while time.time() < end:
        select.select([sock], [], [], 0.1)
        while True:
            base = current * block
            _v, _p, status, count, first = _V3_BLOCK.unpack_from(mm, base)
            if not status & TP_STATUS_USER:
                break
            now = time.time()
            offset = base + first
            for _ in range(count):
                nxt, sec, nsec, *_rest = _V3_PKT.unpack_from(mm, offset)
                delays.append((now - (sec + nsec * 1e-9)) * 1e6)
                offset += nxt
            mm[base + 8 : base + 12] = b"\0\0\0\0"
            current = (current + 1) % blocks
    cpu = time.thread_time() - cpu
    mm.close()
    sock.close()
    return delays, cpu


def _load(lab: Lab, frame: bytes, load: str, seconds: float) -> None:
    if load == "10k":
        lab.exec(
            "client",
            [sys.executable, "-m", "bench._l2gen", "send", frame.hex(), "10000", str(seconds)],
            timeout=seconds + 30,
        )
    else:
        trafgen(lab, "client", frame, 0, seconds, realtime=20)


def run(seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {"seconds": seconds}
    with Lab(nodes=1, vips=()) as lab:
        reader = NetnsThread(lab.netns("node1"))
        try:
            frame = arp_request(lab.nodes["node1"].ipv4)  # type: ignore[arg-type]
            for load in ("10k", "flood"):
                for name, fn in (("v2", _v2_delays), ("v3", _v3_delays)):
                    pending = reader._pool.submit(fn, seconds + 1.0)
                    time.sleep(0.3)
                    _load(lab, frame, load, seconds)
                    delays, cpu = pending.result(timeout=seconds + 30)
                    row = {
                        "frames": len(delays),
                        "p50_us": round(percentile(delays, 50), 1),
                        "p99_us": round(percentile(delays, 99), 1),
                        "max_us": round(max(delays), 1),
                        "reader_cpu_per_10k_ms": round(cpu / max(1, len(delays)) * 1e7, 2),
                    }
                    out[f"{name}_{load}"] = row
                    print(name, load, json.dumps(row), flush=True)
        finally:
            reader.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "ring_versions.json")
    args = parser.parse_args(argv)
    result = {
        "command": "python -m bench.ring_versions " + " ".join(argv or sys.argv[1:]),
        "source": source_version(),
    }
    result.update(run(args.seconds))
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
