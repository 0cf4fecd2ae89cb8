"""The UDP side of a member: one non-blocking socket, datagrams timestamped at receipt.

asyncio's datagram transport reads one datagram per loop iteration, so after a stall the
engine's overdue timers would run while acks and refutations still sit unread in the
socket, and the member would blame its healthy peers for its own slowness. Here a readable
socket is read until it is empty (a bounded batch per wake-up), and `drain()` lets the
runtime read what is waiting before it runs the engine's timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable

from gossip.actions import Address

__all__ = ["UdpEndpoint", "open_udp"]

log = logging.getLogger(__name__)

_RECV_BUFFER = 4 * 1024 * 1024  # memberlist asks for a large socket buffer too
_MAX_DATAGRAM = 65536
_BATCH = 256
"""Datagrams read per wake-up at most, so one busy socket cannot hold the loop."""

PacketHandler = Callable[[bytes, Address, float], None]


class UdpEndpoint:
    """Hands each datagram to `on_packet(data, (ip, port), loop.time())` and sends datagrams."""

    def __init__(self, sock: socket.socket, on_packet: PacketHandler) -> None:
        self._sock = sock
        self._on_packet = on_packet
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self.send_errors = 0
        self.received = 0
        self._loop.add_reader(sock.fileno(), self.drain)

    def drain(self, limit: int = _BATCH) -> int:
        """Read up to `limit` waiting datagrams now; how many were read."""
        n = 0
        while n < limit and not self._closed:
            try:
                data, addr = self._sock.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. an ICMP error queued on the socket
                log.debug("udp receive error: %s", exc)
                continue
            n += 1
            self._on_packet(data, (str(addr[0]), int(addr[1])), self._loop.time())
        self.received += n
        return n

    def send(self, data: bytes, addr: Address) -> None:
        if self._closed:
            return
        try:
            self._sock.sendto(data, addr)
        except OSError as exc:  # full buffer or unreachable: UDP is best effort
            self.send_errors += 1
            log.debug("udp send to %s failed: %s", addr, exc)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()


async def open_udp(host: str, port: int, on_packet: PacketHandler) -> UdpEndpoint:
    """Bind a datagram socket on host:port."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        with contextlib.suppress(OSError):  # the kernel may cap it; not fatal
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECV_BUFFER)
        sock.setblocking(False)
        sock.bind(addr)
    except OSError:
        sock.close()
        raise
    return UdpEndpoint(sock, on_packet)
