"""asyncio adapters for the gossip engine: UDP and TCP on one port, one timer, an event queue."""

from gossip.aio.runtime import GossipRuntime

__all__ = ["GossipRuntime"]
