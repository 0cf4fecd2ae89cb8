"""The real Speaker fed by Kubernetes through the fake API server: announcements follow the
cluster, survive an API outage unchanged, and a bad pool costs only itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from ipaddress import ip_address
from typing import Any

from prometheus_client import CollectorRegistry

from l2agent.announce.defense import AddressConflict, ConflictPhase
from l2agent.kube.source import SourceConfig
from l2agent.kube.status import LABEL_NODE
from l2agent.kube.watch import WatchConfig
from l2agent.plan import InputSource
from l2agent.speaker.kube import attach_kube_source, peer_addresses
from l2agent.speaker.membership import StaticMembership
from l2agent.speaker.run import Speaker, SpeakerOptions

NS = "metallb-system"
VIP = ip_address("192.0.2.4")
CFG = SourceConfig(
    watch=WatchConfig(watch_timeout=30, backoff_initial=0.02, backoff_max=0.2), debounce=0.02
)


class StubDataPlane:
    """Records what the speaker asks the data plane to announce."""

    def __init__(self, missing: frozenset[str] = frozenset()) -> None:
        self.history: list[dict[Any, Any]] = []
        self.missing = missing

    def apply(self, announcements: Mapping[Any, Any]) -> None:
        self.history.append(dict(announcements))

    @property
    def current(self) -> dict[Any, Any]:
        return self.history[-1] if self.history else {}

    def announce_failed(self, ip: Any) -> bool:
        return bool(self.missing)  # every requested interface is missing

    def interfaces_for(self, ip: Any) -> tuple[str, ...]:
        return ()


def seed(api: Any) -> None:
    api.put(
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": "pool", "namespace": NS},
            "spec": {"addresses": ["192.0.2.4/31"]},
        }
    )
    api.put(
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "L2Advertisement",
            "metadata": {"name": "l2", "namespace": NS},
            "spec": {"ipAddressPools": ["pool"]},
        }
    )
    for n in ("node-1", "node-2"):
        api.put({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n, "labels": {}}})
    api.put(seed_service(api, "web", VIP))


def seed_service(api: Any, name: str, ip: Any) -> dict[str, Any]:
    """A Service holding `ip` with its one endpoint on node-1 (the slice is put at once)."""
    api.put(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-1",
                "namespace": "default",
                "labels": {"kubernetes.io/service-name": name},
            },
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.1.0.5"], "conditions": {"ready": True}, "nodeName": "node-1"}
            ],
        }
    )
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "type": "LoadBalancer",
            "clusterIP": "10.96.0.10",
            "externalTrafficPolicy": "Local",
            "selector": {"app": name},
            "ports": [{"port": 80}],
        },
        "status": {"loadBalancer": {"ingress": [{"ip": str(ip)}]}},
    }


async def until(pred: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := pred()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
    return value


def test_speaker_follows_the_cluster_and_rides_out_an_outage(apiserver: Any) -> None:
    seed(apiserver)

    async def main() -> None:
        dp = StubDataPlane()
        speaker = Speaker(
            SpeakerOptions(node="node-1", source=InputSource.CLUSTER, metrics_addr=None),
            StaticMembership(),
            registry=CollectorRegistry(),
            dataplane=dp,  # type: ignore[arg-type]
        )
        link = attach_kube_source(
            speaker, kubeconfig=None, namespace=NS, config=CFG, host=apiserver.url
        )
        src = link.source
        try:
            await until(lambda: VIP in dp.current, "announcing the VIP")
            # ServiceL2Status and nodeAssigned, as MetalLB's speaker writes them.
            (st,) = await until(lambda: apiserver.items("ServiceL2Status"), "ServiceL2Status")
            assert st["metadata"]["labels"][LABEL_NODE] == "node-1"
            await until(
                lambda: [e for e in apiserver.items("Event") if e["reason"] == "nodeAssigned"],
                "nodeAssigned",
            )

            # API outage: the cluster changes, we cannot see it, we keep announcing.
            applied = len(dp.history)
            with apiserver.outage():
                apiserver.remove("Service", "default", "web")
                await until(
                    lambda: src.watched.watcher("services").failures >= 2, "failed reconnects"
                )
                # Whatever replans happened (none need to), none dropped the VIP.
                assert all(VIP in h for h in dp.history[applied - 1 :])
            # Back: the deletion arrives and the VIP is withdrawn.
            await until(lambda: VIP not in dp.current, "withdrawal after the outage")
            await until(lambda: not apiserver.items("ServiceL2Status"), "ServiceL2Status gone")
        finally:
            await asyncio.get_running_loop().run_in_executor(None, src.stop)

    asyncio.run(main())


HELD = ip_address("198.51.100.7")


def test_a_bad_pool_costs_only_itself_from_a_fresh_start(apiserver: Any) -> None:
    """A speaker that starts while a pool does not parse announces everything else (it used
    to announce nothing, yet report ready), and keeps announcing the IP a Service holds
    from the bad pool, through the advertisement that names that pool."""
    seed(apiserver)
    broken = apiserver.put(
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": "broken", "namespace": NS},
            "spec": {"addresses": ["198.51.100.0/24", "198.51.100.1-198.51.100.0"]},
        }
    )
    apiserver.put(
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "L2Advertisement",
            "metadata": {"name": "l2-broken", "namespace": NS},
            "spec": {"ipAddressPools": ["broken"]},
        }
    )
    old = seed_service(apiserver, "old", HELD)
    old["metadata"]["annotations"] = {"metallb.io/ip-allocated-from-pool": "broken"}
    apiserver.put(old)

    async def main() -> None:
        dp = StubDataPlane()
        registry = CollectorRegistry()
        speaker = Speaker(
            SpeakerOptions(node="node-1", source=InputSource.CLUSTER, metrics_addr=None),
            StaticMembership(),
            registry=registry,
            dataplane=dp,  # type: ignore[arg-type]
        )
        link = attach_kube_source(
            speaker, kubeconfig=None, namespace=NS, config=CFG, host=apiserver.url
        )
        try:
            await until(lambda: {VIP, HELD} <= set(dp.current), "announcing both")
            (ev,) = await until(
                lambda: [e for e in apiserver.items("Event") if e["reason"] == "InvalidConfig"],
                "InvalidConfig",
            )
            assert ev["type"] == "Warning"
            assert ev["involvedObject"]["uid"] == broken["metadata"]["uid"]
            assert ev["source"] == {"component": "metallb-speaker", "host": "node-1"}
            assert registry.get_sample_value("metallb_k8s_client_config_stale_bool") == 1
            assert link.partial >= 1 and link.complete == 0
            # A later pool overlapping ours is the one left out: nothing is withdrawn.
            apiserver.put(
                {
                    "apiVersion": "metallb.io/v1beta1",
                    "kind": "IPAddressPool",
                    "metadata": {"name": "aaa", "namespace": NS},
                    "spec": {"addresses": ["192.0.2.0/24"]},
                }
            )
            await until(
                lambda: (
                    len([e for e in apiserver.items("Event") if e["reason"] == "InvalidConfig"])
                    == 2
                ),
                "overlap reported",
            )
            assert {VIP, HELD} <= set(dp.current)
            assert all(VIP in h for h in dp.history if HELD in h)
        finally:
            await asyncio.get_running_loop().run_in_executor(None, link.source.stop)

    asyncio.run(main())


def test_announce_failed_when_no_requested_interface_exists(apiserver: Any) -> None:
    seed(apiserver)
    apiserver.put(
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "L2Advertisement",
            "metadata": {"name": "l2", "namespace": NS},
            "spec": {"ipAddressPools": ["pool"], "interfaces": ["eth9"]},
        }
    )

    async def main() -> None:
        dp = StubDataPlane(missing=frozenset({"eth9"}))
        speaker = Speaker(
            SpeakerOptions(node="node-1", source=InputSource.CLUSTER, metrics_addr=None),
            StaticMembership(),
            registry=CollectorRegistry(),
            dataplane=dp,  # type: ignore[arg-type]
        )
        link = attach_kube_source(
            speaker, kubeconfig=None, namespace=NS, config=CFG, host=apiserver.url
        )
        try:
            (ev,) = await until(
                lambda: [e for e in apiserver.items("Event") if e["reason"] == "announceFailed"],
                "announceFailed",
            )
            assert ev["type"] == "Warning"
            assert ev["message"] == (
                'the interfaces specified by LB IP "192.0.2.4" doesn\'t exist in assigned node '
                '"node-1" with protocol "layer2"'
            )
            (st,) = await until(
                lambda: [o for o in apiserver.items("ServiceL2Status") if o.get("status")],
                "ServiceL2Status",
            )
            assert st["status"]["interfaces"] == [{"name": "eth9"}]
        finally:
            await asyncio.get_running_loop().run_in_executor(None, link.source.stop)

    asyncio.run(main())


def node(
    name: str,
    *addrs: tuple[str, str],
    os_label: str | None = "linux",
    taints: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    labels = {"kubernetes.io/os": os_label} if os_label else {}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints} if taints else {},
        "status": {"addresses": [{"type": t, "address": a} for t, a in addrs]},
    }


def test_peer_addresses() -> None:
    nodes = [
        node("node-2", ("Hostname", "node-2"), ("InternalIP", "192.0.2.12")),
        node("node-1", ("InternalIP", "192.0.2.11")),
        node("node-3", ("ExternalIP", "203.0.113.3")),  # no InternalIP: cannot gossip to it
        node("node-4", ("InternalIP", "2001:db8::4"), ("InternalIP", "192.0.2.14")),
    ]
    assert peer_addresses(nodes, "node-1", 7946) == [
        ("192.0.2.12", 7946),
        ("2001:db8::4", 7946),
    ]


def test_peers_are_only_nodes_the_daemonset_runs_on() -> None:
    """Windows nodes, unlabelled ones and nodes tainted against the speaker get no speaker
    pod, so nobody joins them; control-plane, cordoned and not-ready nodes keep theirs."""
    ip = ("InternalIP", "192.0.2.{}")

    def n(i: int, **kw: Any) -> dict[str, Any]:
        return node(f"node-{i}", (ip[0], ip[1].format(i)), **kw)

    nodes = [
        n(1),
        n(2),
        n(3, os_label="windows"),
        n(4, os_label=None),
        n(5, taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
        n(6, taints=[{"key": "dedicated", "value": "gpu", "effect": "NoExecute"}]),
        n(7, taints=[{"key": "dedicated", "value": "gpu", "effect": "PreferNoSchedule"}]),
        n(8, taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
        n(9, taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
        n(10, taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]),
    ]
    peers = {addr for addr, _ in peer_addresses(nodes, "node-1", 7946)}
    assert peers == {f"192.0.2.{i}" for i in (2, 7, 8, 9, 10)}


def test_peers_go_to_a_membership_that_takes_them(apiserver: Any) -> None:
    seed(apiserver)
    apiserver.put(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "node-2", "labels": {"kubernetes.io/os": "linux"}},
            "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.12"}]},
        }
    )

    peers: list[Any] = []

    async def main() -> list[Any]:
        membership = StaticMembership()
        speaker = Speaker(
            SpeakerOptions(node="node-1", source=InputSource.CLUSTER, metrics_addr=None),
            membership,
            registry=CollectorRegistry(),
            dataplane=StubDataPlane(),  # type: ignore[arg-type]
        )
        link = attach_kube_source(
            speaker,
            kubeconfig=None,
            namespace=NS,
            set_peers=peers.extend,
            gossip_port=7950,
            config=CFG,
            host=apiserver.url,
        )
        try:
            return list(await until(lambda: peers, "peers"))
        finally:
            await asyncio.get_running_loop().run_in_executor(None, link.source.stop)

    assert asyncio.run(main()) == [("192.0.2.12", 7950)]


def test_a_key_mismatch_is_a_warning_event_on_the_node(apiserver: Any) -> None:
    seed(apiserver)

    async def main() -> None:
        speaker = Speaker(
            SpeakerOptions(node="node-1", source=InputSource.CLUSTER, metrics_addr=None),
            StaticMembership(),
            registry=CollectorRegistry(),
            dataplane=StubDataPlane(),  # type: ignore[arg-type]
        )
        link = attach_kube_source(
            speaker, kubeconfig=None, namespace=NS, config=CFG, host=apiserver.url
        )
        try:
            await until(lambda: link.source.synced, "synced")
            link.source.key_mismatch("192.0.2.12")
            link.source.key_mismatch("192.0.2.12")  # repeats within the window: one Event
            (ev,) = await until(
                lambda: [e for e in apiserver.items("Event") if e["reason"] == "gossipKeyMismatch"],
                "gossipKeyMismatch",
            )
            assert ev["type"] == "Warning"
            assert ev["involvedObject"]["kind"] == "Node"
            assert ev["involvedObject"]["name"] == "node-1"
            assert "192.0.2.12" in ev["message"]
            await asyncio.sleep(0.3)
            assert (
                len([e for e in apiserver.items("Event") if e["reason"] == "gossipKeyMismatch"])
                == 1
            )
        finally:
            await asyncio.get_running_loop().run_in_executor(None, link.source.stop)

    asyncio.run(main())


def test_an_address_conflict_is_a_warning_event_on_the_service(apiserver: Any) -> None:
    seed(apiserver)
    claimer = bytes.fromhex("020000000066")

    async def main() -> None:
        dp = StubDataPlane()
        speaker = Speaker(
            SpeakerOptions(node="node-1", source=InputSource.CLUSTER, metrics_addr=None),
            StaticMembership(),
            registry=CollectorRegistry(),
            dataplane=dp,  # type: ignore[arg-type]
        )
        link = attach_kube_source(
            speaker, kubeconfig=None, namespace=NS, config=CFG, host=apiserver.url
        )
        try:
            await until(lambda: VIP in dp.current, "announcing the VIP")
            speaker.conflict_reported(
                AddressConflict("eth0", VIP, claimer, 1, 0, ConflictPhase.STARTED)
            )
            (ev,) = await until(
                lambda: [e for e in apiserver.items("Event") if e["reason"] == "addressConflict"],
                "addressConflict",
            )
            assert ev["type"] == "Warning"
            assert ev["involvedObject"]["kind"] == "Service"
            assert ev["involvedObject"]["name"] == "web"
            assert "02:00:00:00:00:66" in ev["message"] and str(VIP) in ev["message"]
        finally:
            await asyncio.get_running_loop().run_in_executor(None, link.source.stop)

    asyncio.run(main())
