"""l2agent/packets."""
