"""Small, optional, synchronous hooks the application gives the engine.

They must be pure and quick (no I/O): the engine calls them inline while it handles input.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["StateHooks"]


class StateHooks(Protocol):
    """Application state carried in push/pull exchanges (memberlist's Delegate state half)."""

    def local_state(self, join: bool) -> bytes:
        """Bytes to append to our push/pull; `join` is true during a join."""
        ...

    def merge_remote_state(self, data: bytes, join: bool) -> None:
        """Take the user state a peer sent in its push/pull."""
        ...
