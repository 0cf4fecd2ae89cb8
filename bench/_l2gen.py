"""The Python load generator of ``bench/responder_rate.py``, run inside the client namespace.

``python -m bench._l2gen send FRAMEHEX RATE SECONDS``: send the frame at RATE per second
(0 = as fast as one core can) for SECONDS, in bursts every millisecond; print
``{"sent": n, "seconds": t}``.

``python -m bench._l2gen latency RATE SECONDS FRAMEHEX...``: send the frames in turn, one
every 1/RATE s, and capture both directions on eth0 with kernel timestamps: a request's
time is when it left the client's NIC, a reply's when it arrived, so the generator's own
delays do not count. Requests and replies are matched by target address (the frames rotate
over many targets, so at most one request per target is outstanding). Prints
``{"sent": n, "latencies_us": [...], "unanswered": k}``.
"""

from __future__ import annotations

import ctypes
import json
import select
import socket
import struct
import sys
import time
from collections import deque

_SOL_PACKET = 263
_PACKET_OUTGOING = 4
_SO_TIMESTAMPNS = 35
_PR_SET_TIMERSLACK = 29
_TIMESPEC = struct.Struct("=qq")


def _tx() -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    sock.bind(("eth0", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
    return sock


def send(frame: bytes, rate: float, seconds: float) -> dict[str, float]:
    sock = _tx()
    sent = 0
    start = time.perf_counter()
    end = start + seconds
    tick = 0.001
    per_tick = rate * tick
    due = 0.0
    next_tick = start
    sendf = sock.send
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        if rate <= 0:
            for _ in range(256):
                try:
                    sendf(frame)
                    sent += 1
                except OSError:  # ENOBUFS: the device queue is full; go on
                    pass
            continue
        if now < next_tick:
            time.sleep(next_tick - now)
            continue
        due += per_tick
        while due >= 1:
            try:
                sendf(frame)
                sent += 1
            except OSError:
                pass
            due -= 1
        next_tick += tick
    return {"sent": sent, "seconds": time.perf_counter() - start}


def _key(frame: bytes) -> tuple[str, bytes, bool] | None:
    """(family, target, is_request) for an ARP/NS request or reply, else None."""
    if frame[12:14] == b"\x08\x06" and len(frame) >= 42:
        op = frame[21]
        if op == 1:
            return "arp", frame[38:42], True
        if op == 2:
            return "arp", frame[28:32], False
    elif frame[12:14] == b"\x86\xdd" and len(frame) >= 78 and frame[20] == 58:
        if frame[54] == 135:
            return "nd", frame[62:78], True
        if frame[54] == 136:
            return "nd", frame[62:78], False
    return None


def latency(rate: float, seconds: float, frames: list[bytes]) -> dict[str, object]:
    ctypes.CDLL(None).prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0)  # sleep to the microsecond
    tx = _tx()
    cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    cap.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    cap.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
    cap.bind(("eth0", 0x0003))
    cap.setblocking(False)
    outstanding: dict[tuple[str, bytes], deque[float]] = {}
    latencies: list[float] = []
    sent = 0
    gap = 1.0 / rate
    start = time.perf_counter()
    end = start + seconds
    next_send = start

    def drain() -> None:
        while True:
            try:
                data, anc, _flags, addr = cap.recvmsg(2048, 64)
            except BlockingIOError:
                return
            key = _key(data)
            if key is None:
                continue
            stamp = 0.0
            for level, kind, raw in anc:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack_from(raw)
                    stamp = sec + nsec * 1e-9
            family, target, is_request = key
            queue = outstanding.setdefault((family, target), deque())
            if is_request and addr[2] == _PACKET_OUTGOING:
                queue.append(stamp)
            elif not is_request and addr[2] != _PACKET_OUTGOING and queue:
                latencies.append((stamp - queue.popleft()) * 1e6)

    while True:
        now = time.perf_counter()
        if now >= end:
            break
        if now >= next_send:
            tx.send(frames[sent % len(frames)])
            sent += 1
            next_send += gap
            continue
        select.select([cap], [], [], next_send - now)
        drain()
    settle = time.perf_counter() + 0.2
    while time.perf_counter() < settle:
        select.select([cap], [], [], 0.01)
        drain()
    unanswered = sum(len(q) for q in outstanding.values())
    return {"sent": sent, "latencies_us": latencies, "unanswered": unanswered}


def main(argv: list[str]) -> int:
    mode = argv[0]
    if mode == "send":
        out: dict[str, object] = dict(send(bytes.fromhex(argv[1]), float(argv[2]), float(argv[3])))
    elif mode == "latency":
        out = latency(float(argv[1]), float(argv[2]), [bytes.fromhex(h) for h in argv[3:]])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
