"""The TCP side of a member: a stream server and dialled streams, keyed by the engine's conn_id.

Each connection runs one task that executes the engine's stream actions for it in order
(open, reply, close) and one reader that hands every chunk to the engine with the time it
arrived. Nothing here understands the bytes; deadlines of whole exchanges are the engine's,
the dial deadline of an `OpenStream` is enforced here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from gossip.actions import Address, CloseStream, OpenStream, ReplyStream, StreamAction

__all__ = ["StreamCallbacks", "TcpStreams"]

log = logging.getLogger(__name__)

_READ_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class StreamCallbacks:
    """How the TCP side reports to the runtime (which feeds the engine and flushes)."""

    accepted: Callable[[Address, float], int]
    data: Callable[[int, bytes, float], None]
    failed: Callable[[int, float], None]
    flush: Callable[[], None]
    """Run after `accepted` once the connection is registered, so actions reach it."""


@dataclass(slots=True)
class _Conn:
    conn_id: int
    ops: asyncio.Queue[StreamAction | None] = field(default_factory=asyncio.Queue)
    writer: asyncio.StreamWriter | None = None
    reader_task: asyncio.Task[None] | None = None
    task: asyncio.Task[None] | None = None
    closed: bool = False
    inbound: bool = False


class TcpStreams:
    """The stream server on the member's port plus every open connection."""

    def __init__(self, callbacks: StreamCallbacks) -> None:
        self._cb = callbacks
        self._loop = asyncio.get_running_loop()
        self._conns: dict[int, _Conn] = {}
        self._server: asyncio.Server | None = None

    async def listen(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._accepted, host, port, reuse_address=True)

    # ------------------------------------------------------------------ engine actions

    def execute(self, action: StreamAction) -> None:
        conn = self._conns.get(action.conn_id)
        if conn is None:
            if not isinstance(action, OpenStream):
                return  # the connection already went away; nothing to do
            conn = self._start(action.conn_id)
        conn.ops.put_nowait(action)

    def _start(self, conn_id: int, writer: asyncio.StreamWriter | None = None) -> _Conn:
        conn = _Conn(conn_id, writer=writer)
        self._conns[conn_id] = conn
        conn.task = self._loop.create_task(self._run(conn))
        return conn

    async def _run(self, conn: _Conn) -> None:
        try:
            while True:
                action = await conn.ops.get()
                if action is None:
                    return
                if isinstance(action, OpenStream):
                    await self._open(conn, action)
                elif isinstance(action, ReplyStream):
                    await self._write(conn, action.data)
                elif isinstance(action, CloseStream):
                    await self._close(conn)
                    return
        except (TimeoutError, OSError, ConnectionError) as exc:
            log.debug("stream %d failed: %s", conn.conn_id, exc)
            self._fail(conn)
        finally:
            await self._teardown(conn)

    async def _open(self, conn: _Conn, action: OpenStream) -> None:
        timeout = max(0.0, action.deadline - self._loop.time())
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(action.addr[0], action.addr[1]), timeout
        )
        conn.writer = writer
        conn.reader_task = self._loop.create_task(self._read(conn, reader))
        await self._write(conn, action.data)

    async def _write(self, conn: _Conn, data: bytes) -> None:
        if conn.writer is None or conn.closed:
            return
        conn.writer.write(data)
        await conn.writer.drain()

    async def _close(self, conn: _Conn) -> None:
        conn.closed = True
        if conn.writer is not None:
            with contextlib.suppress(OSError, ConnectionError):
                await conn.writer.drain()

    def _fail(self, conn: _Conn) -> None:
        if not conn.closed:
            conn.closed = True
            self._cb.failed(conn.conn_id, self._loop.time())

    async def _teardown(self, conn: _Conn) -> None:
        conn.closed = True
        self._conns.pop(conn.conn_id, None)
        if conn.reader_task is not None and not conn.inbound:
            conn.reader_task.cancel()  # an inbound reader is the server's task: it sees EOF
        if conn.writer is not None:
            conn.writer.close()
            with contextlib.suppress(Exception):
                await conn.writer.wait_closed()

    async def _read(self, conn: _Conn, reader: asyncio.StreamReader) -> None:
        try:
            while not conn.closed:
                data = await reader.read(_READ_CHUNK)
                if conn.closed:
                    return
                self._cb.data(conn.conn_id, data, self._loop.time())
                if not data:
                    return
        except (OSError, ConnectionError) as exc:
            log.debug("stream %d read failed: %s", conn.conn_id, exc)
            self._fail(conn)
            conn.ops.put_nowait(None)

    # ------------------------------------------------------------------ server side

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("", 0)
        conn_id = self._cb.accepted((str(peer[0]), int(peer[1])), self._loop.time())
        conn = self._start(conn_id, writer)
        conn.inbound = True
        conn.reader_task = asyncio.current_task()
        self._cb.flush()  # e.g. a close at the inbound stream limit
        await self._read(conn, reader)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns.values()):
            conn.closed = True
            conn.ops.put_nowait(None)
        tasks = [c.task for c in self._conns.values() if c.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
