"""The fast preset's defenses against packet loss hold while the health score is raised.

Under loss every failed probe raises Lifeguard's health score, and so does every
refutation. The 10 %-loss soak (bench/soak.py) started declaring live members dead when
the score switched the defenses off: probes and refutations went out as one copy instead
of `probe_copies`, and a refutation inside the rate limit's window was dropped rather
than sent when the window ended. These tests pin each piece, then the whole in the
simulator under the soak's conditions.
"""

from __future__ import annotations

from collections import Counter
from functools import partial

from helpers.engine_pair import EnginePair

from gossip.actions import SendPacket
from gossip.codec import decode_message, encode_message
from gossip.config import fast
from gossip.framing import split_compound, strip_crc
from gossip.messages import Alive, Message, Ping, Suspect
from gossip.sim import LinkSpec, SimCluster


def _messages(data: bytes) -> list[Message]:
    data = strip_crc(data)
    parts = split_compound(data)[0] if data[:1] == b"\x07" else [data]
    return [decode_message(p) for p in parts]


def _direct_alives(packets: list[SendPacket], incarnation: int) -> Counter[tuple[str, int]]:
    """Packets per destination that are exactly one Alive at `incarnation` (gossip is off in
    these pairs, so only a direct refutation sends a lone Alive)."""
    out: Counter[tuple[str, int]] = Counter()
    for p in packets:
        msgs = _messages(p.data)
        if len(msgs) == 1 and isinstance(msgs[0], Alive) and msgs[0].incarnation == incarnation:
            out[p.addr] += 1
    return out


def _pair() -> EnginePair:
    c = EnginePair(3, make=fast, gossip_nodes=0)
    c.join_all()
    return c


def test_a_refutation_goes_to_every_live_member_in_every_copy() -> None:
    c = _pair()
    accused = c.engines[1]
    accused.packets_to_send()
    inc = accused.local_member().incarnation
    accused.handle_packet(encode_message(Suspect(inc, "n1", "n0")), c.addrs[0], c.now)
    assert accused.health_score > 0, "refuting counts against our health (Lifeguard)"
    copies = accused.config.probe_copies
    assert copies == 3
    sent = _direct_alives(accused.packets_to_send(), inc + 1)
    assert sent == {c.addrs[0]: copies, c.addrs[2]: copies}


def test_an_accusation_inside_the_window_is_refuted_directly_when_the_window_ends() -> None:
    c = _pair()
    accused = c.engines[1]
    accused.packets_to_send()
    t0 = c.now
    inc = accused.local_member().incarnation
    accused.handle_packet(encode_message(Suspect(inc, "n1", "n0")), c.addrs[0], t0)
    accused.packets_to_send()
    # n2 heard the refutation, its next probe of n1 failed too: it accuses the new incarnation
    accused.handle_packet(encode_message(Suspect(inc + 1, "n1", "n2")), c.addrs[2], t0 + 0.005)
    assert accused.local_member().incarnation == inc + 2
    assert not _direct_alives(accused.packets_to_send(), inc + 2), "inside the window: held"
    deadline = accused.next_deadline()
    assert deadline is not None and deadline <= t0 + 2 * accused.config.probe_interval
    accused.tick(t0 + 2 * accused.config.probe_interval)
    sent = _direct_alives(accused.packets_to_send(), inc + 2)
    assert sent == {c.addrs[0]: 3, c.addrs[2]: 3}


def test_a_member_with_a_raised_health_score_still_sends_every_ping_copy() -> None:
    c = _pair()
    prober = c.engines[0]
    prober.awareness.apply_delta(1)  # e.g. its last probe failed under loss
    prober.packets_to_send()
    start = prober.counters.probes
    t = c.now
    while prober.counters.probes == start:
        t += 0.001
        prober.tick(t)
    pings = [
        p.addr
        for p in prober.packets_to_send()
        if any(isinstance(m, Ping) for m in _messages(p.data))
    ]
    assert len(pings) == prober.config.probe_copies == 3
    assert len(set(pings)) == 1


def test_the_soak_in_virtual_time_kills_next_to_nobody() -> None:
    """bench/soak.py's conditions in `gossip.sim`: 3 fast members, 19 % loss between any
    two (10 % on each link), up to 20 ms of delivery jitter (a busy CPU), 20 s each of two
    seeds. With the defenses held: 1 false death; with them switched off by the health
    score (cfddc05..bece229): 18."""
    deaths = []
    for seed in (1, 2):
        c = SimCluster(
            3,
            partial(fast, enable_compression=False),
            seed,
            link=LinkSpec(latency=0.0005, jitter=0.02, loss=0.19),
        )
        c.join_all()
        c.run_for(2.0)
        before = len(c.observer.false_failures(set()))
        c.run_for(20.0)
        assert c.net.lost > 0.15 * c.net.sent, f"seed={seed}: loss not applied"
        deaths.append(len(c.observer.false_failures(set())) - before)
    assert sum(deaths) <= 3, f"false deaths per seed: {deaths}"
