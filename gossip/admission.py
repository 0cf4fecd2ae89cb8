"""Per-source budgets for datagrams: what one sender may make us read, and make us send.

Each known member's address has its own budget; everything from other addresses shares
one "stranger" budget, so the table of budgets is as large as the member table plus one,
and a flood from strangers cannot spend a member's share. A budget is two token buckets
(messages and bytes per second, bytes counting what decompression produced) and a reply
credit: every byte received earns `reply_amplification` bytes of answers (acks with their
piggybacked gossip, nacks, relayed acks), so nothing sent to us can be reflected or
amplified beyond that factor.

Checked before a datagram is opened (`admit`), charged once its cost is known (`charge`),
so one datagram may overdraw once and then waits for the refill.
"""

from __future__ import annotations

from dataclasses import dataclass

from gossip.actions import Address

__all__ = ["STRANGERS", "SourceBudget", "SourceBudgets"]

STRANGERS: Address = ("", 0)
"""The key shared by every address that is not a known member's."""


@dataclass(slots=True)
class SourceBudget:
    """One sender's buckets (levels may go negative: a debt the refill pays first)."""

    messages: float
    bytes: float
    credit: float
    at: float


class SourceBudgets:
    """Budgets by sender; `is_member(addr)` says whose address gets its own."""

    def __init__(
        self,
        messages_per_second: float,
        bytes_per_second: float,
        reply_amplification: float,
        max_credit: float = 64 * 1024,
    ) -> None:
        self._mps = messages_per_second
        self._bps = bytes_per_second
        self._amp = reply_amplification
        self._max_credit = max_credit
        self._budgets: dict[Address, SourceBudget] = {}

    def __len__(self) -> int:
        return len(self._budgets)

    def key(self, src: Address, members: dict[Address, int]) -> Address:
        """The budget a datagram from `src` is charged to."""
        return src if src in members else STRANGERS

    def _get(self, key: Address, now: float) -> SourceBudget:
        b = self._budgets.get(key)
        if b is None:
            b = SourceBudget(self._mps, self._bps, 0.0, now)
            self._budgets[key] = b
            return b
        elapsed = now - b.at
        if elapsed > 0:
            b.messages = min(b.messages + elapsed * self._mps, self._mps)
            b.bytes = min(b.bytes + elapsed * self._bps, self._bps)
            b.at = now
        return b

    def admit(self, key: Address, size: int, now: float) -> bool:
        """Whether a datagram of `size` bytes may be opened; earns its reply credit."""
        b = self._get(key, now)
        if b.messages <= 0 or b.bytes <= 0:
            return False
        b.credit = min(b.credit + self._amp * size, self._max_credit)
        return True

    def charge(self, key: Address, messages: int, nbytes: int, now: float) -> None:
        """What the datagram cost once opened: its messages and its (decompressed) bytes."""
        b = self._get(key, now)
        b.messages -= messages
        b.bytes -= nbytes

    def spend(self, key: Address, size: int, now: float) -> bool:
        """Take `size` bytes of reply credit; False (nothing taken) if there is not enough."""
        b = self._get(key, now)
        if b.credit < size:
            return False
        b.credit -= size
        return True

    def available(self, key: Address, now: float) -> int:
        """Reply credit left for `key` (how much piggybacked gossip an ack may carry)."""
        return int(self._get(key, now).credit)

    def forget(self, keep: dict[Address, int]) -> None:
        """Drop budgets of addresses that are no longer members (bounded memory)."""
        for key in [k for k in self._budgets if k != STRANGERS and k not in keep]:
            del self._budgets[key]
