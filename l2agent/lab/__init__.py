"""l2agent/lab."""
