"""List-then-watch against the fake API server, driven by the real `kubernetes` client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from l2agent.kube.watch import RESOURCES, Backoff, DeltaKind, WatchConfig, Watcher

from ._util import Pump, wait_until

FAST = WatchConfig(watch_timeout=30, backoff_initial=0.02, backoff_max=0.2)


def svc(name: str, ns: str = "default", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"type": "LoadBalancer", **spec},
    }


@pytest.fixture
def pump(api_client: client.ApiClient) -> Iterator[Pump]:
    p = Pump(Watcher(api_client, RESOURCES["services"], config=FAST))
    yield p
    p.stop()


def names(delta: Any) -> list[str]:
    return sorted(o["metadata"]["name"] for o in delta.objects)


def test_list_then_watch_from_the_list_version(apiserver: Any, pump: Pump) -> None:
    apiserver.put(svc("a"))
    apiserver.put(svc("b", "other"))
    first = pump.next()
    assert first.kind is DeltaKind.REPLACED
    assert names(first) == ["a", "b"]
    # Typed lists omit kind/apiVersion on items; the watcher fills them for build_state.
    assert all(o["kind"] == "Service" and o["apiVersion"] == "v1" for o in first.objects)
    apiserver.wait_for_watches("services")
    (watch,) = apiserver.requests_for("GET", "/api/v1/services")[1:]
    assert watch.query["resourceVersion"] == str(apiserver.resource_version)
    assert watch.query["allowWatchBookmarks"] == "true"
    assert 30 <= int(watch.query["timeoutSeconds"]) < 60  # jittered, as client-go does
    apiserver.put(svc("c"))
    apiserver.put(svc("a", clusterIP="10.0.0.1"))
    apiserver.remove("Service", "other", "b")
    got = [pump.next() for _ in range(3)]
    assert [(d.kind, d.obj["metadata"]["name"]) for d in got if d.obj] == [
        (DeltaKind.ADDED, "c"),
        (DeltaKind.MODIFIED, "a"),
        (DeltaKind.DELETED, "b"),
    ]


def test_dropped_watch_resumes_from_last_version_without_relisting(
    apiserver: Any, pump: Pump
) -> None:
    apiserver.put(svc("a"))
    assert pump.next().kind is DeltaKind.REPLACED
    apiserver.wait_for_watches("services")
    apiserver.put(svc("b"))
    assert pump.next().kind is DeltaKind.ADDED
    seen = apiserver.resource_version
    apiserver.drop_watches()
    apiserver.put(svc("c"))  # happens while the client is reconnecting
    d = pump.next()
    assert (d.kind, d.obj and d.obj["metadata"]["name"]) == (DeltaKind.ADDED, "c")
    watches = [r for r in apiserver.requests_for("GET", "/api/v1/services") if "watch" in r.query]
    assert watches[-1].query["resourceVersion"] == str(seen)
    lists = [r for r in apiserver.requests_for("GET", "/api/v1/services") if "watch" not in r.query]
    assert len(lists) == 1
    assert pump.watcher.relists == 0
    assert pump.watcher.failures >= 1


def test_410_gone_relists_and_replaces_the_set(apiserver: Any, pump: Pump) -> None:
    apiserver.put(svc("a"))
    apiserver.put(svc("b"))
    assert names(pump.next()) == ["a", "b"]
    apiserver.wait_for_watches("services")
    apiserver.drop_watches()
    # While disconnected: b goes away and the history is compacted, so resuming is 410.
    apiserver.remove("Service", "default", "b")
    apiserver.compact()
    d = pump.next()
    assert d.kind is DeltaKind.REPLACED
    assert names(d) == ["a"]
    assert pump.watcher.relists == 1


def test_bookmarks_advance_the_resume_version(apiserver: Any, pump: Pump) -> None:
    apiserver.put(svc("a"))
    pump.next()
    apiserver.wait_for_watches("services")
    apiserver.put({"kind": "Node", "metadata": {"name": "n1"}})  # moves the global version
    apiserver.send_bookmarks()
    rv = str(apiserver.resource_version)
    wait_until(lambda: pump.watcher.resource_version == rv, what="bookmark")
    assert pump.empty_for(0.05)  # a bookmark is not a delta
    apiserver.drop_watches()

    def watches() -> list[Any]:
        return [r for r in apiserver.requests_for("GET", "/api/v1/services") if "watch" in r.query]

    wait_until(lambda: len(watches()) == 2, what="re-watch")
    assert watches()[-1].query["resourceVersion"] == rv


def test_server_side_watch_timeout_resumes_quietly(
    apiserver: Any, api_client: client.ApiClient
) -> None:
    w = Watcher(
        api_client, RESOURCES["services"], config=WatchConfig(watch_timeout=1, backoff_initial=0.02)
    )
    p = Pump(w)
    try:
        p.next()
        wait_until(
            lambda: len([r for r in apiserver.requests if "watch" in r.query]) >= 2,
            what="second watch after timeoutSeconds",
        )
        assert w.failures == 0 and w.relists == 0
        apiserver.put(svc("late"))
        assert p.next().kind is DeltaKind.ADDED
    finally:
        p.stop()


def test_outage_emits_nothing_then_catches_up(apiserver: Any, pump: Pump) -> None:
    apiserver.put(svc("a"))
    pump.next()
    apiserver.wait_for_watches("services")
    with apiserver.outage():
        apiserver.put(svc("b"))  # changes while the server is unreachable
        wait_until(lambda: pump.watcher.failures >= 2, what="failed reconnects")
        assert not pump.watcher.connected
        assert pump.q.empty()  # nothing withdrawn, nothing replaced
    d = pump.next()
    assert (d.kind, d.obj and d.obj["metadata"]["name"]) == (DeltaKind.ADDED, "b")
    assert pump.watcher.connected


def test_http_errors_back_off_and_retry(apiserver: Any, api_client: client.ApiClient) -> None:
    apiserver.fail_next("GET", "/apis/metallb.io/v1beta1/namespaces/metallb-system", 500)
    apiserver.fail_next("GET", "/apis/metallb.io/v1beta1/namespaces/metallb-system", 403)
    apiserver.put(
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": "p", "namespace": "metallb-system"},
            "spec": {"addresses": ["192.0.2.0/28"]},
        }
    )
    w = Watcher(api_client, RESOURCES["ipaddresspools"], namespace="metallb-system", config=FAST)
    p = Pump(w)
    try:
        d = p.next()
        assert d.kind is DeltaKind.REPLACED and names(d) == ["p"]
        assert w.failures == 2
    finally:
        p.stop()


def test_every_resource_kind_lists(apiserver: Any, api_client: client.ApiClient) -> None:
    for name, res in RESOURCES.items():
        w = Watcher(api_client, res, namespace="metallb-system", config=FAST)
        d = next(iter(w.deltas()))
        assert d.kind is DeltaKind.REPLACED, name
        w.stop()


def test_backoff_doubles_to_its_cap_and_resets() -> None:
    import random

    b = Backoff(0.5, 4.0, 0.0, random.Random(1))
    assert [b.delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.reset()
    assert b.delay() == 0.5
    j = Backoff(1.0, 8.0, 0.5, random.Random(2))
    assert all(1.0 <= j.delay() / base <= 1.5 for base in (1.0, 2.0, 4.0))
