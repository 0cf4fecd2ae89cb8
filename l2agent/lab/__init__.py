"""The network-namespace lab: nodes, a client and a bridge in namespaces of their own.

Used by ``l2agent lab``, ``make demo``, the end-to-end tests and the benchmarks.
"""

from l2agent.lab.netns import Lab, LabError, NodeInfo, sweep_stale

__all__ = ["Lab", "LabError", "NodeInfo", "sweep_stale"]
