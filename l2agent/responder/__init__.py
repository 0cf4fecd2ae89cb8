"""l2agent/responder."""
