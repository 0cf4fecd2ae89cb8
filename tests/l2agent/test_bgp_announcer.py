"""BgpAnnouncer's orchestration: unchanged plans cost no reload, withdrawal comes first and
waits for FRR (the real reloader and FRR judge it end to end in the BGP lab tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from l2agent.bgp.announcer import BgpAnnouncer
from l2agent.model import ClusterState, build_state
from l2agent.static import load_yaml_files

DATA = Path(__file__).resolve().parents[1] / "data" / "bgp"


class Recorder:
    """Keeps every text it is asked to apply (in place of FrrReloader)."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def apply(self, config: str) -> str:
        self.texts.append(config)
        return "applied"


def _state(case: str, *, drop_service: bool = False) -> ClusterState:
    objects = load_yaml_files([DATA / f"{case}.yaml"])
    if drop_service:
        objects = [o for o in objects if o["kind"] != "Service"]
    return build_state(objects).state


def test_only_changed_texts_are_applied() -> None:
    rec = Recorder()
    ann = BgpAnnouncer("node1", rec)

    async def run() -> None:
        assert await ann.update(_state("single-peer")) == "applied"
        assert await ann.update(_state("single-peer")) is None  # same plan: no reload
        await ann.update(_state("single-peer", drop_service=True))

    asyncio.run(run())
    assert len(rec.texts) == 2 and ann.applied == 2
    assert "network 198.51.100.10/32" in rec.texts[0]
    assert "network" not in rec.texts[1].replace("no bgp network import-check", "")


def test_withdraw_keeps_sessions_and_waits_for_frr() -> None:
    rec = Recorder()
    ann = BgpAnnouncer("node1", rec)
    polls: list[int] = []

    async def prefixes_sent() -> int:
        polls.append(1)
        return 0 if len(polls) >= 3 else 1

    async def run() -> float:
        await ann.update(_state("single-peer"))
        loop = asyncio.get_running_loop()
        start = loop.time()
        await ann.withdraw(5.0, prefixes_sent=prefixes_sent, poll_interval=0.01)
        took = loop.time() - start
        # a snapshot after the withdrawal announces nothing again
        assert await ann.update(_state("single-peer")) is None
        return took

    took = asyncio.run(run())
    assert len(polls) == 3 and took < 5.0
    withdrawn = rec.texts[-1]
    assert "neighbor 192.0.2.1 remote-as 64513" in withdrawn
    assert "  network " not in withdrawn and len(rec.texts) == 2
