"""memberlist's TransmitLimitedQueue: broadcasts sent a bounded number of times.

Each queued message is sent to `retransmit_limit(mult, n)` peers in total, piggybacked on
probes or sent by the gossip rounds. A newer message about a node replaces the queued one
(invalidation by node name). Selection takes the least-transmitted messages first, then the
largest that still fits, then the newest, so fresh news spreads first and packets fill up.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

from gossip.scaling import retransmit_limit

__all__ = ["Broadcast", "BroadcastQueue"]


class Broadcast:
    """One queued message: encoded bytes (type byte included) and its bookkeeping."""

    __slots__ = ("data", "id", "name", "transmits")

    def __init__(self, name: str | None, data: bytes, id_: int, transmits: int = 0) -> None:
        self.name = name
        self.data = data
        self.id = id_
        self.transmits = transmits

    def key(self) -> tuple[int, int]:
        """Order inside a transmit tier: longest first, then newest first."""
        return (-len(self.data), -self.id)


class BroadcastQueue:
    """Retransmit-limited queue; `num_nodes` gives n for the limit at selection time.

    `max_unnamed` bounds unnamed (user) broadcasts: the oldest beyond it are dropped, so
    memory stays bounded even if the application broadcasts faster than gossip drains.
    """

    def __init__(
        self, retransmit_mult: float, num_nodes: Callable[[], int], max_unnamed: int = 1024
    ) -> None:
        self.retransmit_mult = retransmit_mult
        self._num_nodes = num_nodes
        self._max_unnamed = max_unnamed
        self._tiers: dict[int, list[tuple[int, int, Broadcast]]] = {}
        self._by_name: dict[str, Broadcast] = {}
        self._unnamed: dict[int, Broadcast] = {}
        self._id = 0
        self._count = 0
        self.finished: list[str] = []
        """Names whose broadcast reached its transmit limit (drained by the engine)."""

    def __len__(self) -> int:
        return self._count

    def pending(self, name: str) -> bool:
        """True while a broadcast about `name` is still queued."""
        return name in self._by_name

    def _add(self, b: Broadcast) -> None:
        neg_len, neg_id = b.key()
        bisect.insort(self._tiers.setdefault(b.transmits, []), (neg_len, neg_id, b))
        self._count += 1

    def _remove(self, b: Broadcast) -> None:
        tier = self._tiers[b.transmits]
        neg_len, neg_id = b.key()
        i = bisect.bisect_left(tier, (neg_len, neg_id))
        assert tier[i][2] is b
        del tier[i]
        if not tier:
            del self._tiers[b.transmits]
        self._count -= 1

    def queue(self, name: str | None, data: bytes, transmits: int = 0) -> None:
        """Queue `data`; a message about the same `name` replaces any queued one."""
        if self._count == 0:
            self._id = 0
        self._id += 1
        b = Broadcast(name, data, self._id, transmits)
        if name is not None:
            old = self._by_name.pop(name, None)
            if old is not None:
                self._remove(old)
            self._by_name[name] = b
        else:
            self._unnamed[b.id] = b
            while len(self._unnamed) > self._max_unnamed:
                oldest = next(iter(self._unnamed.values()))
                del self._unnamed[oldest.id]
                self._remove(oldest)
        self._add(b)

    def prune(self, max_retain: int) -> None:
        """Keep only the `max_retain` newest broadcasts (memberlist's Prune)."""
        while self._count > max_retain:
            oldest = min(
                (entry[2] for tier in self._tiers.values() for entry in tier), key=lambda b: b.id
            )
            self._forget(oldest)

    def _forget(self, b: Broadcast) -> None:
        self._remove(b)
        if b.name is not None:
            if self._by_name.get(b.name) is b:
                del self._by_name[b.name]
                self.finished.append(b.name)
        else:
            self._unnamed.pop(b.id, None)

    def ordered(self) -> list[Broadcast]:
        """Everything queued, in selection order (for tests and introspection)."""
        return [e[2] for t in sorted(self._tiers) for e in self._tiers[t]]

    def get(self, overhead: int, limit: int) -> list[bytes]:
        """Take messages fitting `limit` bytes, charging `overhead` per message."""
        if not self._count:
            return []
        transmit_limit = retransmit_limit(self.retransmit_mult, self._num_nodes())
        out: list[bytes] = []
        used = 0
        reinsert: list[Broadcast] = []
        tiers = sorted(self._tiers)
        ti = 0
        while ti < len(tiers):
            free = limit - used - overhead
            if free <= 0:
                break
            tier = self._tiers.get(tiers[ti])
            if not tier:
                ti += 1
                continue
            i = bisect.bisect_left(tier, (-free, -(1 << 62)))
            if i >= len(tier):
                ti += 1
                continue
            b = tier[i][2]
            out.append(b.data)
            used += overhead + len(b.data)
            self._remove(b)
            if b.transmits + 1 >= transmit_limit:
                if b.name is not None:
                    if self._by_name.get(b.name) is b:
                        del self._by_name[b.name]
                    self.finished.append(b.name)
                else:
                    self._unnamed.pop(b.id, None)
            else:
                b.transmits += 1
                reinsert.append(b)
        for b in reinsert:
            self._add(b)
        return out
