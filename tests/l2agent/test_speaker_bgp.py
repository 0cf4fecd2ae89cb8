"""BGP mode inside the speaker, with the data plane, membership and reloader as recorders
(the real reloader, FRR and routers judge it in the BGP lab's end-to-end tests): only a new
configuration replans BGP, a layer-2-only speaker never touches FRR, and SIGTERM's handover
withdraws every prefix before the speaker stops."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client import CollectorRegistry
from test_speaker import FakeMembership, RecordingPlane

from l2agent.speaker.bgp import BgpLink
from l2agent.speaker.files import ConfigFiles
from l2agent.speaker.membership import ChangeKind, MembershipChange
from l2agent.speaker.run import Speaker, SpeakerOptions
from l2agent.static import demo_config_path

DATA = Path(__file__).resolve().parents[1] / "data" / "bgp"


class Recorder:
    def __init__(self) -> None:
        self.texts: list[str] = []

    async def apply(self, config: str) -> str:
        self.texts.append(config)
        return "applied"


def _speaker(config: Path) -> tuple[Speaker, BgpLink, Recorder, FakeMembership]:
    membership = FakeMembership(["node1", "node2"])
    speaker = Speaker(
        SpeakerOptions(node="node1", metrics_addr=None, handover_drain=0.05),
        membership,
        registry=CollectorRegistry(),
        dataplane=RecordingPlane(),  # type: ignore[arg-type]
    )
    rec = Recorder()
    link = BgpLink("node1", rec, lambda: speaker.state, drain=5.0)
    speaker.plan_listeners.append(link.plan_changed)
    speaker.on_leave.append(link.withdraw)
    membership.on_change = speaker.membership_changed
    assert ConfigFiles([config], speaker.offer).load()
    return speaker, link, rec, membership


def test_a_new_configuration_is_applied_membership_changes_are_not() -> None:
    async def go() -> Recorder:
        _, link, rec, membership = _speaker(DATA / "single-peer.yaml")
        await asyncio.sleep(0)
        membership.change(["node1"], MembershipChange(ChangeKind.FAILED, "node2"))
        await asyncio.sleep(0)
        assert link.plan is not None and len(link.plan.routes) == 1
        return rec

    rec = asyncio.run(go())
    assert len(rec.texts) == 1 and "network 198.51.100.10/32" in rec.texts[0]


def test_a_layer_2_only_speaker_never_touches_frr() -> None:
    async def go() -> Recorder:
        _, link, rec, _ = _speaker(demo_config_path())
        await asyncio.sleep(0)
        await link.withdraw()
        return rec

    assert asyncio.run(go()).texts == []


def test_sigterm_withdraws_before_the_speaker_stops() -> None:
    async def go() -> Recorder:
        speaker, link, rec, _ = _speaker(DATA / "single-peer.yaml")
        sent = iter([2, 1, 0])

        async def prefixes_sent() -> int:
            return next(sent)

        link.prefixes_sent = prefixes_sent
        await asyncio.sleep(0)
        await speaker.shutdown()
        return rec

    rec = asyncio.run(go())
    assert len(rec.texts) == 2
    assert "  network " in rec.texts[0] and "  network " not in rec.texts[1]
    assert "neighbor 192.0.2.1 remote-as 64513" in rec.texts[1]
