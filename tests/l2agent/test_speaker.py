"""The speaker's composition logic with the data plane and membership replaced by recorders.

What crosses a wire is judged in tests/e2e; the ownership rules themselves (owner-since,
failover timing) in test_ownership.py through the pure ledger. Here: the ready gate (MetalLB
#1710), replanning on membership changes, the handover gate, the watchdog pins, the one
configuration policy, and the files source (directories, several files, last good config).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from ipaddress import ip_address
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from l2agent.announce.schedule import Due
from l2agent.interfaces.inventory import InterfaceSelection
from l2agent.metrics import MemberRow
from l2agent.model.snapshot import build_state
from l2agent.model.types import IPAddress
from l2agent.plan import plan
from l2agent.speaker.files import ConfigFiles
from l2agent.speaker.membership import ChangeKind, MembershipChange, MembershipCounters, OnChange
from l2agent.speaker.run import Speaker, SpeakerOptions
from l2agent.static import demo_config_path, load_yaml_files

DEMO = demo_config_path()
NODES = ("node1", "node2", "node3")


class RecordingPlane:
    def __init__(self) -> None:
        self.applied: list[dict[IPAddress, InterfaceSelection]] = []
        self.on_sent: Callable[[Sequence[Due], float], None] | None = None

    def apply(self, announcements: Mapping[IPAddress, InterfaceSelection]) -> None:
        self.applied.append(dict(announcements))

    def announce_failed(self, ip: IPAddress) -> bool:
        return False

    def interfaces_for(self, ip: IPAddress) -> tuple[str, ...]:
        return ("eth0",)

    def close(self) -> None:
        pass

    @property
    def current(self) -> set[IPAddress]:
        return set(self.applied[-1]) if self.applied else set()


class FakeMembership:
    def __init__(self, live: Iterable[str], ready: bool = True) -> None:
        self._live = frozenset(live)
        self._ready = ready
        self.pinned: list[str] = []
        self.on_change: OnChange = lambda change: None

    def live(self) -> frozenset[str] | None:
        return self._live

    def ready(self) -> bool:
        return self._ready

    def rows(self) -> list[MemberRow]:
        return [MemberRow(n, "192.0.2.1", "alive") for n in sorted(self._live)]

    def health_score(self) -> float:
        return 0.0

    def input_report(self) -> None:
        return None

    def pin(self, names: Iterable[str]) -> None:
        self.pinned = list(names)

    async def start(self, on_change: OnChange, counters: MembershipCounters) -> None:
        self.on_change = on_change

    async def leave(self, timeout: float) -> None:
        pass

    async def close(self) -> None:
        pass

    def change(self, live: Iterable[str], change: MembershipChange, ready: bool = True) -> None:
        self._live, self._ready = frozenset(live), ready
        self.on_change(change)


def _speaker(
    me: str, membership: FakeMembership, config: Path = DEMO
) -> tuple[Speaker, RecordingPlane]:
    """A speaker fed `config`, its membership started (changes reach it)."""
    plane = RecordingPlane()
    speaker = Speaker(
        SpeakerOptions(node=me, metrics_addr=None),
        membership,
        registry=CollectorRegistry(),
        dataplane=plane,  # type: ignore[arg-type]
    )
    assert ConfigFiles([config], speaker.offer).load()
    membership.on_change = speaker.membership_changed
    return speaker, plane


def _owned_by(me: str, live: Iterable[str]) -> set[IPAddress]:
    """What the pure plan says ``me`` announces (the speaker must do exactly this)."""
    state = build_state(load_yaml_files([DEMO])).state
    return set(plan(state, frozenset(live), me).announcements)


def test_every_ip_is_announced_by_exactly_one_of_the_members() -> None:
    async def speaker_owned(me: str) -> set[IPAddress]:
        _, plane = _speaker(me, FakeMembership(NODES))
        return plane.current

    owned = [asyncio.run(speaker_owned(n)) for n in NODES]
    assert owned == [_owned_by(n, NODES) for n in NODES]
    union = set().union(*owned)
    assert union == {ip_address("192.0.2.200"), ip_address("2001:db8::200"),
                     ip_address("192.0.2.201")}  # fmt: skip
    assert sum(len(o) for o in owned) == len(union)


def test_nothing_is_announced_before_the_member_list_is_trusted() -> None:
    expected = _owned_by("node1", NODES)

    async def go() -> None:
        membership = FakeMembership({"node1"}, ready=False)  # alone: would win everything
        _, plane = _speaker("node1", membership)
        assert plane.current == set()
        membership.change(NODES, MembershipChange(ChangeKind.READY))
        assert plane.current == expected

    asyncio.run(go())


def test_a_failed_owner_moves_its_ips_and_the_failover_is_timed() -> None:
    owners = {n: _owned_by(n, NODES) for n in NODES}

    async def go() -> None:
        victim = next(n for n in NODES if owners[n])
        survivors = [n for n in NODES if n != victim]
        gained: set[IPAddress] = set()
        for me in survivors:
            membership = FakeMembership(NODES)
            speaker, plane = _speaker(me, membership)
            before = plane.current
            membership.change(survivors, MembershipChange(ChangeKind.FAILED, victim))
            mine = plane.current - before
            gained |= mine
            now = asyncio.get_running_loop().time() + 0.002
            speaker.packets_sent([Due("eth0", ip) for ip in sorted(mine, key=str)], now)
            timed = speaker.registry.get_sample_value("l2agent_failover_duration_seconds_count")
            assert timed == len(mine)
            failures = speaker.registry.get_sample_value(
                "l2agent_gossip_member_failures_total", {"member": victim}
            )
            assert failures == 1
        assert gained == owners[victim]

    asyncio.run(go())


def test_the_successor_pins_the_owner_it_would_inherit_from() -> None:
    async def go() -> None:
        for me in NODES:
            membership = FakeMembership(NODES)
            speaker, _ = _speaker(me, membership)
            assert speaker.plan is not None
            expected = {s.candidates[0] for s in speaker.plan.services if s.candidates[1] == me}
            assert set(membership.pinned) == expected

    asyncio.run(go())


def test_while_leaving_membership_changes_do_not_withdraw() -> None:
    owner = next(n for n in NODES if _owned_by(n, NODES))

    async def go() -> None:
        membership = FakeMembership(NODES)
        speaker, plane = _speaker(owner, membership)
        held = plane.current
        leaving = asyncio.create_task(speaker.shutdown())  # drains for handover_drain
        await asyncio.sleep(0.05)
        membership.change(
            [n for n in NODES if n != owner], MembershipChange(ChangeKind.LEFT, owner)
        )
        assert plane.current == held
        await leaving

    asyncio.run(go())


BROKEN_POOL = (
    "---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\n"
    "metadata: {name: broken, namespace: metallb-system}\n"
    "spec: {addresses: ['203.0.113.0/24,', 203.0.113.300-203.0.113.310]}\n"
)


def test_an_unreadable_file_keeps_the_last_good_config(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    shutil.copy(DEMO, config)

    async def go() -> None:
        speaker, _ = _speaker("node1", FakeMembership(NODES), config)
        files = ConfigFiles([config], speaker.offer, on_unreadable=speaker.metrics.config_rejected)
        good = speaker.state
        config.write_text("kind: IPAddressPool\napiVersion: metallb.io/v1beta1\nspec: [\n")
        assert not files.load()
        assert speaker.state is good
        value = speaker.registry.get_sample_value("l2agent_config_rejected_total")
        assert value is not None and value >= 1
        assert speaker.registry.get_sample_value("metallb_k8s_client_config_stale_bool") == 1

    asyncio.run(go())


def test_a_bad_pool_costs_only_itself_from_the_first_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A speaker that starts while a bad pool is in its files serves everything else (it
    used to refuse the whole configuration: nothing announced, yet ready)."""
    config = tmp_path / "c.yaml"
    config.write_text(DEMO.read_text() + BROKEN_POOL)
    owners = {n: _owned_by(n, NODES) for n in NODES}

    async def go() -> None:
        announced: set[IPAddress] = set()
        for me in NODES:
            with caplog.at_level(logging.WARNING):
                speaker, plane = _speaker(me, FakeMembership(NODES), config)
                speaker.offer(build_state(load_yaml_files([config])))  # the same again
            assert plane.current == owners[me]
            announced |= plane.current
            reg = speaker.registry
            assert reg.get_sample_value("metallb_k8s_client_config_stale_bool") == 1
            assert reg.get_sample_value("l2agent_config_objects_left_out") == 1
            assert reg.get_sample_value("metallb_k8s_client_config_loaded_bool") == 1
            said = [r.getMessage() for r in caplog.records if "broken" in r.getMessage()]
            assert len(said) == 1 and "IPAddressPool broken" in said[0]  # once, naming it
            caplog.clear()
        assert len(announced) == 3  # the demo's three IPs, each by one node

    asyncio.run(go())


