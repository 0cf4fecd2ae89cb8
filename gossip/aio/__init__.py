"""gossip/aio."""
