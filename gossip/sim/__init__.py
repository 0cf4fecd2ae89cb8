"""gossip/sim."""
