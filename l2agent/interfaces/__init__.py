"""l2agent/interfaces."""
