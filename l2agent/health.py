"""The speaker's and controller's HTTP endpoint: /metrics, /healthz, /readyz and /status.

A deliberately small HTTP/1.1 server on asyncio streams (one request per connection, then
close), so the agent needs no web framework. It runs on the agent's event loop, which is
what makes the scrape-time collectors safe: they read the live view on the same thread
that changes it. Bad requests get a 4xx answer and a log line, never an exception.

It can never starve the gossip of file descriptors or time: at most `max_connections`
are open at once (more are closed as soon as they are accepted), and each connection has
`timeout` seconds for the whole exchange, then it is aborted. Both refusals are counted
(`l2agent_http_connections_refused_total{reason}`).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest

from gossip.addresses import parse_address
from l2agent.metrics import MemberRow, OwnershipRow
from l2agent.model.reports import BgpReport

log = logging.getLogger(__name__)

METRICS_PORT = 7472
"""MetalLB's monitoring port (speaker and controller)."""
_MAX_HEADER_BYTES = 16 * 1024
_READ_TIMEOUT = 5.0
MAX_CONNECTIONS = 64
"""Open HTTP connections at once; Prometheus needs one per scrape."""
CONNECTION_TIMEOUT = 10.0
"""Seconds one connection may take, request and answer together."""
#: The classic text format that ``generate_latest`` writes; every Prometheus since 1.x reads it.
#: (prometheus-client 0.26's CONTENT_TYPE_LATEST says version=1.0.0, which older servers and
#: MetalLB-era tooling do not expect.)
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

StatusSource = Callable[[], Mapping[str, Any]]
LivenessCheck = Callable[[], Iterable[object]]
"""What keeps the process from being live: stuck loops, as values whose str() says why
(empty: live)."""


def parse_metrics_addr(text: str, default_port: int = METRICS_PORT) -> tuple[str, int]:
    """`--metrics-addr`: `:7472`, `0.0.0.0:7472`, `[::1]:7472`, `2001:db8::1`, `host`;
    `default_port` (`--metrics-port`) where the text gives none.

    An empty host means every address (`""` for asyncio). Raises `BadAddress` (a
    ValueError) on bad text."""
    return parse_address(text, default_port, allow_empty_host=True)


