"""The speaker's composition logic with the data plane and membership replaced by recorders.

What crosses a wire is judged in tests/e2e; here: the ready gate (MetalLB #1710), replanning
on membership events, the handover gate, failover timing and the last-good-config rule.
"""

from __future__ import annotations

import asyncio
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
from l2agent.speaker import Membership, Speaker, SpeakerOptions
from l2agent.static import load_yaml_files

DEMO = Path(__file__).resolve().parents[2] / "l2agent" / "data" / "demo.yaml"
NODES = ("node1", "node2", "node3")


class RecordingPlane:
    def __init__(self) -> None:
        self.applied: list[dict[IPAddress, InterfaceSelection]] = []
        self.on_sent: Callable[[Sequence[Due], float], None] | None = None

    def apply(self, announcements: Mapping[IPAddress, InterfaceSelection]) -> None:
        self.applied.append(dict(announcements))

    def missing_interfaces(self, ip: IPAddress) -> frozenset[str]:
        return frozenset()

    def interfaces_for(self, ip: IPAddress) -> tuple[str, ...]:
        return ("eth0",)

    @property
    def current(self) -> set[IPAddress]:
        return set(self.applied[-1]) if self.applied else set()


class FakeMembership(Membership):
    def __init__(self, live: Iterable[str], ready: bool = True) -> None:
        self._live = frozenset(live)
        self._ready = ready
        self.pinned: list[str] = []

    def live(self) -> frozenset[str] | None:
        return self._live

    def ready(self) -> bool:
        return self._ready

    def rows(self) -> list[MemberRow]:
        return [MemberRow(n, "192.0.2.1", "alive") for n in sorted(self._live)]

    def pin(self, names: Iterable[str]) -> None:
        self.pinned = list(names)

    def change(self, live: Iterable[str], why: str, ready: bool = True) -> None:
        self._live, self._ready = frozenset(live), ready
        self.on_change(why)


def _speaker(
    me: str, membership: FakeMembership, config: Path = DEMO
) -> tuple[Speaker, RecordingPlane]:
    plane = RecordingPlane()
    speaker = Speaker(
        SpeakerOptions(node=me, config_paths=(config,), metrics_addr=None),
        membership,
        registry=CollectorRegistry(),
        dataplane=plane,  # type: ignore[arg-type]
    )
    assert speaker.load_config()
    return speaker, plane


def _owned_by(me: str, live: Iterable[str]) -> set[IPAddress]:
    """What the pure plan says ``me`` announces (the speaker must do exactly this)."""
    state = build_state(load_yaml_files([DEMO])).state
    return set(plan(state, frozenset(live), me).announcements)


def test_every_ip_is_announced_by_exactly_one_of_the_members() -> None:
    async def speaker_owned(me: str) -> set[IPAddress]:
        speaker, plane = _speaker(me, FakeMembership(NODES))
        speaker._replan("test")
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
        speaker, plane = _speaker("node1", membership)
        speaker._replan("start")
        assert plane.current == set()
        membership.change(NODES, "joined")
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
            speaker._replan("start")
            before = plane.current
            membership.change(survivors, f"failed:{victim}")
            gained |= plane.current - before
            assert speaker._timing.keys() == plane.current - before
            speaker._sent([Due("eth0", ip) for ip in plane.current - before], 1e9)
            assert not speaker._timing
        assert gained == owners[victim]

    asyncio.run(go())


def test_the_successor_pins_the_owner_it_would_inherit_from() -> None:
    async def go() -> None:
        for me in NODES:
            membership = FakeMembership(NODES)
            speaker, _ = _speaker(me, membership)
            speaker._replan("start")
            assert speaker.plan is not None
            expected = {s.candidates[0] for s in speaker.plan.services if s.candidates[1] == me}
            assert set(membership.pinned) == expected

    asyncio.run(go())


def test_while_leaving_membership_changes_do_not_withdraw() -> None:
    owner = next(n for n in NODES if _owned_by(n, NODES))

    async def go() -> None:
        membership = FakeMembership(NODES)
        speaker, plane = _speaker(owner, membership)
        speaker._replan("start")
        held = plane.current
        speaker._leaving = True
        membership.change([n for n in NODES if n != owner], f"left:{owner}")
        assert plane.current == held

    asyncio.run(go())


def test_a_bad_file_keeps_the_last_good_config(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    shutil.copy(DEMO, config)

    async def go() -> None:
        speaker, _ = _speaker("node1", FakeMembership(NODES), config)
        good = speaker.state
        config.write_text("kind: IPAddressPool\napiVersion: metallb.io/v1beta1\nspec: [\n")
        assert not speaker.load_config()
        assert speaker.state is good
        config.write_text(DEMO.read_text().replace("192.0.2.200-192.0.2.220", "10.0.0.0/8,"))
        assert not speaker.load_config()
        assert speaker.state is good
        value = speaker.registry.get_sample_value("l2agent_config_rejected_total")
        assert value is not None and value >= 2

    asyncio.run(go())


@pytest.mark.parametrize("me", NODES)
def test_ownership_rows_mark_only_what_this_node_announces(me: str) -> None:
    async def go() -> None:
        speaker, plane = _speaker(me, FakeMembership(NODES))
        speaker._replan("start")
        rows = speaker.ownership_rows()
        assert {r.ip for r in rows if r.announcing} == plane.current
        assert all(r.owner in NODES for r in rows)

    asyncio.run(go())
