"""Gossip key rotation without a split: which keys to hold, which to send with, and why.

memberlist tries every installed key when it decrypts and encrypts with the primary only, so
a cluster can change keys without a split if three steps happen in order everywhere: install
the new key, make it primary, remove the old one. MetalLB cannot order them (each speaker
reads its Secret once, at start), so its cluster splits for the whole rollout. Here every
member runs this machine and advertises what it holds (`gossip.node_meta.KeyAdvert`, in its
node meta), and the steps are gated on what the others advertise:

1. The secret file names a new key (the *target*): install it for decryption at once and
   advertise it. Installing can never hurt: nothing is sent with it yet.
2. Send with the target only once every live member advertises that it holds it, and that
   has held for `settle` seconds. Until then keep sending with the old primary, which every
   member still decrypts. A member that advertises nothing (MetalLB, Go memberlist, an
   older speaker) blocks this step: nothing says it could read us.
3. Drop an old key once no live member sends with it (advertises it as primary) or may
   still switch to it (advertises it as target), and that has held for `settle` seconds
   (packets and streams sealed just before a member switched are still in flight).

So at every moment each member decrypts whatever any live member sends: a member that never
gets the new Secret keeps the others on the old key, and they say whom they wait for
(`RotationStatus.waiting`). Once the old key is dropped, a peer holding only it is refused.

`settle` must exceed the time an advert takes to reach every member and the stream timeout
(`rotation_settle` derives it from the gossip config). Pure: the caller supplies the time,
reads the file and the member table, and applies `keys` and `advert` after each input.
"""

from __future__ import annotations

import enum
import hashlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from gossip.config import GossipConfig
from gossip.errors import LocalError
from gossip.node_meta import FINGERPRINT_SIZE, KeyAdvert

__all__ = [
    "MAX_KEYS",
    "KeyChange",
    "KeyChangeKind",
    "KeyRotation",
    "Phase",
    "RotationStatus",
    "WaitReason",
    "Waiting",
    "fingerprint",
    "rotation_settle",
]

MAX_KEYS = 8
"""Keys held at once. Only rotations started faster than they finish exceed it; then the
oldest key nobody is known to need goes first (bounded memory beats a perfect record)."""
_FP_CONTEXT = b"l2agent gossip key fingerprint v1\x00"


def fingerprint(key: bytes) -> bytes:
    """8 bytes that name a key without revealing it (a truncated, domain-separated SHA-256)."""
    return hashlib.sha256(_FP_CONTEXT + key).digest()[:FINGERPRINT_SIZE]


def rotation_settle(config: GossipConfig) -> float:
    """Settle time for a gossip config: twice the stream timeout, at least 2 s."""
    return max(2.0, 2.0 * config.tcp_timeout)


class Phase(enum.Enum):
    """Where this member is in a rotation (the value is the word /status and metrics use)."""

    STEADY = "steady"  # one key, sending with it
    DISTRIBUTING = "distributing"  # target installed; waiting until every member holds it
    SWITCHING = "switching"  # every member holds it; `settle` seconds before sending with it
    DRAINING = "draining"  # sending with the target; old keys kept while anyone needs them


class WaitReason(enum.Enum):
    """Why a member holds the rotation up."""

    LACKS_NEW_KEY = "lacks_new_key"  # does not advertise the target (its Secret is late)
    SENDS_OLD_KEY = "sends_old_key"  # sends with (or may switch to) a key we would drop
    NO_FINGERPRINTS = "no_fingerprints"  # advertises no keys (MetalLB, Go, older speaker)


@dataclass(frozen=True, slots=True)
class Waiting:
    """A member that holds the rotation up, and why."""

    member: str
    reason: WaitReason

    def __str__(self) -> str:
        return f"{self.member} ({self.reason.value})"


class KeyChangeKind(enum.Enum):
    INSTALLED = "installed"  # a new key decrypts from now on
    SWITCHED = "switched"  # we send with this key from now on
    DROPPED = "dropped"  # this key no longer decrypts anything
    WAITING = "waiting"  # the set of members holding the rotation up changed
    AHEAD = "ahead"  # the set of members rotating to a key we have not got changed


@dataclass(frozen=True, slots=True)
class KeyChange:
    """Something the caller should log. `fingerprint` for key changes, `members` else."""

    kind: KeyChangeKind
    at: float
    fingerprint: bytes = b""
    waiting: tuple[Waiting, ...] = ()
    members: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RotationStatus:
    """The rotation as /status and the metrics show it."""

    phase: Phase
    primary: bytes
    """Fingerprint of the key we send with."""
    target: bytes
    """Fingerprint of the key the secret file names."""
    installed: int
    waiting: tuple[Waiting, ...]
    """Members holding the rotation up, and why."""
    ahead: tuple[str, ...]
    """Members rotating to a key we have not got: our own Secret may be stale."""
    since: float | None
    """When the current rotation began (None when steady)."""


