"""Key rotation, without sockets: one machine's steps as tables, and clusters of machines
whose adverts reach each other late, checked at every step for the one property that
matters: every live member decrypts whatever any live member sends (no split)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

import pytest

from gossip.config import fast, lan
from gossip.errors import LocalError
from gossip.node_meta import KeyAdvert
from gossip.rotation import (
    MAX_KEYS,
    KeyChange,
    KeyChangeKind,
    KeyRotation,
    Phase,
    Waiting,
    WaitReason,
    fingerprint,
    rotation_settle,
)

K, N, M = b"k" * 32, b"n" * 32, b"m" * 16
SETTLE = 2.0


def fp(key: bytes) -> bytes:
    return fingerprint(key)


def advert(primary: bytes, target: bytes, *others: bytes) -> KeyAdvert:
    return KeyAdvert(fp(primary), fp(target), frozenset(fp(k) for k in (primary, target, *others)))


def changes(rot: KeyRotation) -> list[KeyChange]:
    out = []
    while (c := rot.next_change()) is not None:
        out.append(c)
    return out


# -- one machine --------------------------------------------------------------------------


def test_fingerprints_name_keys_without_revealing_them() -> None:
    assert len(fp(K)) == 8
    assert fp(K) != fp(N)
    assert fp(K) not in K
    assert fp(K).hex() == fingerprint(b"k" * 32).hex()  # stable across runs


def test_settle_covers_the_stream_timeout() -> None:
    assert rotation_settle(fast("a")) == 2.0  # tcp_timeout 1 s, floor 2 s
    assert rotation_settle(lan("a")) == 20.0  # tcp_timeout 10 s
    with pytest.raises(LocalError):
        KeyRotation(K, settle=-1)


def test_steady_member_advertises_its_one_key() -> None:
    rot = KeyRotation(K, settle=SETTLE)
    rot.handle_members({"b": advert(K, K)}, now=0.0)
    rot.handle_file_key(K, now=1.0)  # the same key again: nothing happens
    assert rot.keys == (K,)
    assert rot.advert == advert(K, K)
    status = rot.status()
    assert (status.phase, status.installed, status.waiting, status.since) == (
        Phase.STEADY,
        1,
        (),
        None,
    )
    assert rot.next_deadline() is None
    assert changes(rot) == []


def test_one_machine_through_a_whole_rotation() -> None:
    """Each row: an input, then the keyring, advert and phase it must leave."""
    rot = KeyRotation(K, settle=SETTLE)
    peer_old, peer_has_new, peer_switched, peer_done = (
        advert(K, K),
        advert(K, N),
        advert(N, N, K),
        advert(N, N),
    )
    steps: list[tuple[float, object, tuple[bytes, ...], KeyAdvert, Phase]] = [
        (0.0, {"b": peer_old}, (K,), advert(K, K), Phase.STEADY),
        (1.0, N, (K, N), advert(K, N), Phase.DISTRIBUTING),  # install N at once
        (2.0, {"b": peer_has_new}, (K, N), advert(K, N), Phase.SWITCHING),  # settle starts
        (3.9, {"b": peer_has_new}, (K, N), advert(K, N), Phase.SWITCHING),
        (4.0, {"b": peer_has_new}, (N, K), advert(N, N, K), Phase.DRAINING),  # switched
        (5.0, {"b": peer_switched}, (N, K), advert(N, N, K), Phase.DRAINING),  # b no longer
        (6.9, {"b": peer_done}, (N, K), advert(N, N, K), Phase.DRAINING),  # sends with K
        (7.0, {"b": peer_done}, (N,), advert(N, N), Phase.STEADY),  # K dropped
    ]
    for now, given, keys, adv, phase in steps:
        if isinstance(given, bytes):
            rot.handle_file_key(given, now)
        else:
            assert isinstance(given, Mapping)
            rot.handle_members(given, now)
        assert (rot.keys, rot.advert, rot.status().phase) == (keys, adv, phase), now
    kinds = [(c.kind, c.at) for c in changes(rot) if c.kind is not KeyChangeKind.WAITING]
    assert kinds == [
        (KeyChangeKind.INSTALLED, 1.0),
        (KeyChangeKind.SWITCHED, 4.0),
        (KeyChangeKind.DROPPED, 7.0),
    ]


def test_deadlines_say_when_a_settle_period_ends() -> None:
    rot = KeyRotation(K, settle=SETTLE)
    rot.handle_file_key(N, now=1.0)  # alone: nobody to wait for, the switch settles at once
    assert (rot.status().phase, rot.next_deadline()) == (Phase.SWITCHING, 3.0)
    rot.tick(2.9)
    assert rot.keys == (K, N)
    rot.tick(3.0)
    assert rot.keys == (N, K)
    assert rot.next_deadline() == 5.0  # K is dropped at 3.0 + settle
    rot.tick(5.0)
    assert rot.keys == (N,)
    assert rot.next_deadline() is None


@pytest.mark.parametrize(
    ("peers", "waiting"),
    [
        ({"b": advert(K, K)}, [Waiting("b", WaitReason.LACKS_NEW_KEY)]),
        ({"b": None}, [Waiting("b", WaitReason.NO_FINGERPRINTS)]),
        (
            {"c": advert(K, K), "b": None, "d": advert(K, N)},
            [Waiting("b", WaitReason.NO_FINGERPRINTS), Waiting("c", WaitReason.LACKS_NEW_KEY)],
        ),
    ],
)
def test_the_switch_waits_for_every_live_member_and_says_for_whom(
    peers: dict[str, KeyAdvert | None], waiting: list[Waiting]
) -> None:
    rot = KeyRotation(K, settle=SETTLE)
    rot.handle_file_key(N, now=0.0)
    for t in (0.0, 10.0, 100.0):
        rot.handle_members(peers, now=t)
    assert rot.keys == (K, N)
    status = rot.status()
    assert (status.phase, list(status.waiting), status.since) == (
        Phase.DISTRIBUTING,
        waiting,
        0.0,
    )
    assert [str(w) for w in status.waiting] == [f"{w.member} ({w.reason.value})" for w in waiting]
    waits = [c for c in changes(rot) if c.kind is KeyChangeKind.WAITING]
    assert len(waits) == 1  # said once, not at every input


def test_a_member_whose_secret_never_came_sees_the_others_ahead() -> None:
    late = KeyRotation(K, settle=SETTLE)
    late.handle_members({"a": advert(K, N), "b": advert(K, N)}, now=0.0)
    status = late.status()
    assert (status.phase, status.ahead, status.waiting) == (Phase.STEADY, ("a", "b"), ())
    assert [c.members for c in changes(late)] == [("a", "b")]
    late.handle_file_key(N, now=5.0)
    assert late.status().ahead == ()


def test_old_keys_stay_while_a_member_still_sends_with_them() -> None:
    rot = KeyRotation(K, settle=SETTLE)
    rot.handle_file_key(N, now=0.0)
    rot.handle_members({"b": advert(K, N)}, now=0.0)
    rot.tick(SETTLE)
    assert rot.keys == (N, K)
    for t in (3.0, 50.0):
        rot.handle_members({"b": advert(K, N)}, now=t)  # b has not switched yet
    assert rot.keys == (N, K)
    assert rot.status().waiting == (Waiting("b", WaitReason.SENDS_OLD_KEY),)
    rot.handle_members({"b": None}, now=60.0)  # b restarted as something without adverts
    assert rot.keys == (N, K)
    rot.handle_members({}, now=61.0)  # b is gone
    rot.tick(61.0 + SETTLE)
    assert rot.keys == (N,)


def test_a_new_secret_during_a_rotation_retargets_it() -> None:
    rot = KeyRotation(K, settle=SETTLE)
    rot.handle_file_key(N, now=0.0)
    rot.handle_file_key(M, now=1.0)
    assert rot.keys == (K, N, M)
    assert rot.advert == advert(K, M, N)
    rot.handle_members({"b": advert(K, M, N)}, now=2.0)
    rot.tick(2.0 + SETTLE)
    assert rot.keys[0] == M
    rot.handle_members({"b": advert(M, M, K, N)}, now=5.0)
    rot.tick(5.0 + SETTLE)
    assert rot.keys == (M,)


def test_keys_held_at_once_are_bounded() -> None:
    rot = KeyRotation(K, settle=SETTLE)
    rot.handle_members({"b": advert(K, K)}, now=0.0)
    for i in range(3 * MAX_KEYS):  # faster than anything settles
        rot.handle_file_key(bytes([i]) * 16, now=i * SETTLE / 100)
    assert len(rot.keys) == MAX_KEYS
    assert rot.keys[0] == K  # still sending with the key b reads
    assert rot.keys[-1] == bytes([3 * MAX_KEYS - 1]) * 16  # and the newest is held


def test_a_member_restarted_with_only_the_new_key_does_not_block() -> None:
    rot = KeyRotation(K, settle=SETTLE)
    rot.handle_file_key(N, now=0.0)
    rot.handle_members({"b": advert(K, N), "fresh": advert(N, N)}, now=0.0)
    rot.tick(SETTLE)
    assert rot.keys == (N, K)


# -- clusters of machines -------------------------------------------------------------------


class Cluster:
    """Machines (and fixed-key foreign members) whose adverts arrive `delay[a][b]` late.

    `check()` asserts, at every step, that each live member holds every key any live member
    sent with during the last `lag` seconds (packets and streams still in flight)."""

    def __init__(
        self,
        names: Iterable[str],
        key: bytes,
        *,
        foreign: Mapping[str, tuple[bytes, ...]] | None = None,
        delay: Mapping[tuple[str, str], float] | None = None,
        lag: float = 1.0,
    ) -> None:
        self.rot = {n: KeyRotation(key, settle=SETTLE) for n in names}
        self.foreign = dict(foreign or {})
        self.delay = dict(delay or {})
        self.lag = lag
        self.now = 0.0
        self.live = set(self.rot) | set(self.foreign)
        self.adverts: dict[str, list[tuple[float, KeyAdvert]]] = {
            n: [(0.0, r.advert)] for n, r in self.rot.items()
        }
        self.sent: dict[str, list[tuple[float, bytes]]] = {
            n: [(0.0, r.keys[0])] for n, r in self.rot.items()
        }
        self.files: list[tuple[float, str, bytes]] = []

    def schedule(self, at: float, name: str, key: bytes) -> None:
        self.files.append((at, name, key))

    def _seen(self, observer: str, other: str) -> KeyAdvert | None:
        if other in self.foreign:
            return None
        late = self.now - self.delay.get((observer, other), 0.0)
        history = self.adverts[other]
        seen = [adv for t, adv in history if t <= late]
        return seen[-1] if seen else history[0][1]

    def step(self, dt: float = 0.1) -> None:
        self.now = round(self.now + dt, 6)
        for at, name, key in [f for f in self.files if f[0] <= self.now]:
            self.files.remove((at, name, key))
            if name in self.rot:
                self.rot[name].handle_file_key(key, self.now)
        for name in sorted(self.rot):
            if name not in self.live:
                continue
            rot = self.rot[name]
            view = {o: self._seen(name, o) for o in self.live if o != name}
            rot.handle_members(view, self.now)
            if rot.advert != self.adverts[name][-1][1]:
                self.adverts[name].append((self.now, rot.advert))
            if rot.keys[0] != self.sent[name][-1][1]:
                self.sent[name].append((self.now, rot.keys[0]))
        self.check()

    def holds(self, name: str) -> tuple[bytes, ...]:
        return self.foreign[name] if name in self.foreign else self.rot[name].keys

    def sends_recently(self, name: str) -> set[bytes]:
        if name in self.foreign:
            return {self.foreign[name][0]}
        history = self.sent[name]
        keys = {k for t, k in history if t >= self.now - self.lag}
        before = [k for t, k in history if t < self.now - self.lag]
        return keys | set(before[-1:])

    def check(self) -> None:
        for sender in self.live:
            for receiver in self.live - {sender}:
                missing = self.sends_recently(sender) - set(self.holds(receiver))
                assert not missing, f"t={self.now}: {receiver} cannot read {sender}"

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / 0.1)):
            self.step()

    def primaries(self) -> dict[str, bytes]:
        return {n: r.keys[0] for n, r in self.rot.items() if n in self.live}


def test_secrets_arriving_a_minute_apart_rotate_without_a_split() -> None:
    c = Cluster("abc", K, delay={(x, y): 0.3 for x in "abc" for y in "abc"})
    for at, name in ((1.0, "a"), (30.0, "b"), (75.0, "c")):
        c.schedule(at, name, N)
    c.run(74.9)
    assert set(c.primaries().values()) == {K}  # nobody switched before c had the key
    assert c.rot["a"].status().waiting == (Waiting("c", WaitReason.LACKS_NEW_KEY),)
    c.run(10.0)
    assert {n: r.keys for n, r in c.rot.items()} == {n: (N,) for n in "abc"}
    assert all(r.status().phase is Phase.STEADY for r in c.rot.values())


def test_one_member_never_gets_the_secret_and_nobody_switches() -> None:
    c = Cluster("abc", K)
    c.schedule(1.0, "a", N)
    c.schedule(2.0, "b", N)
    c.run(120.0)
    assert c.primaries() == {"a": K, "b": K, "c": K}
    assert c.rot["a"].status().waiting == (Waiting("c", WaitReason.LACKS_NEW_KEY),)
    assert c.rot["c"].status().ahead == ("a", "b")
    c.schedule(121.0, "c", N)  # the kubelet (or a restart) catches up
    c.run(10.0)
    assert {r.keys for r in c.rot.values()} == {(N,)}


def test_a_metallb_speaker_blocks_the_switch_until_it_is_gone() -> None:
    c = Cluster("ab", K, foreign={"metallb": (K,)})
    c.schedule(1.0, "a", N)
    c.schedule(1.5, "b", N)
    c.run(30.0)
    assert c.primaries() == {"a": K, "b": K}
    assert c.rot["a"].status().waiting == (Waiting("metallb", WaitReason.NO_FINGERPRINTS),)
    c.live.discard("metallb")
    c.run(10.0)
    assert {r.keys for r in c.rot.values()} == {(N,)}


def test_a_member_that_dies_mid_rotation_stops_holding_it_up() -> None:
    c = Cluster("abc", K)
    c.schedule(1.0, "a", N)
    c.schedule(1.0, "b", N)
    c.run(5.0)
    c.live.discard("c")  # declared dead (by the gossip, for reasons of its own)
    c.run(10.0)
    assert c.primaries() == {"a": N, "b": N}
    assert {c.rot["a"].keys, c.rot["b"].keys} == {(N,)}


@pytest.mark.parametrize("seed", range(60))
def test_random_arrivals_delays_and_second_rotations_never_split(seed: int) -> None:
    rng = random.Random(seed)
    names = "abcde"[: rng.randint(2, 5)]
    delay = {(x, y): rng.uniform(0.0, 0.6) for x in names for y in names}
    c = Cluster(names, K, delay=delay)
    for name in names:
        c.schedule(round(rng.uniform(0.0, 20.0), 1), name, N)
        if rng.random() < 0.4:  # a second rotation starts before or after the first ends
            c.schedule(round(rng.uniform(5.0, 30.0), 1), name, M)
    final = {n: [k for t, nm, k in sorted(c.files) if nm == n][-1] for n in names}
    c.run(60.0)
    for name in names:  # everyone converges on what its own file says last...
        assert c.rot[name].keys[0] == final[name] or len(set(final.values())) > 1
    if len(set(final.values())) == 1:  # ...and when all agree, holds only that key
        assert {r.keys for r in c.rot.values()} == {(next(iter(final.values())),)}
