"""The speaker's key adapter: a Secret volume's atomic swap is seen, keys are installed before
they are advertised, bad files and bad metas cost a counter and one log line, and the
rotation shows in /metrics and /status."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import pytest
from helpers.secret_volume import SecretVolume
from prometheus_client import CollectorRegistry

from gossip.keyring import Keyring, metallb_key
from gossip.node_meta import KeyAdvert, NodeMeta, decode_meta, encode_meta
from gossip.rotation import KeyRotation, fingerprint
from l2agent.health import speaker_status
from l2agent.metrics import SpeakerMetrics
from l2agent.model.reports import KeyFileProblem
from l2agent.speaker.keys import GossipKeys, SecretKeyFile

OLD, NEW = b"old-secret-" * 4, b"new-secret-" * 4
K, N = metallb_key(OLD), metallb_key(NEW)


class Target:
    """A stand-in for GossipMembership that records what it is told, in order."""

    def __init__(self) -> None:
        self.metas: dict[str, bytes] = {}
        self.calls: list[tuple[str, object]] = []

    def member_metas(self) -> Mapping[str, bytes]:
        return self.metas

    def set_keyring(self, keyring: Keyring) -> None:
        self.calls.append(("keyring", keyring.keys))

    def set_meta(self, meta: bytes) -> None:
        decoded = decode_meta(meta)
        assert isinstance(decoded, NodeMeta)
        self.calls.append(("meta", decoded.keys))


def peer_meta(primary: bytes, target: bytes, *others: bytes) -> bytes:
    fps = frozenset(fingerprint(k) for k in (primary, target, *others))
    return encode_meta(NodeMeta(keys=KeyAdvert(fingerprint(primary), fingerprint(target), fps)))


def test_a_secret_volume_update_is_seen_once_and_read_boundedly(tmp_path: Path) -> None:
    vol = SecretVolume(tmp_path, OLD)
    f = SecretKeyFile(vol.path)
    assert f.read() == OLD[:32]
    assert f.changed() is None
    vol.update(NEW + b"x" * 1_000_000)  # a huge secret: only what the key uses is read
    assert f.changed() == NEW[:32]
    assert f.changed() is None
    assert metallb_key(NEW[:32]) == metallb_key(NEW + b"x" * 1_000_000)


def test_short_secrets_derive_as_metallb_does(tmp_path: Path) -> None:
    vol = SecretVolume(tmp_path, b"short")
    keys = GossipKeys(vol.path, settle=2.0)
    assert keys.keyring() == Keyring((metallb_key(b"short"),))


def test_a_whole_rotation_installs_before_it_advertises(tmp_path: Path) -> None:
    vol = SecretVolume(tmp_path, OLD)
    keys = GossipKeys(vol.path, settle=2.0)
    target = Target()
    target.metas = {"b": peer_meta(K, K), "metallb": b""}
    start = decode_meta(keys.meta())
    assert isinstance(start, NodeMeta)
    assert start.keys == KeyRotation(K, settle=0).advert
    keys.attach(target)
    keys.step(0.0)
    assert target.calls == []  # nothing changed
    vol.update(NEW)
    keys.step(1.0)
    assert target.calls[0] == ("keyring", (K, N))
    assert target.calls[1][0] == "meta"
    doc = keys.status_document()
    assert doc["phase"] == "distributing"
    assert doc["waiting"] == [
        {"member": "b", "reason": "lacks_new_key"},
        {"member": "metallb", "reason": "no_fingerprints"},
    ]
    del target.metas["metallb"]  # the MetalLB speaker is gone
    target.metas["b"] = peer_meta(K, N)
    keys.step(2.0)
    keys.step(4.0)
    assert target.calls[2] == ("keyring", (N, K))
    target.metas["b"] = peer_meta(N, N)
    keys.step(5.0)
    keys.step(7.0)
    assert target.calls[-2] == ("keyring", (N,))
    assert target.calls[-1][0] == "meta"
    assert keys.status_document() == {
        "phase": "steady",
        "primary": fingerprint(N).hex(),
        "target": fingerprint(N).hex(),
        "installed": 1,
        "waiting": [],
        "ahead": [],
        "rotating_seconds": 0.0,
    }
    kinds = [c[0] for c in target.calls]
    assert kinds == ["keyring", "meta"] * 3


def test_a_missing_file_keeps_the_keys_and_is_counted_and_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    vol = SecretVolume(tmp_path, OLD)
    keys = GossipKeys(vol.path, settle=2.0)
    keys.attach(Target())
    (tmp_path / "..data").unlink()
    with caplog.at_level(logging.WARNING):
        for t in range(5):
            keys.step(float(t))
    assert keys.keyring() == Keyring((K,))
    assert keys.report().file_errors[KeyFileProblem.MISSING] == 5
    assert sum("cannot read the gossip secret" in r.message for r in caplog.records) == 1
    vol.update(NEW)
    keys.step(6.0)
    assert keys.rotation.keys == (K, N)


def test_unreadable_member_meta_counts_once_per_value(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    vol = SecretVolume(tmp_path, OLD)
    keys = GossipKeys(vol.path, settle=2.0)
    target = Target()
    target.metas = {"b": b"L2\x01\x01\x05abcde", "c": b"L2\x09", "d": b"hostname=x"}
    keys.attach(target)
    with caplog.at_level(logging.WARNING):
        for t in range(10):
            keys.step(float(t))
    report = keys.report()
    assert {p.value: n for p, n in report.unreadable_meta.items()} == {
        "malformed": 1,
        "newer_version": 1,
    }
    assert len([r for r in caplog.records if "cannot read" in r.message]) == 2


def test_rotation_metrics_and_status_section(tmp_path: Path) -> None:
    vol = SecretVolume(tmp_path, OLD)
    keys = GossipKeys(vol.path, settle=2.0)
    target = Target()
    target.metas = {"b": peer_meta(K, K)}
    keys.attach(target)
    vol.update(NEW)
    keys.step(10.0)
    keys.step(13.5)
    registry = CollectorRegistry()
    metrics = SpeakerMetrics(registry, "a", ownership=list, members=list)
    metrics.watch_gossip_keys(keys.report)
    get = registry.get_sample_value
    assert get("l2agent_gossip_keys_installed") == 2
    labels = {"primary": fingerprint(K).hex(), "target": fingerprint(N).hex()}
    assert get("l2agent_gossip_key_info", labels) == 1
    assert get("l2agent_gossip_key_rotation_phase", {"phase": "distributing"}) == 1
    assert get("l2agent_gossip_key_rotation_phase", {"phase": "steady"}) == 0
    assert get("l2agent_gossip_key_rotation_waiting", {"member": "b", "reason": "lacks_new_key"})
    assert get("l2agent_gossip_key_rotation_seconds") == 3.5
    assert get("l2agent_gossip_key_file_errors_total", {"problem": "missing"}) == 0
    doc = speaker_status("a", list, list, sections={"gossip_keys": keys.status_document})()
    assert doc["gossip_keys"]["installed"] == 2
    assert doc["gossip_keys"]["waiting"] == [{"member": "b", "reason": "lacks_new_key"}]
