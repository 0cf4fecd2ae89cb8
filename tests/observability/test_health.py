"""The HTTP endpoint on 127.0.0.1 (random port), judged by urllib and a raw socket client."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from l2agent.health import HealthServer, parse_metrics_addr, speaker_status, status_document
from l2agent.metrics import MemberRow, OwnershipRow, SpeakerMetrics

ROWS = [
    OwnershipRow(
        ipaddress.ip_address("192.0.2.10"),
        "default/web",
        "node-a",
        True,
        ("eth0",),
        1_700_000_000.25,
    ),
    OwnershipRow(ipaddress.ip_address("2001:db8::10"), "default/web6", "node-b", False),
]
MEMBERS = [
    MemberRow("node-b", "127.0.0.1:7947", "suspect"),
    MemberRow("node-a", "127.0.0.1:7946", "alive"),
]


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _serve(
    check: Callable[[int], Awaitable[None]],
    *,
    ready: Callable[[], bool] = lambda: True,
    with_status: bool = True,
) -> None:
    """Run a server on 127.0.0.1:0 for the duration of ``check(port)``; always close it."""

    async def main() -> None:
        registry = CollectorRegistry()
        metrics = SpeakerMetrics(
            registry, "node-a", ownership=lambda: ROWS, members=lambda: MEMBERS
        )
        metrics.request_received(ROWS[0].ip)
        status = speaker_status("node-a", lambda: ROWS, lambda: MEMBERS) if with_status else None
        server = HealthServer(registry, host="127.0.0.1", port=0, ready=ready, status=status)
        await server.start()
        try:
            await check(server.address[1])
        finally:
            await server.close()

    asyncio.run(main())


def test_metrics_endpoint_serves_prometheus_text() -> None:
    async def check(port: int) -> None:
        code, ctype, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
        assert code == 200
        assert ctype.startswith("text/plain; version=0.0.4")
        names = {f.name for f in text_string_to_metric_families(body.decode())}
        assert {"metallb_layer2_requests_received", "metallb_speaker_announced"} <= names
        assert b'metallb_layer2_requests_received{ip="192.0.2.10"} 1.0' in body

    _serve(check)


def test_healthz_and_readyz() -> None:
    state = {"ready": False}

    async def check(port: int) -> None:
        base = f"http://127.0.0.1:{port}"
        assert (await asyncio.to_thread(_get, base + "/healthz"))[0] == 200
        assert (await asyncio.to_thread(_get, base + "/readyz"))[0] == 503
        state["ready"] = True
        assert (await asyncio.to_thread(_get, base + "/readyz"))[0] == 200

    _serve(check, ready=lambda: state["ready"])


def test_readyz_is_503_when_the_check_raises() -> None:
    def broken() -> bool:
        raise RuntimeError("no plan yet")

    async def check(port: int) -> None:
        assert (await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/readyz"))[0] == 503

    _serve(check, ready=broken)


def test_status_json() -> None:
    async def check(port: int) -> None:
        code, ctype, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/status")
        assert code == 200
        assert ctype == "application/json"
        doc: dict[str, Any] = json.loads(body)
        assert doc["node"] == "node-a"
        assert doc["ownership"][0] == {
            "ip": "192.0.2.10",
            "service": "default/web",
            "owner": "node-a",
            "announcing": True,
            "interfaces": ["eth0"],
            "since": "2023-11-14T22:13:20.250Z",
            "since_unix": 1_700_000_000.25,
        }
        assert doc["ownership"][1]["since"] is None
        assert [m["name"] for m in doc["members"]] == ["node-a", "node-b"]
        assert doc["members"][1] == {"name": "node-b", "addr": "127.0.0.1:7947", "state": "suspect"}

    _serve(check)


def test_status_is_404_without_a_source() -> None:
    async def check(port: int) -> None:
        assert (await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/status"))[0] == 404

    _serve(check, with_status=False)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", b"404"),
        (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", b"405"),
        (b"garbage\r\n\r\n", b"400"),
        (b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 40_000 + b"\r\n\r\n", b"431"),
        (b"\xff\xfe\x00 \x01 \x02\r\n\r\n", b"400"),
    ],
)
def test_bad_requests_get_an_answer_not_a_crash(request_bytes: bytes, status: bytes) -> None:
    async def check(port: int) -> None:
        answer = await asyncio.to_thread(_raw, port, request_bytes)
        assert answer.split(b" ", 2)[1] == status
        # The server still serves the next client.
        assert (await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/healthz"))[0] == 200

    _serve(check)


def test_half_request_then_close_is_survived() -> None:
    async def check(port: int) -> None:
        answer = await asyncio.to_thread(_raw, port, b"GET /metr")
        assert answer == b""
        assert (await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/healthz"))[0] == 200

    _serve(check)


def test_head_has_no_body() -> None:
    async def check(port: int) -> None:
        answer = await asyncio.to_thread(_raw, port, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert answer.endswith(b"\r\n\r\n")

    _serve(check)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (":7472", ("", 7472)),
        ("0.0.0.0:9000", ("0.0.0.0", 9000)),
        ("127.0.0.1", ("127.0.0.1", 7472)),
        ("[::1]:7472", ("::1", 7472)),
        ("[::]", ("::", 7472)),
        ("2001:db8::1", ("2001:db8::1", 7472)),
        ("", ("", 7472)),
    ],
)
def test_parse_metrics_addr(text: str, expected: tuple[str, int]) -> None:
    assert parse_metrics_addr(text) == expected


@pytest.mark.parametrize("text", ["[::1", "host:port", "h:70000", "[::1]x", "[h]:1", "h:"])
def test_parse_metrics_addr_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_metrics_addr(text)


def test_status_document_sorts_and_lowercases() -> None:
    doc = status_document("n", reversed(ROWS), [MemberRow("z", "a:1", "ALIVE")])
    assert [r["ip"] for r in doc["ownership"]] == ["192.0.2.10", "2001:db8::10"]
    assert doc["members"][0]["state"] == "alive"


def test_slow_connections_are_capped_and_timed_out() -> None:
    """Issue 11, item 8: 300 idle connections may hold at most `max_connections`
    descriptors, for at most `timeout` seconds; then scrapes work again."""
    import os

    async def go() -> None:
        registry = CollectorRegistry()
        server = HealthServer(registry, host="127.0.0.1", port=0, max_connections=8, timeout=0.5)
        await server.start()
        port = server.address[1]
        loop = asyncio.get_running_loop()
        fds_before = len(os.listdir("/proc/self/fd"))
        idle = []
        try:
            for _ in range(300):
                sock = socket.socket()
                sock.setblocking(False)
                await loop.sock_connect(sock, ("127.0.0.1", port))
                idle.append(sock)
            await asyncio.sleep(0.2)
            assert server.open_connections <= 8
            # the server side holds at most 8 descriptors (the 300 here are the clients')
            assert len(os.listdir("/proc/self/fd")) - fds_before <= 300 + 8 + 4
            refused = registry.get_sample_value(
                "l2agent_http_connections_refused_total", {"reason": "limit"}
            )
            assert refused is not None and refused >= 280
            await asyncio.sleep(0.8)  # past the timeout: the slow ones are aborted
            assert server.open_connections == 0
            status, _, body = await loop.run_in_executor(
                None, _get, f"http://127.0.0.1:{port}/healthz"
            )
            assert (status, body) == (200, b"ok\n")
            timed_out = registry.get_sample_value(
                "l2agent_http_connections_refused_total", {"reason": "timeout"}
            )
            assert timed_out == 8
        finally:
            for sock in idle:
                sock.close()
            await server.close()

    asyncio.run(go())
