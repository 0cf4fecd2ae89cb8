"""l2agent/announce."""
