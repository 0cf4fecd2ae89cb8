"""The speaker's gossip membership: rejoin back-off, and "alone" never concluded against
evidence of peers with another key (issue 11, items 6 and 10). Real runtimes on loopback."""

from __future__ import annotations

import asyncio
import logging
import random
import socket

import pytest

from gossip.config import fast
from gossip.keyring import Keyring
from l2agent.speaker.gossip import GossipMembership, RejoinBackoff
from l2agent.speaker.membership import ChangeKind, MembershipChange

A = ("192.0.2.1", 7946)
B = ("192.0.2.2", 7946)


@pytest.mark.parametrize(
    ("failures", "health", "low", "high"),
    [
        (1, 0.0, 0.75 * 0.25, 0.25),
        (2, 0.0, 0.75 * 0.5, 0.5),
        (5, 0.0, 0.75 * 4.0, 4.0),
        (12, 0.0, 0.75 * 8.0, 8.0),  # capped
        (1, 1.0, 0.75 * 0.5, 0.5),  # an unhealthy node waits twice as long
    ],
)
def test_rejoin_backs_off_per_peer(failures: int, health: float, low: float, high: float) -> None:
    backoff = RejoinBackoff(0.25, 8.0, random.Random(1))
    assert backoff.due([A, B], 0.0) == [A, B]
    for _ in range(failures):
        wait = backoff.failed(A, 0.0, health)
    assert low <= wait <= high
    assert backoff.due([A, B], 0.0) == [B]
    assert backoff.due([A, B], high) == [A, B]
    backoff.reset(keep=[B])
    assert backoff.due([A], 0.0) == [A]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        port = int(udp.getsockname()[1])
    with socket.socket() as tcp:
        tcp.bind(("127.0.0.1", port))
    return port


def _member(name: str, port: int, key: bytes, join: list[int]) -> GossipMembership:
    config = fast(name, bind_addr="127.0.0.1", bind_port=port)
    return GossipMembership(
        config,
        [("127.0.0.1", p) for p in join],
        keyring=Keyring.of(key),
        alone_after=0.5,
    )


class _Counters:
    def suspicion_raised(self) -> None: ...

    def suspicion_refuted(self) -> None: ...

    def probe_rtt(self, seconds: float) -> None: ...


@pytest.mark.parametrize("wrong_key", [True, False])
def test_a_speaker_with_the_wrong_key_stays_unready_and_says_so(
    wrong_key: bool, caplog: pytest.LogCaptureFixture
) -> None:
    async def run() -> None:
        p1, p2 = _free_port(), _free_port()
        cluster = _member("a", p1, bytes(32), [])
        newcomer = _member("b", p2, bytes(range(32)) if wrong_key else bytes(32), [p1])
        changes: list[MembershipChange] = []
        seen: list[str] = []
        newcomer.on_key_mismatch.append(seen.append)
        await cluster.start(lambda c: None, _Counters())
        await newcomer.start(changes.append, _Counters())
        try:
            await asyncio.sleep(2.0)  # four times alone_after
            report = newcomer.input_report()
            assert report is not None
            if wrong_key:
                assert not newcomer.ready()
                assert newcomer.key_mismatch() and report.key_mismatch
                assert report.undecryptable == {"127.0.0.1"}
                assert seen == ["127.0.0.1"]
                assert MembershipChange(ChangeKind.READY) not in changes
                assert "cannot be decrypted" in caplog.text
            else:
                assert newcomer.ready() and not report.key_mismatch
                assert newcomer.live() == {"a", "b"}
        finally:
            await newcomer.close()
            await cluster.close()

    with caplog.at_level(logging.WARNING):
        asyncio.run(run())


def test_alone_when_nobody_answers_at_all() -> None:
    async def run() -> None:
        port = _free_port()
        silent = _free_port()  # nobody listens there: joins fail, nothing is heard
        alone = _member("a", port, bytes(32), [silent])
        changes: list[MembershipChange] = []
        await alone.start(changes.append, _Counters())
        try:
            await asyncio.sleep(1.5)
            assert alone.ready() and not alone.key_mismatch()
            assert MembershipChange(ChangeKind.READY) in changes
        finally:
            await alone.close()

    asyncio.run(run())


def test_member_lines_are_bounded_with_a_summary(caplog: pytest.LogCaptureFixture) -> None:
    from l2agent.speaker.gossip import MemberLog

    member_log = MemberLog(burst=20, window=10.0)
    with caplog.at_level(logging.INFO, logger="l2agent.speaker.gossip"):
        for i in range(5000):
            member_log.line(logging.INFO, "joined", f"m{i}", 1.0 + i / 1000)
        member_log.line(logging.WARNING, "failed", "m0", 5.0)
        member_log.tick(11.5)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 21
    assert lines[-1] == (
        "4981 more member changes in 10 s, not logged one by one: 1 failed, 4980 joined"
    )
