"""The controller: allocates Service IPs from the pools and writes them to the cluster.

- `planner`: pure; what to write on each Service and which Events (`plan_writes`), pool
  usage and status (`pool_usage`, `pool_status`);
- `runner`: `Controller`, the threads around it (watches, Lease, writes);
- `main`: `l2agent controller`'s entry point.

This file imports nothing on purpose: `planner` is a sans-IO core, and importing it must not
pull in the Kubernetes client through the package.
"""
