"""Probe bookkeeping: our probes and the pings we relay, keyed by sequence number.

A probe (spec §9.3) pings its target directly; if no ack comes within `probe_timeout` it
asks relays (indirect ping, nack wanted from relays with pmax ≥ 4) and, in parallel, tries
a TCP ping; it fails when nothing acked by the end of the (health-scaled) probe interval.
A relay pings the target on behalf of a requester, forwards the ack with the requester's
sequence number, and sends a nack if the target stays silent for `probe_timeout`.

No timers: each record carries its deadlines and the engine asks what is due at `now`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum

from gossip.actions import Address

__all__ = ["Probe", "ProbePhase", "ProbeTracker", "Relay"]

_SEQ_MASK = 0xFFFF_FFFF


class ProbePhase(IntEnum):
    """Where a probe stands. Append only."""

    DIRECT = 0  # waiting for the direct ack until direct_deadline
    INDIRECT = 1  # relays and TCP ping asked; waiting until end


@dataclass(slots=True)
class Probe:
    """One probe of ours."""

    seq: int
    target: str
    started: float
    direct_deadline: float
    end: float
    phase: ProbePhase = ProbePhase.DIRECT
    expected_nacks: int = 0
    nacks: int = 0
    acked: bool = False
    tcp_conn: int | None = None
    tcp_ok: bool = False
    pinned: bool = False

    @property
    def deadline(self) -> float:
        return self.direct_deadline if self.phase is ProbePhase.DIRECT else self.end


@dataclass(slots=True)
class Relay:
    """A ping we send for a requester (indirect ping)."""

    seq: int
    requester: Address
    their_seq: int
    nack: bool
    deadline: float
    key: Address = ("", 0)
    """Whose reply credit pays for the relayed answers (see `gossip.admission`)."""


@dataclass(slots=True)
class ProbeTracker:
    """Outstanding probes and relays; sequence numbers are uint32 and wrap."""

    seq: int = 0
    probes: dict[int, Probe] = field(default_factory=dict)
    relays: dict[int, Relay] = field(default_factory=dict)

    def next_seq(self) -> int:
        self.seq = (self.seq + 1) & _SEQ_MASK
        return self.seq

    def in_flight(self, target: str) -> bool:
        return any(p.target == target for p in self.probes.values())

    def regular_in_flight(self) -> bool:
        """A round-robin probe is still running (memberlist skips the tick then)."""
        return any(not p.pinned for p in self.probes.values())

    def start(
        self, target: str, now: float, timeout: float, interval: float, pinned: bool
    ) -> Probe:
        seq = self.next_seq()
        probe = Probe(
            seq=seq,
            target=target,
            started=now,
            direct_deadline=now + min(timeout, interval),
            end=now + interval,
            pinned=pinned,
        )
        self.probes[seq] = probe
        return probe

    def relay(
        self,
        requester: Address,
        their_seq: int,
        nack: bool,
        deadline: float,
        key: Address = ("", 0),
    ) -> Relay:
        r = Relay(self.next_seq(), requester, their_seq, nack, deadline, key)
        self.relays[r.seq] = r
        return r

    def ack(self, seq: int) -> Probe | Relay | None:
        """The first ack for a sequence number ends the probe or relay it belongs to."""
        probe = self.probes.pop(seq, None)
        if probe is not None:
            probe.acked = True
            return probe
        return self.relays.pop(seq, None)

    def nack(self, seq: int) -> Probe | None:
        """A nack is counted; the probe continues."""
        probe = self.probes.get(seq)
        if probe is not None:
            probe.nacks += 1
        return probe

    def next_deadline(self) -> float | None:
        times = [p.deadline for p in self.probes.values()]
        times += [r.deadline for r in self.relays.values()]
        return min(times) if times else None

    def due_probes(self, now: float) -> Iterator[Probe]:
        """Probes whose current phase deadline passed (the caller advances or ends them)."""
        for p in list(self.probes.values()):
            if now >= p.deadline:
                yield p

    def expired_relays(self, now: float) -> list[Relay]:
        out = [r for r in self.relays.values() if now >= r.deadline]
        for r in out:
            del self.relays[r.seq]
        return out

    def finish(self, probe: Probe) -> None:
        self.probes.pop(probe.seq, None)

    def by_tcp_conn(self, conn_id: int) -> Probe | None:
        for p in self.probes.values():
            if p.tcp_conn == conn_id:
                return p
        return None
