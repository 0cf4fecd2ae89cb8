"""Gossip key rotation in the lab: three encrypted speakers, each with its own Secret volume,
rotated one node at a time while the client's kernel probes the VIP.

Judges: the client (every probe answered), the speakers' own counters (no member failed, no
ownership change) and the real Go memberlist with MetalLB's key derivation (the old secret is
refused afterwards, the new one accepted, and it reads our node meta off the wire).
Shares one lab across the tests, in order: rotation, the old key refused, a node that never
gets the Secret.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.gopeer import JsonLinesProcess, build_peer, skip_reason
from helpers.secret_volume import SecretVolume
from prometheus_client.parser import text_string_to_metric_families

from gossip.keyring import metallb_key
from gossip.rotation import fingerprint
from l2agent.lab.netns import CLIENT, Lab, wait_until
from l2agent.lab.speakers import GOSSIP_PORT, LabSpeakers
from l2agent.lab.topology import client_address, vip
from l2agent.static import demo_config_path

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

V4 = str(vip(0, 4))
SECRETS = [b"first-memberlist-secret-0123456789", b"second-memberlist-secret-abcdefgh"]
THIRD = b"third-memberlist-secret-ZYXWVUTSR"
GAP = 2.0
"""Seconds between two nodes' Secret updates (a kubelet's sync skew, compressed)."""


def fp(secret: bytes) -> str:
    return fingerprint(metallb_key(secret)).hex()


class RotationLab:
    def __init__(self, speakers: LabSpeakers, volumes: dict[str, SecretVolume]) -> None:
        self.speakers = speakers
        self.volumes = volumes
        self.nodes = speakers.lab.node_names

    def keys(self, node: str) -> dict[str, Any]:
        doc = self.speakers.status(node)
        assert doc is not None, f"{node}: no /status"
        keys: dict[str, Any] = doc["gossip_keys"]
        return keys

    def all_keys(self) -> dict[str, dict[str, Any]]:
        return {n: self.keys(n) for n in self.nodes}

    def settled_on(self, secret: bytes) -> bool:
        want = fp(secret)
        return all(
            k["phase"] == "steady" and k["primary"] == want and k["installed"] == 1
            for k in self.all_keys().values()
        )

    def counters(self) -> dict[str, float]:
        """Failures and ownership changes each node has counted, summed per node."""
        out: dict[str, float] = {}
        for node in self.nodes:
            text = self.speakers.fetch(node, "/metrics") or ""
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name in (
                        "l2agent_gossip_member_failures_total",
                        "l2agent_ownership_changes_total",
                    ):
                        key = f"{node}:{sample.name}"
                        out[key] = out.get(key, 0.0) + sample.value
        return out

    def metric(self, node: str, name: str, labels: dict[str, str]) -> float | None:
        text = self.speakers.fetch(node, "/metrics") or ""
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return None


@pytest.fixture(scope="module")
def rlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RotationLab]:
    workdir = tmp_path_factory.mktemp("keyrotation")
    with Lab(3, vips=[vip(0, 4), vip(0, 6), vip(1, 4)]) as lab:
        volumes = {n: SecretVolume(workdir / f"secret-{n}", SECRETS[0]) for n in lab.node_names}
        speakers = LabSpeakers(
            lab,
            demo_config_path(),
            workdir=workdir,
            secret_key_files={n: v.path for n, v in volumes.items()},
        )
        try:
            speakers.start_all()
            speakers.wait_owners([V4], timeout=30)
            yield RotationLab(speakers, volumes)
        finally:
            speakers.close()
            for node in lab.node_names:
                print(f"--- {node} log tail ---\n{speakers.log_text(node)[-3000:]}")


def test_rotation_one_node_at_a_time_loses_nothing(rlab: RotationLab) -> None:
    owners = rlab.speakers.wait_owners([V4])
    assert rlab.settled_on(SECRETS[0])
    before = rlab.counters()
    prober = rlab.speakers.probe(V4, duration=12.0, interval=0.005)
    time.sleep(0.5)
    started = time.monotonic()
    for i, node in enumerate(rlab.nodes):
        if i == len(rlab.nodes) - 1:
            # Two of three have the new Secret: everyone still sends with the old key.
            keys = rlab.all_keys()
            assert {k["primary"] for k in keys.values()} == {fp(SECRETS[0])}, keys
            assert keys[rlab.nodes[0]]["installed"] == 2
            assert keys[rlab.nodes[0]]["waiting"] == [{"member": node, "reason": "lacks_new_key"}]
        rlab.volumes[node].update(SECRETS[1])
        time.sleep(max(0.0, started + (i + 1) * GAP - time.monotonic()))
    assert wait_until(lambda: rlab.settled_on(SECRETS[1]), 15, interval=0.5), rlab.all_keys()
    took = time.monotonic() - started
    probes = rlab.speakers.probes(prober)
    lost = [p.seq for p in probes if p.replied is None]
    assert probes and not lost, f"{len(lost)} of {len(probes)} probes lost"
    assert {p.node for p in probes} == {owners[V4]}
    assert rlab.counters() == before  # no member failed, no IP moved, on any node
    assert rlab.speakers.wait_owners([V4]) == owners
    print(f"rotation: {took:.1f} s from the first Secret update to every node on the new key")


@pytest.fixture(scope="module")
def go_binary() -> Path:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    return build_peer()


def _go_peer(rlab: RotationLab, binary: Path, name: str, secret: bytes) -> JsonLinesProcess:
    """A Go memberlist peer in the client namespace, keyed as MetalLB keys its speakers."""
    lab = rlab.speakers.lab
    node = rlab.nodes[0]
    argv = [
        "ip", "netns", "exec", lab.netns(CLIENT), str(binary),
        "-name", name, "-bind", str(client_address(4)), "-port", str(GOSSIP_PORT),
        "-metallb-secret", secret.decode(), "-preset", "lan",
        "-join", f"{rlab.speakers.address(node)}:{GOSSIP_PORT}",
    ]  # fmt: skip
    return JsonLinesProcess(argv)


def test_a_peer_with_only_the_old_key_is_refused_afterwards(
    rlab: RotationLab, go_binary: Path
) -> None:
    assert wait_until(lambda: rlab.settled_on(SECRETS[1]), 15, interval=0.5)
    old = _go_peer(rlab, go_binary, "metallb-old", SECRETS[0])
    try:
        joined = old.wait_event("joined", timeout=20)
        assert joined["count"] == 0, joined
        for node in rlab.nodes:
            status = rlab.speakers.status(node) or {}
            assert "metallb-old" not in {m["name"] for m in status.get("members", [])}
    finally:
        old.close()
    # The same Go peer with the new secret gets in: the refusal was the key, nothing else,
    # and Go reads our node meta (the key advert) off the wire.
    new = _go_peer(rlab, go_binary, "metallb-new", SECRETS[1])
    try:
        assert new.wait_event("joined", timeout=20)["count"] == 1
        new.send_line("members")
        members = new.wait_event("members", timeout=10)["members"]
        metas = {m["node"]: m["meta"] for m in members}
        assert set(metas) == {*rlab.nodes, "metallb-new"}
        for node in rlab.nodes:
            assert metas[node].startswith(b"L2\x01".hex()), metas
        new.send_line("leave")
        new.wait_for(lambda e: e.get("cmd") == "leave", timeout=10)
    finally:
        new.close()


def test_a_node_that_never_gets_the_secret_keeps_everyone_on_the_old_key(
    rlab: RotationLab,
) -> None:
    current = next(s for s in SECRETS[::-1] if rlab.settled_on(s))
    late = rlab.nodes[-1]

    def only_speakers_live() -> bool:
        for node in rlab.nodes:
            members = (rlab.speakers.status(node) or {}).get("members", [])
            live = {m["name"] for m in members if m["state"] in ("alive", "suspect")}
            if live != set(rlab.nodes):
                return False
        return True

    assert wait_until(only_speakers_live, 10, interval=0.5)  # the Go peer has left
    owners = rlab.speakers.wait_owners([V4])
    before = rlab.counters()
    prober = rlab.speakers.probe(V4, duration=8.0, interval=0.005)
    for node in rlab.nodes[:-1]:
        rlab.volumes[node].update(THIRD)
        time.sleep(GAP)
    time.sleep(3.5)  # past a settle period (2 s) and a poll after the last update
    keys = rlab.all_keys()
    assert {k["primary"] for k in keys.values()} == {fp(current)}, keys  # no split
    for node in rlab.nodes[:-1]:
        assert keys[node]["phase"] == "distributing"
        assert keys[node]["waiting"] == [{"member": late, "reason": "lacks_new_key"}]
        assert (
            rlab.metric(
                node,
                "l2agent_gossip_key_rotation_waiting",
                {"member": late, "reason": "lacks_new_key"},
            )
            == 1
        )
        assert f"waits for {late} (lacks_new_key)" in rlab.speakers.log_text(node)
    assert keys[late]["phase"] == "steady"
    assert keys[late]["ahead"] == list(rlab.nodes[:-1])
    assert "rotate to a gossip key this node has not received" in rlab.speakers.log_text(late)
    probes = rlab.speakers.probes(prober)
    assert probes and all(p.replied is not None for p in probes)
    assert rlab.counters() == before
    assert rlab.speakers.wait_owners([V4]) == owners
