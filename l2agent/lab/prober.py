"""UDP prober for the lab client: one probe every 2 ms to a VIP, recording who answered.

Run in the client namespace:
``python -m l2agent.lab.prober --target 192.0.2.200 [--port 7777] [--interval 0.002]
[--duration 10] [--flows 1] [--out FILE]``. It stops after ``--duration`` seconds or on
SIGTERM/SIGINT and writes one JSON document: ``{"target", "interval", "probes": [[seq, sent,
replied, node, flow], ...]}`` with times from ``time.monotonic()`` (CLOCK_MONOTONIC is shared by
every process on the machine, so a test can compare them with its own clock).
``replied``/``node`` are null for a lost probe.

``--flows N`` sends from N sockets (N source ports, so N distinct 5-tuples) in turn: behind an
ECMP router each flow hashes to one node, so the replies show how the router spreads flows
and which flows a node served (``flow`` = the socket's index; every flow is probed every
``N x interval``).

``outage(probes, old, new)`` measures a failover the way a client feels it: from the last
reply by the old owner to the first reply by the new one.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import selectors
import signal
import socket
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

from l2agent.lab.echo import DEFAULT_PORT

_HEADER = struct.Struct("!4sQ")
_MAGIC = b"L2PB"


@dataclass(frozen=True, slots=True)
class Probe:
    """One probe: sequence number, send time, reply time, answering node (None if lost) and
    the flow (source socket) it was sent on."""

    seq: int
    sent: float
    replied: float | None
    node: str | None
    flow: int = 0


@dataclass(frozen=True, slots=True)
class Outage:
    """A failover as the client saw it (times on the shared monotonic clock, seconds)."""

    last_old: float
    first_new: float
    lost: int

    @property
    def seconds(self) -> float:
        return self.first_new - self.last_old


def outage(probes: Sequence[Probe], old: str, new: str) -> Outage | None:
    """Last reply from ``old`` to the first reply from ``new`` after it; ``lost`` counts the
    probes sent in that window that got no reply. None when either side never answered."""
    old_times = [p.replied for p in probes if p.node == old and p.replied is not None]
    if not old_times:
        return None
    last_old = max(old_times)
    new_times = [
        p.replied
        for p in probes
        if p.node == new and p.replied is not None and p.replied > last_old
    ]
    if not new_times:
        return None
    first_new = min(new_times)
    lost = sum(1 for p in probes if p.replied is None and last_old <= p.sent <= first_new)
    return Outage(last_old=last_old, first_new=first_new, lost=lost)


def answered_by(probes: Sequence[Probe]) -> list[str]:
    """The nodes that answered, in order of first reply, without repeats."""
    seen: list[str] = []
    for p in sorted((p for p in probes if p.replied is not None), key=lambda p: p.replied or 0):
        if p.node is not None and p.node not in seen:
            seen.append(p.node)
    return seen


def flows_by_node(probes: Sequence[Probe]) -> dict[str, set[int]]:
    """Node -> the flows it answered (a flow the router moved shows under both nodes)."""
    out: dict[str, set[int]] = {}
    for p in probes:
        if p.node is not None:
            out.setdefault(p.node, set()).add(p.flow)
    return out


def run(
    target: str,
    port: int = DEFAULT_PORT,
    interval: float = 0.002,
    duration: float = 10.0,
    flows: int = 1,
) -> list[Probe]:
    """Probe until ``duration`` passes or SIGTERM/SIGINT; late replies get 0.5 s to arrive."""
    if not 1 <= flows <= 1024:
        raise ValueError("flows must be between 1 and 1024")
    ip = ipaddress.ip_address(target)
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    selector = selectors.DefaultSelector()
    socks = []
    for _ in range(flows):
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        socks.append(sock)
    sent: dict[int, float] = {}
    replies: dict[int, tuple[float, str]] = {}
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    start = time.monotonic()
    end = start + duration
    next_send = start
    seq = 0
    drain_until: float | None = None
    while True:
        now = time.monotonic()
        if drain_until is None and (stopping or now >= end):
            drain_until = now + 0.5
        if drain_until is not None and now >= drain_until:
            break
        if drain_until is None and now >= next_send:
            try:
                socks[seq % flows].sendto(_HEADER.pack(_MAGIC, seq), (target, port))
            except OSError:
                pass  # e.g. neighbour resolution failed (EHOSTUNREACH): counts as lost
            sent[seq] = now
            seq += 1
            next_send += interval
            if next_send < now:  # we fell behind (CPU starved): do not burst to catch up
                next_send = now + interval
        wake = drain_until if drain_until is not None else next_send
        for key, _mask in selector.select(timeout=max(0.0, wake - time.monotonic())):
            _read(key.fileobj, replies)  # type: ignore[arg-type]
    for sock in socks:
        sock.close()
    out = []
    for s, t in sent.items():
        replied, node = replies.get(s, (None, None))
        out.append(Probe(s, t, replied, node, s % flows))
    return out


def _read(sock: socket.socket, replies: dict[int, tuple[float, str]]) -> None:
    while True:
        try:
            data = sock.recv(2048)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # ICMP errors (port unreachable while an echo restarts)
            continue
        now = time.monotonic()
        if len(data) < _HEADER.size + 1 or data[:4] != _MAGIC:
            continue
        _magic, seq = _HEADER.unpack_from(data)
        name = data[_HEADER.size :].lstrip(b"|").decode(errors="replace")
        replies.setdefault(seq, (now, name))


def to_json(target: str, interval: float, probes: Sequence[Probe]) -> str:
    return json.dumps(
        {
            "target": target,
            "interval": interval,
            "probes": [[p.seq, p.sent, p.replied, p.node, p.flow] for p in probes],
        }
    )


def from_json(text: str) -> list[Probe]:
    return [Probe(*row) for row in json.loads(text)["probes"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="VIP to probe")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--interval", type=float, default=0.002, help="seconds between probes")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds to probe")
    parser.add_argument("--flows", type=int, default=1, help="source sockets used in turn")
    parser.add_argument("--out", help="write the JSON here instead of stdout")
    args = parser.parse_args(argv)
    probes = run(args.target, args.port, args.interval, args.duration, args.flows)
    text = to_json(args.target, args.interval, probes)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
