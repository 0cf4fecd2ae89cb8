"""Push/pull state sync (spec §6.3, §9.10, §9.11): our state out, a peer's state merged in.

A received push/pull is first checked with memberlist's `verifyProtocol` rule, then merged
entry by entry. Both are done in slices (`MergeQueue.work`) so a push/pull of many
thousands of entries is spread over several engine calls rather than stalling one. Join
batches (`JoinBatches`) end when every exchange of one `join()` call has ended, merges
included.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

from gossip._wire import StateKey, Wire
from gossip.actions import Address
from gossip.events import JoinFinished
from gossip.hooks import StateHooks
from gossip.members import MemberTable
from gossip.messages import NodeState, PushNodeState, PushPull

__all__ = ["JoinBatches", "MergeJob", "MergeQueue", "VersionCheck", "local_push_pull"]

WORK_CHECK = 8
"""Work units (about 30 ns each) to check one entry's versions."""
WORK_MERGE = 1024
"""Work units to merge one entry into the table (a new member costs ~30 us)."""


class Versioned(Protocol):
    """What the version check reads of an entry (a PushNodeState or a table entry)."""

    @property
    def vsn(self) -> bytes: ...

    @property
    def state(self) -> NodeState: ...


def local_push_pull(
    table: MemberTable,
    wire: Wire,
    hooks: StateHooks | None,
    encode_state: Callable[[StateKey], bytes],
    join: bool,
    dialer: bool,
) -> bytes:
    """Our whole table (every state, self included) and the hook's user state, framed."""
    user = hooks.local_state(join) if hooks is not None else b""
    states = [
        encode_state((e.name, e.addr, e.port, e.meta, e.incarnation, e.state, e.vsn))
        for e in table.nodes
    ]
    return wire.encode_push_pull(join, states, user, dialer)


class VersionCheck:
    """memberlist's verifyProtocol, accumulated entry by entry.

    The allowed range is the overlap of every *alive* entry's [min, max] (remote and local);
    every entry's current version, in any state, must lie in it. Keeping the extremes of
    the current versions makes the final test O(1).
    """

    __slots__ = ("cur_d", "cur_p", "range_d", "range_p")

    def __init__(self) -> None:
        self.range_p = [0, 255]
        self.range_d = [0, 255]
        self.cur_p = [255, 0]
        self.cur_d = [255, 0]

    def add(self, entries: Sequence[Versioned]) -> None:
        rp, rd, cp, cd = self.range_p, self.range_d, self.cur_p, self.cur_d
        alive = NodeState.ALIVE
        for x in entries:
            v = x.vsn
            if len(v) >= 6:
                if x.state is alive:
                    rp[0], rp[1] = max(rp[0], v[0]), min(rp[1], v[1])
                    rd[0], rd[1] = max(rd[0], v[3]), min(rd[1], v[4])
                pcur, dcur = v[2], v[5]
            else:
                pcur, dcur = 0, 0
            cp[0], cp[1] = min(cp[0], pcur), max(cp[1], pcur)
            cd[0], cd[1] = min(cd[0], dcur), max(cd[1], dcur)

    def problem(self) -> str:
        """ "" if every version fits the common range, else what does not."""
        (lo, hi), (clo, chi) = self.range_p, self.cur_p
        if clo <= chi and (clo < lo or chi > hi):
            return f"protocol versions {clo}..{chi} outside [{lo}, {hi}]"
        (lo, hi), (clo, chi) = self.range_d, self.cur_d
        if clo <= chi and (clo < lo or chi > hi):
            return f"delegate versions {clo}..{chi} outside [{lo}, {hi}]"
        return ""


class _Phase(IntEnum):
    CHECK_REMOTE = 0
    CHECK_LOCAL = 1
    MERGE = 2
    DONE = 3


@dataclass(slots=True)
class MergeJob:
    """One received push/pull on its way into the table."""

    push: PushPull
    src: Address
    batch: int | None
    phase: _Phase = _Phase.CHECK_REMOTE
    pos: int = 0
    local: list[Versioned] = field(default_factory=list)
    check: VersionCheck = field(default_factory=VersionCheck)
    problem: str = ""

    @property
    def remaining(self) -> int:
        return len(self.push.states) - (self.pos if self.phase is _Phase.MERGE else 0)


MergeState = Callable[[PushNodeState, Address], None]
"""Admit and apply one entry (the engine's cidrs/table-size checks and its change events)."""


class MergeQueue:
    """Received push/pulls waiting to be checked and merged, oldest first."""

    def __init__(self, table: MemberTable) -> None:
        self._table = table
        self._jobs: deque[MergeJob] = deque()
        self.pending_states = 0

    def __len__(self) -> int:
        return len(self._jobs)

    def add(self, push: PushPull, src: Address, batch: int | None) -> None:
        self._jobs.append(MergeJob(push, src, batch))
        self.pending_states += len(push.states)

    def work(self, budget: int, merge: MergeState) -> list[MergeJob]:
        """Check and merge within about `budget` units; the jobs that ended (see
        `MergeJob.problem` for refused ones)."""
        done: list[MergeJob] = []
        while self._jobs and budget > 0:
            job = self._jobs[0]
            budget -= self._advance(job, budget, merge)
            if job.phase is _Phase.DONE:
                self._jobs.popleft()
                self.pending_states -= len(job.push.states)
                done.append(job)
        return done

    def _advance(self, job: MergeJob, budget: int, merge: MergeState) -> int:
        states = job.push.states
        if job.phase is _Phase.CHECK_REMOTE:
            end = min(len(states), job.pos + max(budget // WORK_CHECK, 1))
            job.check.add(states[job.pos : end])
            used = (end - job.pos) * WORK_CHECK + 1
            job.pos = end
            if end == len(states):
                job.phase, job.pos = _Phase.CHECK_LOCAL, 0
                job.local = list(self._table.nodes)
            return used
        if job.phase is _Phase.CHECK_LOCAL:
            end = min(len(job.local), job.pos + max(budget // WORK_CHECK, 1))
            job.check.add(job.local[job.pos : end])
            used = (end - job.pos) * WORK_CHECK + 1
            job.pos = end
            if end == len(job.local):
                job.local, job.pos = [], 0
                job.problem = job.check.problem()
                job.phase = _Phase.DONE if job.problem else _Phase.MERGE
            return used
        end = min(len(states), job.pos + max(budget // WORK_MERGE, 1))
        for st in states[job.pos : end]:
            merge(st, job.src)
        used = (end - job.pos) * WORK_MERGE + 1
        job.pos = end
        if end == len(states):
            job.phase = _Phase.DONE
        return used


@dataclass(slots=True)
class _Batch:
    pending: int
    succeeded: int = 0
    failed: list[Address] = field(default_factory=list)


class JoinBatches:
    """The push/pulls of each `join()` call, until every one of them has ended."""

    def __init__(self) -> None:
        self._batches: dict[int, _Batch] = {}
        self._seq = 0

    def start(self, count: int) -> int:
        self._seq += 1
        if count > 0:
            self._batches[self._seq] = _Batch(pending=count)
        return self._seq

    def ended(self, batch: int, peer: Address, ok: bool, now: float) -> JoinFinished | None:
        """Record one exchange's end; the batch's JoinFinished once all have ended."""
        b = self._batches.get(batch)
        if b is None:
            return None
        b.pending -= 1
        if ok:
            b.succeeded += 1
        else:
            b.failed.append(peer)
        if b.pending > 0:
            return None
        del self._batches[batch]
        return JoinFinished(batch, b.succeeded, tuple(b.failed), now)
