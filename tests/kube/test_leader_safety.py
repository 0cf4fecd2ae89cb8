"""Never two leaders: a replica whose API connection hangs (accepted, never answered) steps
down on time, before the standby takes over; a leader checks its Lease before every write,
and every write is conditional on the version it was decided on."""

from __future__ import annotations

import threading
import time
from typing import Any

from helpers.tcp_proxy import HangingProxy
from kubernetes import client

from l2agent.controller.runner import Controller, ControllerConfig
from l2agent.kube.convert import new_api_client
from l2agent.kube.lease import LeaseConfig, LeaseElector
from l2agent.kube.watch import WatchConfig

from ._util import wait_until

NS = "metallb-system"
# leaseDurationSeconds is whole seconds: 2 s here, so the standby waits 2 s from the last
# renewal it saw, while the leader stops leading 1 s after its last renewal began.
QUICK = LeaseConfig(lease_duration=2, renew_deadline=1, retry_period=0.2)


class Replica:
    """One LeaseElector on a thread, with the times it started and stopped leading."""

    def __init__(self, api: client.ApiClient, identity: str) -> None:
        self.started: list[float] = []
        self.stopped: list[float] = []
        self.elector = LeaseElector(
            api,
            namespace=NS,
            name="l2agent-controller",
            identity=identity,
            config=QUICK,
            on_started_leading=lambda: self.started.append(time.monotonic()),
            on_stopped_leading=lambda: self.stopped.append(time.monotonic()),
        )
        self.thread = threading.Thread(target=self.elector.run, daemon=True)

    def start(self) -> Replica:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.elector.stop()
        self.thread.join(5)


def test_a_hung_api_connection_never_makes_two_leaders(apiserver: Any) -> None:
    proxy = HangingProxy(apiserver.port)
    via_proxy = new_api_client(None, host=proxy.url)
    direct = new_api_client(None, host=apiserver.url)
    a = Replica(via_proxy, "pod-a").start()
    assert a.elector.wait_for_leadership(10)
    b = Replica(direct, "pod-b").start()
    try:
        wait_until(lambda: b.elector.holder == "pod-a", what="b sees a's lease")
        hung_at = time.monotonic()
        proxy.hang()
        both = 0
        deadline = hung_at + 10
        while time.monotonic() < deadline:  # sample until b has led for half a second
            if a.elector.is_leader and b.elector.is_leader:
                both += 1
            if b.started and time.monotonic() > b.started[0] + 0.5:
                break
            time.sleep(0.002)
        assert b.elector.is_leader, "the standby never took over"
        assert both == 0, "both replicas acted as leader"
        assert not a.elector.is_leader
        # a stepped down on its own timer while its calls hung, before b took over, and
        # within renew_deadline (+ one retry period of slack) of the hang.
        assert a.stopped and b.started
        assert a.stopped[0] <= b.started[0]
        assert a.stopped[0] - hung_at <= QUICK.renew_deadline + QUICK.retry_period + 0.5
        assert a.elector.step_downs == 1
    finally:
        proxy.close()
        a.stop()
        b.stop()
        via_proxy.close()
        direct.close()


def test_every_lease_call_is_bounded_by_the_retry_period(apiserver: Any) -> None:
    proxy = HangingProxy(apiserver.port)
    api = new_api_client(None, host=proxy.url)
    try:
        e = LeaseElector(api, namespace=NS, name="l", identity="pod-a", config=QUICK)
        assert e.try_acquire_or_renew()
        proxy.hang()
        began = time.monotonic()
        assert e.try_acquire_or_renew()  # still within renew_deadline: leading
        assert time.monotonic() - began < 2 * QUICK.retry_period + 0.5
    finally:
        proxy.close()
        api.close()


def pool() -> dict[str, Any]:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "pool", "namespace": NS},
        "spec": {"addresses": ["192.0.2.0/28"]},
    }


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.1", "ports": [{"port": 80}]},
    }


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_leadership_is_checked_before_each_write(
    apiserver: Any, api_client: client.ApiClient
) -> None:
    """The Lease runs out in the middle of a pass: the writes after that point are not
    made (they wait for the next leader), and those made carried their resourceVersion."""
    apiserver.put(pool())
    for name in ("a", "b", "c"):
        apiserver.put(service(name))
    clock = FakeClock()
    cfg = ControllerConfig(
        namespace=NS,
        identity="pod-a",
        lease=LeaseConfig(lease_duration=30, renew_deadline=20, retry_period=10),
        watch=WatchConfig(backoff_initial=0.02, backoff_max=0.2),
        debounce=0.2,
        memberlist_secret=None,
    )
    c = Controller(api_client, cfg, clock=clock)
    write = c.writer.write_allocation
    written: list[str] = []

    def write_then_expire(change: Any) -> Any:
        written.append(change.key)
        clock.t += 21  # the renewal deadline passes while this write is in flight
        return write(change)

    c.writer.write_allocation = write_then_expire  # type: ignore[method-assign]
    reports: list[Any] = []
    reconcile = c.reconcile

    def recorded() -> Any:
        reports.append(reconcile())
        return reports[-1]

    c.reconcile = recorded  # type: ignore[method-assign]
    c.start()
    try:
        wait_until(lambda: written, what="first write")
        wait_until(lambda: any(r.skipped for r in reports), what="pass ends")
        time.sleep(0.3)
        assert len(written) == 1
        (first,) = [r for r in reports if r.writes or r.skipped == "lost leadership"]
        assert (first.writes, first.skipped) == (1, "lost leadership")
        assert all(r.writes == 0 for r in reports if r is not first)
        patches = apiserver.requests_for("PATCH", "/services/")
        assert len(patches) == 1
        assert patches[0].path.endswith("/status")
        assert patches[0].body["metadata"]["resourceVersion"]
    finally:
        c.stop()
