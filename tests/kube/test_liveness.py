"""Liveness: /healthz fails while a watch, the Lease loop or the status thread is stuck, and
watches notice a silently dead connection within about a minute."""

from __future__ import annotations

import asyncio
import socket
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest
from helpers.tcp_proxy import HangingProxy
from kubernetes import client
from prometheus_client import CollectorRegistry

from l2agent.controller.runner import Controller, ControllerConfig
from l2agent.health import HealthServer
from l2agent.kube.convert import new_api_client
from l2agent.kube.heartbeat import Heartbeats, Stuck
from l2agent.kube.lease import LeaseConfig
from l2agent.kube.watch import RESOURCES, DeltaKind, WatchConfig, Watcher

from ._util import Pump, wait_until

NS = "metallb-system"


def test_heartbeats_name_only_the_silent_loops() -> None:
    hb = Heartbeats()
    hb.register("watch/services", 10.0, now=0.0)
    hb.register("lease", 2.0, now=0.0)
    hb.beat("watch/services", 5.0)
    hb.beat("unknown", 5.0)  # never registered: ignored
    assert hb.stuck(2.0) == []
    assert hb.stuck(3.0) == [Stuck("lease", 3.0, 2.0)]
    assert [s.name for s in hb.stuck(16.0)] == ["lease", "watch/services"]
    hb.unregister("lease")
    assert hb.stuck(14.0) == []
    assert "lease: no progress for 3s" in str(Stuck("lease", 3.0, 2.0))
    with pytest.raises(ValueError):
        hb.register("x", 0, now=0.0)


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def healthz_while(live: Any, check: Any) -> Any:
    """Run a HealthServer with `live` on a loop in a thread; `check(port)` meanwhile."""
    result: list[Any] = []

    async def main() -> None:
        server = HealthServer(CollectorRegistry(), host="127.0.0.1", port=0, live=live)
        await server.start()
        try:
            port = server.address[1]
            result.append(await asyncio.get_running_loop().run_in_executor(None, check, port))
        finally:
            await server.close()

    asyncio.run(main())
    return result[0]


def test_healthz_answers_503_naming_what_is_stuck() -> None:
    stuck: list[Stuck] = []

    def check(port: int) -> list[tuple[int, str]]:
        first = _get(port, "/healthz")
        stuck.append(Stuck("watch/services", 200.0, 141.0))
        return [first, _get(port, "/healthz")]

    ok, failing = healthz_while(lambda: list(stuck), check)
    assert ok == (200, "ok\n")
    assert failing[0] == 503
    assert "watch/services: no progress for 200s" in failing[1]


def test_controller_liveness_fails_while_the_lease_loop_is_wedged(
    apiserver: Any, api_client: client.ApiClient
) -> None:
    cfg = ControllerConfig(
        namespace=NS,
        identity="pod-a",
        lease=LeaseConfig(lease_duration=3, renew_deadline=2, retry_period=0.05),
        watch=WatchConfig(backoff_initial=0.02, backoff_max=0.2),
        debounce=0.02,
        memberlist_secret=None,
    )
    c = Controller(api_client, cfg)
    release = threading.Event()
    renew = c.elector.try_acquire_or_renew

    def wedged() -> bool:
        if c.elector.is_leader:
            release.wait(30)  # a call that does not come back (as before request timeouts)
        return renew()

    c.elector.try_acquire_or_renew = wedged  # type: ignore[method-assign]
    c.start()
    try:
        assert c.elector.wait_for_leadership(10)
        assert c.stuck() == []
        wait_until(lambda: [s.name for s in c.stuck()] == ["lease"], what="lease stuck")

        def check(port: int) -> tuple[int, str]:
            return _get(port, "/healthz")

        status, body = healthz_while(c.stuck, check)
        assert status == 503 and "lease" in body
        release.set()
        wait_until(lambda: c.stuck() == [], what="live again")
    finally:
        release.set()
        c.stop()


def svc(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer"},
    }


def test_a_silent_watch_connection_is_noticed_and_resumed(apiserver: Any) -> None:
    """The connection stays open but nothing comes back (a hung server, a dead path): the
    watcher gives it up after the watch's timeout plus the read slack, and resumes."""
    proxy = HangingProxy(apiserver.port)
    api = new_api_client(None, host=proxy.url)
    cfg = WatchConfig(watch_timeout=1, read_slack=0.5, backoff_initial=0.05, backoff_max=0.1)
    beats: list[int] = []
    w = Watcher(api, RESOURCES["services"], config=cfg, heartbeat=lambda: beats.append(1))
    p = Pump(w)
    try:
        assert p.next().kind is DeltaKind.REPLACED
        apiserver.wait_for_watches("services")
        proxy.hang()
        wait_until(lambda: w.failures >= 1, timeout=cfg.max_silence + 3, what="noticed")
        assert not w.connected
        proxy.resume()
        apiserver.put(svc("after"))
        delta = p.next(timeout=cfg.max_silence + 5)
        assert delta.kind is DeltaKind.ADDED and delta.obj is not None
        assert delta.obj["metadata"]["name"] == "after"
        assert len(beats) >= 3  # the loop kept beating through the outage
    finally:
        proxy.close()
        p.stop()
        api.close()


def test_default_timings_notice_a_dead_connection_within_a_minute(
    apiserver: Any,
) -> None:
    """With the shipped defaults: a watch the server keeps silent is given up within
    75 s, and every client socket has TCP keepalive that finds a vanished peer in 30 s."""
    assert WatchConfig().max_silence <= 75
    api = new_api_client(None, host=apiserver.url)
    try:
        resp = client.CoreV1Api(api).list_namespace(_preload_content=False)
        sock = resp.connection.sock  # the socket this request went over
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        idle = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
        interval = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL)
        count = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT)
        assert idle + interval * count <= 30
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) <= 30_000
        resp.read()
        resp.release_conn()
    finally:
        api.close()