class KeyRotation:
    """One member's key rotation. Inputs: `handle_file_key`, `handle_members`, `tick`;
    outputs: `keys` (primary first), `advert`, `status()`, `next_change()`,
    `next_deadline()`."""

    def __init__(self, key: bytes, *, settle: float) -> None:
        if settle < 0:
            raise LocalError("settle must be >= 0")
        self.settle = settle
        self._keys: list[bytes] = [key]
        self._target = key
        self._peers: dict[str, KeyAdvert | None] = {}
        self._switch_since: float | None = None
        self._drop_since: dict[bytes, float] = {}
        self._waiting: tuple[Waiting, ...] = ()
        self._ahead: tuple[str, ...] = ()
        self._began: float | None = None
        self._changes: deque[KeyChange] = deque(maxlen=64)

    # -- outputs ------------------------------------------------------------------------------

    @property
    def keys(self) -> tuple[bytes, ...]:
        """The keyring to install: the primary (send with it) first."""
        return tuple(self._keys)

    @property
    def advert(self) -> KeyAdvert:
        """What to put in our node meta."""
        return KeyAdvert(
            primary=fingerprint(self._keys[0]),
            target=fingerprint(self._target),
            installed=frozenset(fingerprint(k) for k in self._keys),
        )

    def status(self) -> RotationStatus:
        return RotationStatus(
            phase=self._phase(),
            primary=fingerprint(self._keys[0]),
            target=fingerprint(self._target),
            installed=len(self._keys),
            waiting=self._waiting,
            ahead=self._ahead,
            since=self._began,
        )

    def next_change(self) -> KeyChange | None:
        """The oldest change not yet taken, or None."""
        return self._changes.popleft() if self._changes else None

    def next_deadline(self) -> float | None:
        """When `tick` would next change something on its own (a settle period ends)."""
        times = list(self._drop_since.values())
        if self._switch_since is not None:
            times.append(self._switch_since)
        return min(times) + self.settle if times else None

    # -- inputs -------------------------------------------------------------------------------

    def handle_file_key(self, key: bytes, now: float) -> None:
        """The secret file now names `key`."""
        if key == self._target:
            return
        self._target = key
        self._switch_since = None
        if key not in self._keys:
            self._keys.append(key)
            self._drop_since.pop(key, None)
            self._changes.append(KeyChange(KeyChangeKind.INSTALLED, now, fingerprint(key)))
            self._bound(now)
        self._evaluate(now)

    def handle_members(self, adverts: Mapping[str, KeyAdvert | None], now: float) -> None:
        """Every live member but us, with its advert (None: it advertises none)."""
        self._peers = dict(adverts)
        self._evaluate(now)

    def tick(self, now: float) -> None:
        self._evaluate(now)

    # -- the rules ----------------------------------------------------------------------------

    def _phase(self) -> Phase:
        if self._keys[0] != self._target:
            return Phase.DISTRIBUTING if self._switch_since is None else Phase.SWITCHING
        return Phase.STEADY if len(self._keys) == 1 else Phase.DRAINING

    def _evaluate(self, now: float) -> None:
        waiting: set[Waiting] = set()
        self._maybe_switch(now, waiting)
        self._maybe_drop(now, waiting)
        ordered = tuple(sorted(waiting, key=lambda w: (w.member, w.reason.value)))
        if ordered != self._waiting:
            self._waiting = ordered
            self._changes.append(KeyChange(KeyChangeKind.WAITING, now, waiting=ordered))
        mine = {fingerprint(k) for k in self._keys}
        ahead = tuple(
            sorted(n for n, a in self._peers.items() if a is not None and a.target not in mine)
        )
        if ahead != self._ahead:
            self._ahead = ahead
            self._changes.append(KeyChange(KeyChangeKind.AHEAD, now, members=ahead))
        steady = self._phase() is Phase.STEADY
        if steady:
            self._began = None
        elif self._began is None:
            self._began = now

    def _maybe_switch(self, now: float, waiting: set[Waiting]) -> None:
        if self._keys[0] == self._target:
            self._switch_since = None
            return
        target = fingerprint(self._target)
        blockers = [_lacks(name, adv, target) for name, adv in self._peers.items()]
        found = {b for b in blockers if b is not None}
        if found:
            waiting |= found
            self._switch_since = None
            return
        if self._switch_since is None:
            self._switch_since = now
        if now < self._switch_since + self.settle:
            return
        self._switch_since = None
        self._keys.remove(self._target)
        self._keys.insert(0, self._target)
        self._changes.append(KeyChange(KeyChangeKind.SWITCHED, now, target))

    def _maybe_drop(self, now: float, waiting: set[Waiting]) -> None:
        for key in list(self._keys[1:]):
            if key == self._target:
                continue
            fp = fingerprint(key)
            users = {u for name, adv in self._peers.items() if (u := _uses(name, adv, fp))}
            if users:
                waiting |= users
                self._drop_since.pop(key, None)
                continue
            since = self._drop_since.setdefault(key, now)
            if now >= since + self.settle:
                self._drop(key, now)

    def _drop(self, key: bytes, now: float) -> None:
        self._keys.remove(key)
        self._drop_since.pop(key, None)
        self._changes.append(KeyChange(KeyChangeKind.DROPPED, now, fingerprint(key)))

    def _bound(self, now: float) -> None:
        """Keep at most MAX_KEYS: drop the oldest that is neither primary nor target."""
        while len(self._keys) > MAX_KEYS:
            spare = [k for k in self._keys[1:] if k != self._target]
            self._drop(spare[0], now)


def _lacks(name: str, adv: KeyAdvert | None, target: bytes) -> Waiting | None:
    if adv is None:
        return Waiting(name, WaitReason.NO_FINGERPRINTS)
    if target not in adv.installed:
        return Waiting(name, WaitReason.LACKS_NEW_KEY)
    return None


def _uses(name: str, adv: KeyAdvert | None, fp: bytes) -> Waiting | None:
    if adv is None:
        return Waiting(name, WaitReason.NO_FINGERPRINTS)
    if fp in (adv.primary, adv.target):
        return Waiting(name, WaitReason.SENDS_OLD_KEY)
    return None
