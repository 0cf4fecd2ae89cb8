"""An upgrade that did not apply the new CRDs: the API server answers 404 for the BGP kinds.

Such a kind counts as listed and empty (a warning, `l2agent_k8s_resource_missing`, a list
now and then), so the speaker syncs and layer 2 mode serves; once the CRD is applied, the
next list finds its objects. Judged through the fake API server and the real client.
"""

from __future__ import annotations

import asyncio
from typing import Any

from helpers.fake_apiserver import FakeApiServer
from prometheus_client import CollectorRegistry

from l2agent.kube.convert import new_api_client
from l2agent.kube.source import SourceConfig
from l2agent.kube.watch import RESOURCES, DeltaKind, WatchConfig, Watcher
from l2agent.plan import InputSource
from l2agent.speaker.kube import attach_kube_source
from l2agent.speaker.membership import StaticMembership
from l2agent.speaker.run import Speaker, SpeakerOptions

from ._util import Pump
from .test_speaker_kube import VIP, StubDataPlane, seed, until

NS = "metallb-system"
BGP_KINDS = ("bgppeers", "bgpadvertisements", "bfdprofiles", "communities", "servicebgpstatuses")
WATCH = WatchConfig(watch_timeout=30, backoff_initial=0.02, backoff_max=0.2, absent_retry=0.2)


def test_a_kind_not_served_counts_as_empty_until_its_crd_arrives() -> None:
    with FakeApiServer(missing=("bgppeers",)) as api:
        client = new_api_client(None, host=api.url)
        pump = Pump(Watcher(client, RESOURCES["bgppeers"], namespace=NS, config=WATCH))
        try:
            first = pump.next()
            assert (first.kind, first.objects) == (DeltaKind.REPLACED, ())
            assert pump.watcher.synced and pump.watcher.absent
            assert pump.empty_for(0.5), "an absent kind is reported once, not on every list"
            assert pump.watcher.absent_lists >= 2, "the kind is listed again now and then"
            api.install("bgppeers")
            api.put(
                {
                    "apiVersion": "metallb.io/v1beta2",
                    "kind": "BGPPeer",
                    "metadata": {"name": "r1", "namespace": NS},
                    "spec": {"myASN": 64512, "peerASN": 64513, "peerAddress": "192.0.2.1"},
                }
            )
            found = pump.next()
            assert found.kind is DeltaKind.REPLACED
            assert [o["metadata"]["name"] for o in found.objects] == ["r1"]
            assert not pump.watcher.absent
        finally:
            pump.stop()
            client.close()


def test_layer2_mode_serves_without_the_bgp_crds() -> None:
    with FakeApiServer(missing=BGP_KINDS) as api:
        seed(api)

        async def main() -> dict[str, float]:
            dp = StubDataPlane()
            registry = CollectorRegistry()
            speaker = Speaker(
                SpeakerOptions(node="node-1", source=InputSource.CLUSTER, metrics_addr=None),
                StaticMembership(),
                registry=registry,
                dataplane=dp,  # type: ignore[arg-type]
            )
            link = attach_kube_source(
                speaker,
                kubeconfig=None,
                namespace=NS,
                config=SourceConfig(watch=WATCH, debounce=0.02),
                host=api.url,
            )
            try:
                await until(lambda: VIP in dp.current, "announcing the VIP")
                assert speaker.ready()
                await until(lambda: api.items("ServiceL2Status"), "ServiceL2Status")
                return _missing(registry)
            finally:
                link.source.stop()

        missing = asyncio.run(main())
    assert {r for r, v in missing.items() if v == 1} == set(BGP_KINDS)
    assert missing["ipaddresspools"] == 0


def _missing(registry: CollectorRegistry) -> dict[str, float]:
    out: dict[str, Any] = {}
    for family in registry.collect():
        if family.name == "l2agent_k8s_resource_missing":
            out = {s.labels["resource"]: s.value for s in family.samples}
    return out