def _rfc3339(unix: float | None) -> str | None:
    if unix is None:
        return None
    moment = datetime.datetime.fromtimestamp(unix, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status_document(
    node: str,
    rows: Iterable[OwnershipRow],
    members: Iterable[MemberRow],
    bgp: BgpReport | None = None,
) -> dict[str, Any]:
    """The /status JSON: this speaker's ownership table, member list and BGP sessions.

    ``since`` is RFC 3339 UTC (``since_unix`` the same instant in seconds) so both people
    and ``l2agent status`` can read it. ``bgp`` is null on a speaker that has never had a
    BGP session (layer 2 only); else each session the plan asks for with FRR's state of it,
    and ``error`` when FRR could not be read.
    """
    return {
        "node": node,
        "ownership": [
            {
                "ip": str(r.ip),
                "service": r.service,
                "owner": r.owner,
                "announcing": r.announcing,
                "interfaces": sorted(set(r.interfaces)),
                "since": _rfc3339(r.since),
                "since_unix": r.since,
            }
            for r in sorted(rows, key=lambda r: (str(r.ip), r.service))
        ],
        "members": [
            {"name": m.name, "addr": m.addr, "state": m.state.lower()}
            for m in sorted(members, key=lambda m: m.name)
        ],
        "bgp": None if bgp is None else _bgp_section(bgp),
    }


def _bgp_section(bgp: BgpReport) -> dict[str, Any]:
    return {
        "sessions": [
            {
                "peer": s.peer,
                "address": s.address,
                "vrf": s.vrf,
                "state": s.state,
                "established": s.established,
                "prefixes_sent": s.prefixes_sent,
                "bfd": s.bfd,
                "last_reset": s.last_reset,
            }
            for s in bgp.sessions
        ],
        "error": bgp.error,
    }


def speaker_status(
    node: str,
    ownership: Callable[[], Iterable[OwnershipRow]],
    members: Callable[[], Iterable[MemberRow]],
    bgp: Callable[[], BgpReport | None] | None = None,
    sections: Mapping[str, Callable[[], Any]] | None = None,
) -> StatusSource:
    """A /status source built from the same callables the metrics collector uses (``bgp``:
    this node's BGP sessions, None for a speaker without BGP mode), plus optional named
    sections (e.g. ``gossip_keys``), each built at request time."""
    extra: Mapping[str, Callable[[], Any]] = sections if sections is not None else {}

    def document() -> dict[str, Any]:
        doc = status_document(node, ownership(), members(), bgp() if bgp is not None else None)
        for name, section in extra.items():
            doc[name] = section()
        return doc

    return document


class HealthServer:
    """Serves the registry and the health/status callables over HTTP.

    ``ready`` says whether the agent has done its first sync (the /readyz answer);
    ``live`` names what is stuck (the /healthz answer: 200 while it names nothing, else
    503 with one line per stuck loop, so the kubelet restarts a pod whose watch or Lease
    thread hangs; the endpoint itself runs on the event loop, so a stuck loop cannot answer
    at all); ``status`` builds the /status JSON (None: /status answers 404, as on the
    controller).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        host: str = "",
        port: int = METRICS_PORT,
        ready: Callable[[], bool] = lambda: True,
        live: LivenessCheck = lambda: (),
        status: StatusSource | None = None,
        max_connections: int = MAX_CONNECTIONS,
        timeout: float = CONNECTION_TIMEOUT,
    ) -> None:
        self._registry = registry
        self._host = host
        self._port = port
        self._ready = ready
        self._live = live
        self._status = status
        self._server: asyncio.Server | None = None
        self._max = max_connections
        self._timeout = timeout
        self.open_connections = 0
        self._refused = Counter(
            "l2agent_http_connections_refused",
            "HTTP connections to the metrics/health port closed unserved: over the "
            "connection limit, or past the per-connection time limit.",
            ["reason"],
            registry=registry,
        )
        for reason in ("limit", "timeout"):
            self._refused.labels(reason=reason)

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); with port 0 this is where the kernel put us."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("HealthServer is not started")
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    async def start(self) -> None:
        """Bind and start serving (returns once listening)."""
        self._server = await asyncio.start_server(
            self._serve,
            host=self._host or None,
            port=self._port,
            reuse_address=True,
            limit=_MAX_HEADER_BYTES,
        )
        log.info("metrics/health endpoint listening on %s:%d", *self.address)

    async def close(self) -> None:
        """Stop listening and wait for the listening sockets to close."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.open_connections >= self._max:
            self._refused.labels(reason="limit").inc()
            writer.transport.abort()
            return
        self.open_connections += 1
        try:
            async with asyncio.timeout(self._timeout):
                await self._exchange(reader, writer)
        except TimeoutError:
            self._refused.labels(reason="timeout").inc()
            writer.transport.abort()
        finally:
            self.open_connections -= 1

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, ctype, body, head_only = await self._answer(reader)
            reason = _REASONS.get(status, "")
            header = (
                f"HTTP/1.1 {status} {reason}\r\n"
                f"Content-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            ).encode("ascii")
            writer.write(header if head_only else header + body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            log.debug("health client went away: %s", exc)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, str, bytes, bool]:
        text = "text/plain; charset=utf-8"
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
        except TimeoutError:
            return 408, text, b"request timeout\n", False
        except asyncio.LimitOverrunError:
            return 431, text, b"request header too large\n", False
        except asyncio.IncompleteReadError as exc:
            if len(exc.partial) > _MAX_HEADER_BYTES:
                return 431, text, b"request header too large\n", False
            raise
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            log.info("bad HTTP request line %r", request_line[:200])
            return 400, text, b"bad request\n", False
        method, target, _ = parts
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return 405, text, b"method not allowed\n", False
        head_only = method == "HEAD"
        if path == "/metrics":
            try:
                exposition = generate_latest(self._registry)
            except Exception:
                log.warning("metrics collection raised", exc_info=True)
                return 500, text, b"metrics unavailable\n", head_only
            return 200, METRICS_CONTENT_TYPE, exposition, head_only
        if path == "/healthz":
            try:
                stuck = [str(item) for item in self._live()]
            except Exception:
                log.warning("liveness check raised", exc_info=True)
                stuck = ["liveness check raised"]
            if not stuck:
                return 200, text, b"ok\n", head_only
            log.warning("liveness failing: %s", "; ".join(stuck))
            body = ("stuck:\n" + "".join(f"  {line}\n" for line in stuck)).encode()
            return 503, text, body, head_only
        if path == "/readyz":
            try:
                ready = bool(self._ready())
            except Exception:
                log.warning("readiness check raised", exc_info=True)
                ready = False
            if ready:
                return 200, text, b"ready\n", head_only
            return 503, text, b"not ready\n", head_only
        if path == "/status" and self._status is not None:
            try:
                doc = self._status()
            except Exception:
                log.warning("status source raised", exc_info=True)
                return 500, text, b"status unavailable\n", head_only
            body = json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"
            return 200, "application/json", body, head_only
        return 404, text, b"not found\n", head_only


__all__ = [
    "METRICS_PORT",
    "HealthServer",
    "LivenessCheck",
    "StatusSource",
    "parse_metrics_addr",
    "speaker_status",
    "status_document",
]
