"""l2agent/model."""
