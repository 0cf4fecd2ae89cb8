"""l2agent."""
