"""A thousand members join one seed and converge (about 45 s of CPU on a loaded machine).

All 999 members push/pull-join the seed within one simulated second; one second later each
joins it once more (the same exchange memberlist's anti-entropy runs every
push_pull_interval), which hands everyone the seed's complete table while the gossip of a
thousand alive messages is still spreading. Simulating that gossip to its end would take
minutes of CPU (1000 members x 1000 messages x 16 transmits); push/pull is how memberlist
itself catches up, so this is the light way to show convergence at this size.
"""

from __future__ import annotations

from functools import partial

from gossip.config import lan
from gossip.messages import NodeState
from gossip.sim import SimCluster

SEED = 1000
N = 1000


def test_thousand_members_converge_after_joining() -> None:
    c = SimCluster(N, partial(lan, enable_compression=False), SEED, record_trace=False)
    c.join_all(seed_node=0, spacing=0.001)
    for node in c.nodes[1:]:
        c.join(node.index, [0], at=c.now + 1.0 + 0.001 * node.index)
    t = c.run_until(lambda: all(x.engine.num_alive() == N for x in c.nodes), 30.0, 0.1)
    assert t is not None, (
        f"seed={SEED}: not converged; min view {min(x.engine.num_alive() for x in c.nodes)}"
    )
    assert t < 5.0, f"seed={SEED}: converged only at {t:.1f}s"
    c.run_for(0.2)  # let the last re-joins finish
    assert c.observer.counts["JoinFinished"] == 2 * (N - 1), f"seed={SEED}"
    assert not c.observer.suspected, f"seed={SEED}: suspicions during the join"
    sample = c.nodes[N // 2].engine.members()
    assert len(sample) == N and all(m.state is NodeState.ALIVE for m in sample), f"seed={SEED}"
