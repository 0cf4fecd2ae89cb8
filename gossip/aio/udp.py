"""The UDP side of a member: one datagram endpoint, timestamps taken at receipt."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

from gossip.actions import Address

__all__ = ["UdpEndpoint", "open_udp"]

log = logging.getLogger(__name__)

_RECV_BUFFER = 4 * 1024 * 1024  # memberlist asks for a large socket buffer too

PacketHandler = Callable[[bytes, Address, float], None]


class UdpEndpoint(asyncio.DatagramProtocol):
    """Hands each datagram to `on_packet(data, (ip, port), loop.time())` and sends datagrams."""

    def __init__(self, on_packet: PacketHandler) -> None:
        self._on_packet = on_packet
        self._transport: asyncio.DatagramTransport | None = None
        self._loop = asyncio.get_running_loop()
        self.send_errors = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            import socket

            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECV_BUFFER)
            except OSError:  # pragma: no cover - the kernel caps it; not fatal
                log.debug("could not raise SO_RCVBUF")

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        now = self._loop.time()
        self._on_packet(data, (str(addr[0]), int(addr[1])), now)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a dead peer lands here; the probe logic handles the loss.
        log.debug("udp error: %s", exc)

    def send(self, data: bytes, addr: Address) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        try:
            self._transport.sendto(data, addr)
        except OSError as exc:
            self.send_errors += 1
            log.debug("udp send to %s failed: %s", addr, exc)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def open_udp(host: str, port: int, on_packet: PacketHandler) -> UdpEndpoint:
    """Bind a datagram endpoint on host:port."""
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(
        lambda: UdpEndpoint(on_packet), local_addr=(host, port)
    )
    return protocol
