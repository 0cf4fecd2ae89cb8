"""l2agent/kube."""
