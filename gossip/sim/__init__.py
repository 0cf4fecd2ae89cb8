"""gossip.sim: many engines in one process, in virtual time, deterministic from a seed."""

from gossip.sim.clock import EventHeap
from gossip.sim.cluster import SimCluster, SimNode, sim_address
from gossip.sim.faults import Crash, Fault, Heal, Leave, Loss, Partition, Pause, schedule
from gossip.sim.network import LinkSpec, SimNetwork
from gossip.sim.observe import Load, Observer

__all__ = [
    "Crash",
    "EventHeap",
    "Fault",
    "Heal",
    "Leave",
    "LinkSpec",
    "Load",
    "Loss",
    "Observer",
    "Partition",
    "Pause",
    "SimCluster",
    "SimNetwork",
    "SimNode",
    "schedule",
    "sim_address",
]
