"""The speaker: one per node, announcing the service IPs its node owns.

Where things are:
- `run`: `Speaker` (configuration + membership -> plan -> data plane; life cycle, signals,
  health) and `SpeakerOptions`;
- `ownership`: the pure ownership ledger (owned IPs, owners since when, failover timing);
- `membership`: the `Membership` seam, `MembershipChange` values, `StaticMembership`;
- `gossip`: `GossipMembership` (memberlist-compatible gossip);
- `files`: the static configuration source (`--config FILE|DIR`);
- `kube`: the Kubernetes source and the ServiceL2Status/Event mirror;
- `dataplane`: the layer 2 data plane (responders, announcer, interface inventory);
- `main`: `l2agent speaker`'s composition root (command line -> running speaker).

This file imports nothing on purpose: `ownership` and `membership` are sans-IO cores, and
importing them must not pull in asyncio through the package (import `Speaker` from `run`).
"""
