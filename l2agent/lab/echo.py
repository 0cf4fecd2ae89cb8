"""UDP echo server for the lab: answers every datagram with the request plus the node's name.

Run on each node: ``python -m l2agent.lab.echo --name node1 [--port 7777]``. It listens on
the IPv4 and IPv6 wildcards and answers *from the address the request was sent to* (the VIP),
using IP_PKTINFO / IPV6_PKTINFO, so the client sees the reply come from the VIP it probed,
whichever node owns it. Reply = request (at most 64 bytes) + ``b"|"`` + name.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import selectors
import signal
import socket
import struct
import sys
from types import FrameType

log = logging.getLogger(__name__)

DEFAULT_PORT = 7777
_IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux value; missing from Python's socket
_IN_PKTINFO = struct.Struct("=i4s4s")  # ipi_ifindex, ipi_spec_dst, ipi_addr
_IN6_PKTINFO = struct.Struct("=16si")  # ipi6_addr, ipi6_ifindex
_CMSG_SPACE = socket.CMSG_SPACE(_IN6_PKTINFO.size)


def reply_for(request: bytes, name: bytes) -> bytes:
    """The echo answer: the request (capped) then ``|name``."""
    return request[:64] + b"|" + name


def _open(family: socket.AddressFamily, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        sock.bind(("::", port))
    else:
        sock.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, 1)
        sock.bind(("0.0.0.0", port))
    sock.setblocking(False)
    return sock


def _answer(sock: socket.socket, name: bytes) -> None:
    try:
        data, ancdata, _flags, peer = sock.recvmsg(2048, _CMSG_SPACE)
    except (BlockingIOError, InterruptedError):
        return
    cmsgs = []
    for level, kind, cdata in ancdata:
        if level == socket.IPPROTO_IP and kind == _IP_PKTINFO:
            _ifindex, _spec, dst = _IN_PKTINFO.unpack_from(cdata)
            cmsgs.append((level, kind, _IN_PKTINFO.pack(0, dst, bytes(4))))
        elif level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO:
            dst6, _ifindex = _IN6_PKTINFO.unpack_from(cdata)
            cmsgs.append((level, kind, _IN6_PKTINFO.pack(dst6, 0)))
    try:
        sock.sendmsg([reply_for(data, name)], cmsgs, 0, peer)
    except OSError as exc:  # e.g. the VIP just left this node: the client retries anyway
        log.debug("echo reply to %s failed: %s", peer, exc)


def serve(name: str, port: int = DEFAULT_PORT) -> None:
    """Serve until SIGTERM/SIGINT."""
    encoded = name.encode()
    selector = selectors.DefaultSelector()
    socks = [_open(socket.AF_INET, port), _open(socket.AF_INET6, port)]
    for sock in socks:
        selector.register(sock, selectors.EVENT_READ, sock)
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"echo {name} listening on udp/{port}", flush=True)
    try:
        while not stopping:
            for key, _mask in selector.select(timeout=0.5):
                _answer(key.data, encoded)
    finally:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True, help="node name put in every reply")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    serve(args.name, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