def test_a_bad_service_costs_only_itself(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        DEMO.read_text()
        + "---\napiVersion: v1\nkind: Service\nmetadata: {name: broken, namespace: default}\n"
        "spec: {type: LoadBalancer, externalTrafficPolicy: Sometimes}\n"
    )

    async def go() -> None:
        speaker, _ = _speaker("node1", FakeMembership(NODES), config)
        assert speaker.state is not None
        assert len(speaker.state.services) == 2  # the demo's two, without the broken one
        assert speaker.registry.get_sample_value("l2agent_config_rejected_total") in (None, 0.0)

    asyncio.run(go())


def test_a_config_directory_and_several_files_after_one_flag(tmp_path: Path) -> None:
    from l2agent.cli import build_parser

    objects = DEMO.read_text().split("\n---\n")
    folder = tmp_path / "conf.d"
    folder.mkdir()
    for i, text in enumerate(objects):
        (folder / f"{i:02d}.yaml").write_text(text)
    (folder / "notes.txt").write_text("not: config\n")
    (folder / "zz.json").write_text('{"apiVersion": "v1", "kind": "Namespace", '
                                    '"metadata": {"name": "extra"}}')  # fmt: skip
    whole = build_state(load_yaml_files([DEMO])).state
    from_dir = build_state(load_yaml_files([folder])).state
    assert from_dir.services == whole.services and from_dir.pools == whole.pools
    assert "extra" in from_dir.namespaces
    args = build_parser().parse_args(
        ["speaker", "--config", str(folder), str(DEMO), "--config", str(DEMO)]
    )
    assert args.config == [str(folder), str(DEMO), str(DEMO)]
    files = ConfigFiles([folder], lambda result: True, check_interval=0.0)
    files.load()
    assert not files.changed()
    (folder / "99.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n")
    assert files.changed()  # a new file in the directory is a change


