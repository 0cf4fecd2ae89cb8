"""The member table and memberlist's merge rules (state.go's aliveNode/suspectNode/deadNode).

Rules, in short (spec §9.4-§9.7, §9.10):
- alive about another node counts only with a higher incarnation, or as an address
  update of a *left* entry (or one dead longer than dead_node_reclaim_time);
- suspect / dead count with an incarnation at least the local one;
- anything that accuses *us* is refuted with incarnation max(ours + 1, accused + 1);
- a remote "dead" in a push/pull only makes us suspect; "left" is taken as is.

The table decides; it returns a `Change` saying what to re-broadcast and which event the
engine should emit. Suspicion timers live here as deadlines (`gossip.suspicion`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

from gossip.events import Member
from gossip.messages import Alive, Dead, NodeState, PushNodeState, Suspect, addr_from_bytes
from gossip.scaling import suspicion_timeout
from gossip.suspicion import Suspicion

if TYPE_CHECKING:
    import random

__all__ = [
    "Change",
    "ChangeKind",
    "MemberTable",
    "NodeEntry",
    "SuspicionParams",
    "verify_protocol",
]

log = logging.getLogger(__name__)

_MAX_INCARNATION = 0xFFFF_FFFF


class ChangeKind(IntEnum):
    """What applying a message did. Append only."""

    NONE = 0  # stale or no news
    JOINED = 1  # dead/left/unknown -> alive
    UPDATED = 2  # alive member changed meta or address
    RECOVERED = 3  # suspect -> alive (refuted)
    SUSPECTED = 4  # alive -> suspect
    CONFIRMED = 5  # a new independent confirmation of an existing suspicion
    FAILED = 6  # -> dead
    LEFT = 7  # -> left
    REFUTED = 8  # we were accused and re-announced ourselves
    CONFLICT = 9  # alive for a known name from another address, ignored
    BAD_VSN = 10  # alive with an impossible version range, ignored


@dataclass(slots=True)
class Change:
    """Result of applying one message: what happened and what to gossip on."""

    kind: ChangeKind
    entry: NodeEntry | None = None
    rebroadcast: Alive | Suspect | Dead | None = None
    by: str = ""


_NONE = Change(ChangeKind.NONE)


class NodeEntry:
    """One member as we know it (mutable; snapshots are `Member`)."""

    __slots__ = (
        "addr",
        "addr_text",
        "incarnation",
        "meta",
        "name",
        "port",
        "state",
        "state_change",
        "vsn",
    )

    def __init__(self, name: str, addr: bytes, port: int, now: float) -> None:
        self.name = name
        self.addr = addr
        self.addr_text = str(addr_from_bytes(addr))
        self.port = port
        self.meta = b""
        self.vsn = b"\x00" * 6
        self.incarnation = 0
        self.state = NodeState.DEAD
        self.state_change = now

    @property
    def address(self) -> tuple[str, int]:
        return (self.addr_text, self.port)

    @property
    def pmax(self) -> int:
        return self.vsn[1] if len(self.vsn) > 1 else 0

    def snapshot(self) -> Member:
        return Member(
            name=self.name,
            addr=self.addr_text,
            port=self.port,
            meta=self.meta,
            incarnation=self.incarnation,
            state=self.state,
            vsn=tuple(self.vsn),
        )

    def to_push_state(self) -> PushNodeState:
        return PushNodeState(
            name=self.name,
            addr=self.addr,
            port=self.port,
            meta=self.meta,
            incarnation=self.incarnation,
            state=self.state,
            vsn=self.vsn if len(self.vsn) == 6 else b"\x01\x05\x02\x00\x00\x00",
        )


@dataclass(frozen=True, slots=True)
class SuspicionParams:
    """The config values suspicion timing depends on."""

    suspicion_mult: float
    suspicion_max_timeout_mult: float
    probe_interval: float
    min_timeout_floor: float = 0.0


class MemberTable:
    """All known members (self included) in probe order, with their suspicions."""

    def __init__(
        self,
        local_name: str,
        rng: random.Random,
        params: SuspicionParams,
        dead_node_reclaim_time: float = 0.0,
    ) -> None:
        self.local_name = local_name
        self._rng = rng
        self._params = params
        self._reclaim = dead_node_reclaim_time
        self.nodes: list[NodeEntry] = []
        self.by_name: dict[str, NodeEntry] = {}
        self.suspicions: dict[str, Suspicion] = {}
        self.probe_index = 0
        self.leaving = False
        self.alive_count = 0
        self.addresses: dict[tuple[str, int], int] = {}
        """(IP, port) of every entry, with how many entries use it (O(1) "is a member")."""
        self.version = 0
        """Bumped whenever an entry appears, goes, or changes state (caches key on it)."""

    # ------------------------------------------------------------------ queries

    def __len__(self) -> int:
        return len(self.nodes)

    def get(self, name: str) -> NodeEntry | None:
        return self.by_name.get(name)

    @property
    def local(self) -> NodeEntry:
        return self.by_name[self.local_name]

    def _set_state(self, entry: NodeEntry, state: NodeState, now: float) -> None:
        self.version += 1
        if entry.state is NodeState.ALIVE and state is not NodeState.ALIVE:
            self.alive_count -= 1
        elif entry.state is not NodeState.ALIVE and state is NodeState.ALIVE:
            self.alive_count += 1
        entry.state = state
        entry.state_change = now

    def _insert(self, entry: NodeEntry) -> None:
        """Append, then swap with a random position (memberlist's random insertion)."""
        n = len(self.nodes)
        self.nodes.append(entry)
        offset = self._rng.randrange(n) if n else 0
        self.nodes[offset], self.nodes[n] = self.nodes[n], self.nodes[offset]
        self.by_name[entry.name] = entry
        self._index(entry.address, +1)
        self.version += 1

    def _index(self, address: tuple[str, int], delta: int) -> None:
        count = self.addresses.get(address, 0) + delta
        if count > 0:
            self.addresses[address] = count
        else:
            self.addresses.pop(address, None)

    # ------------------------------------------------------------------ probe order

    def next_probe_target(self, now: float, dead_time: float) -> NodeEntry | None:
        """The next member to probe, round robin; reap and reshuffle on wrap-around."""
        checked = 0
        while checked < len(self.nodes):
            if self.probe_index >= len(self.nodes):
                self._reset_probe_list(now, dead_time)
                checked += 1
                continue
            entry = self.nodes[self.probe_index]
            self.probe_index += 1
            checked += 1
            if entry.name == self.local_name or entry.state in (NodeState.DEAD, NodeState.LEFT):
                continue
            return entry
        return None

    def _reset_probe_list(self, now: float, dead_time: float) -> None:
        """Reap dead/left entries older than dead_time, then Fisher-Yates shuffle."""
        keep: list[NodeEntry] = []
        for e in self.nodes:
            gone = e.state in (NodeState.DEAD, NodeState.LEFT)
            if gone and e.name != self.local_name and now - e.state_change > dead_time:
                del self.by_name[e.name]
                self.suspicions.pop(e.name, None)
                self._index(e.address, -1)
                self.version += 1
                continue
            keep.append(e)
        self._rng.shuffle(keep)
        self.nodes = keep
        self.probe_index = 0

    # ------------------------------------------------------------------ suspicion

    def _start_suspicion(self, s: Suspect, now: float) -> Suspicion:
        n = len(self.nodes)
        p = self._params
        k = int(p.suspicion_mult - 2)
        if n - 2 < k:
            k = 0
        min_t = max(suspicion_timeout(p.suspicion_mult, n, p.probe_interval), p.min_timeout_floor)
        max_t = p.suspicion_max_timeout_mult * min_t
        sus = Suspicion(s.from_node, k, min_t, max_t, now, s.incarnation)
        self.suspicions[s.node] = sus
        return sus

    def next_suspicion_deadline(self) -> float | None:
        if not self.suspicions:
            return None
        return min(s.deadline for s in self.suspicions.values())

    def expire_suspicions(self, now: float) -> list[Dead]:
        """Dead messages for suspicions whose timer ran out (still suspect since then)."""
        out: list[Dead] = []
        for name, sus in list(self.suspicions.items()):
            if not sus.expired(now):
                continue
            del self.suspicions[name]
            entry = self.by_name.get(name)
            if entry is None or entry.state is not NodeState.SUSPECT:
                continue
            if entry.state_change != sus.start:
                continue
            out.append(Dead(incarnation=sus.incarnation, node=name, from_node=self.local_name))
        return out

    # ------------------------------------------------------------------ rules

    def refute(self, accused_incarnation: int) -> Alive:
        """Re-announce ourselves above any incarnation we were accused at."""
        me = self.local
        # memberlist adds with uint32 wrap-around, so an accusation at 2^32-1 makes its
        # refutation 0, which nobody accepts; we stop at the largest incarnation instead
        # (and the engine ignores accusations at it: they could never be refuted).
        me.incarnation = min(max(me.incarnation + 1, accused_incarnation + 1), _MAX_INCARNATION)
        return Alive(
            incarnation=me.incarnation,
            node=me.name,
            addr=me.addr,
            port=me.port,
            meta=me.meta,
            vsn=me.vsn,
        )

    def apply_alive(self, a: Alive, now: float, bootstrap: bool = False) -> Change:
        """memberlist's aliveNode."""
        is_local = a.node == self.local_name
        if self.leaving and is_local:
            return _NONE
        vsn = a.vsn
        if len(vsn) >= 3 and (vsn[0] == 0 or vsn[1] == 0 or vsn[0] > vsn[1]):
            return Change(ChangeKind.BAD_VSN)
        entry = self.by_name.get(a.node)
        if entry is None:
            entry = NodeEntry(a.node, a.addr, a.port, now)
            entry.vsn = a.vsn
            self._insert(entry)
        updates_node = False
        if entry.addr != a.addr or entry.port != a.port:
            reclaimable = entry.state is NodeState.LEFT or (
                entry.state is NodeState.DEAD
                and self._reclaim > 0
                and now - entry.state_change > self._reclaim
            )
            if not reclaimable:
                # reported (counted, rate limited) by the engine as ADDRESS_CONFLICT
                return Change(ChangeKind.CONFLICT, entry)
            updates_node = True
        if not is_local and a.incarnation <= entry.incarnation and not updates_node:
            return _NONE
        if is_local and a.incarnation < entry.incarnation:
            return _NONE
        self.suspicions.pop(a.node, None)
        if is_local and not bootstrap:
            if a.incarnation == entry.incarnation and a.meta == entry.meta and a.vsn == entry.vsn:
                return _NONE
            return Change(ChangeKind.REFUTED, entry, self.refute(a.incarnation))
        old_state = entry.state
        old_meta = entry.meta
        entry.vsn = a.vsn
        entry.incarnation = a.incarnation
        entry.meta = a.meta
        if updates_node:
            self._index(entry.address, -1)
            entry.addr = a.addr
            entry.addr_text = str(addr_from_bytes(a.addr))
            entry.port = a.port
            self._index(entry.address, +1)
        if entry.state is not NodeState.ALIVE:
            self._set_state(entry, NodeState.ALIVE, now)
        if old_state in (NodeState.DEAD, NodeState.LEFT):
            kind = ChangeKind.JOINED
        elif old_meta != entry.meta or updates_node:
            kind = ChangeKind.UPDATED
        elif old_state is NodeState.SUSPECT:
            kind = ChangeKind.RECOVERED
        else:
            kind = ChangeKind.NONE
        return Change(kind, entry, a)

    def apply_suspect(self, s: Suspect, now: float) -> Change:
        """memberlist's suspectNode."""
        entry = self.by_name.get(s.node)
        if entry is None or s.incarnation < entry.incarnation:
            return _NONE
        sus = self.suspicions.get(s.node)
        if sus is not None:
            if sus.confirm(s.from_node):
                return Change(ChangeKind.CONFIRMED, entry, s, s.from_node)
            return _NONE
        if entry.state is not NodeState.ALIVE:
            return _NONE
        if s.node == self.local_name:
            return Change(ChangeKind.REFUTED, entry, self.refute(s.incarnation))
        entry.incarnation = s.incarnation
        self._set_state(entry, NodeState.SUSPECT, now)
        self._start_suspicion(s, now)
        return Change(ChangeKind.SUSPECTED, entry, s, s.from_node)

    def apply_dead(self, d: Dead, now: float) -> Change:
        """memberlist's deadNode (a dead from the node itself is a graceful leave)."""
        entry = self.by_name.get(d.node)
        if entry is None or d.incarnation < entry.incarnation:
            return _NONE
        self.suspicions.pop(d.node, None)
        if entry.state in (NodeState.DEAD, NodeState.LEFT):
            return _NONE
        if d.node == self.local_name and not self.leaving:
            return Change(ChangeKind.REFUTED, entry, self.refute(d.incarnation))
        entry.incarnation = d.incarnation
        if d.is_leave:
            self._set_state(entry, NodeState.LEFT, now)
            return Change(ChangeKind.LEFT, entry, d, d.from_node)
        self._set_state(entry, NodeState.DEAD, now)
        return Change(ChangeKind.FAILED, entry, d, d.from_node)

    def apply_push_state(self, st: PushNodeState, now: float) -> Change:
        """One entry of a remote push/pull (§9.10): dead only makes us suspect."""
        if st.state is NodeState.ALIVE:
            a = Alive(st.incarnation, st.name, st.addr, st.port, st.meta, st.vsn)
            return self.apply_alive(a, now)
        if st.state is NodeState.LEFT:
            return self.apply_dead(Dead(st.incarnation, st.name, st.name), now)
        return self.apply_suspect(Suspect(st.incarnation, st.name, self.local_name), now)

    def push_states(self) -> list[PushNodeState]:
        """Every entry, for a push/pull."""
        return [e.to_push_state() for e in self.nodes]


def verify_protocol(remote: Sequence[PushNodeState], local: Sequence[NodeEntry]) -> str:
    """memberlist's verifyProtocol: "" if every version fits the cluster's common range.

    The range is the overlap of every *alive* entry's [min, max] (remote and local); every
    entry's current version, in any state, must lie in it.
    """
    maxpmin, minpmax, maxdmin, mindmax = 0, 255, 0, 255
    alive = NodeState.ALIVE
    for group in (remote, local):
        for x in group:
            v = x.vsn
            if x.state is alive and len(v) >= 6:
                maxpmin, minpmax = max(maxpmin, v[0]), min(minpmax, v[1])
                maxdmin, mindmax = max(maxdmin, v[3]), min(mindmax, v[4])
    for group in (remote, local):
        for x in group:
            v = x.vsn
            pcur, dcur = (v[2], v[5]) if len(v) >= 6 else (0, 0)
            if not maxpmin <= pcur <= minpmax:
                return f"{x.name} protocol version {pcur} outside [{maxpmin}, {minpmax}]"
            if not maxdmin <= dcur <= mindmax:
                return f"{x.name} delegate version {dcur} outside [{maxdmin}, {mindmax}]"
    return ""