@pytest.mark.parametrize("me", NODES)
def test_ownership_rows_mark_only_what_this_node_announces(me: str) -> None:
    async def go() -> None:
        speaker, plane = _speaker(me, FakeMembership(NODES))
        rows = speaker.ownership_rows()
        assert {r.ip for r in rows if r.announcing} == plane.current
        assert all(r.owner in NODES for r in rows)

    asyncio.run(go())


def test_the_config_watcher_outlives_any_file_and_parses_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import l2agent.speaker.files as files_module

    config = tmp_path / "c.yaml"
    shutil.copy(DEMO, config)
    threads: list[int] = []
    real_load = files_module.load_yaml_files

    def recording_load(paths: object) -> object:
        threads.append(threading.get_ident())
        if "boom" in config.read_text():
            raise RecursionError("maximum recursion depth exceeded")  # as the Python loader
        return real_load(paths)  # type: ignore[arg-type]

    monkeypatch.setattr(files_module, "load_yaml_files", recording_load)

    async def go() -> None:
        speaker, _ = _speaker("node1", FakeMembership(NODES), config)
        files = ConfigFiles([config], speaker.offer, check_interval=0.01)
        watcher = asyncio.create_task(files.watch())
        good = speaker.state
        for text in ("a: " + "[" * 3000 + "]" * 3000 + "\n", "boom: 1\n", "{{{\n"):
            config.write_text(text)
            await asyncio.sleep(0.2)
            assert speaker.state is good
            assert not watcher.done()
        config.write_text(DEMO.read_text().replace("192.0.2.200-192.0.2.220", "192.0.2.200/29"))
        await asyncio.sleep(0.3)
        assert speaker.state is not good  # a later valid edit still applies
        assert threads and threading.get_ident() not in threads[1:]
        watcher.cancel()

    asyncio.run(go())


def test_a_burst_of_membership_changes_costs_one_more_replan() -> None:
    """A push/pull that brings thousands of members (or an attacker's invented names)
    must not replan once per member: the first change replans at once, the rest of the
    burst once when the loop pass ends."""

    async def go() -> None:
        membership = FakeMembership(NODES)
        _, plane = _speaker("node1", membership)
        before = len(plane.applied)
        names = [*NODES, *(f"intruder-{i}" for i in range(5000))]
        for i in range(5000):
            membership.change(names, MembershipChange(ChangeKind.JOINED, f"intruder-{i}"))
        assert len(plane.applied) == before + 1
        await asyncio.sleep(0)
        assert len(plane.applied) == before + 2
        assert plane.current == _owned_by("node1", NODES)  # intruders own nothing

    asyncio.run(go())
