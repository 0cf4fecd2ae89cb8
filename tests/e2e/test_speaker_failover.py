"""Real speaker processes in the namespace lab; the client's kernel and a UDP prober judge.

Bounds here are generous (a loaded 2-core CI machine); the real figures are `make bench`'s.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from l2agent.lab.netns import Lab, wait_until
from l2agent.lab.prober import outage
from l2agent.lab.speakers import LabSpeakers
from l2agent.lab.topology import vip
from l2agent.static import demo_config_path

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

V4 = str(vip(0, 4))
V6 = str(vip(0, 6))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LabSpeakers]:
    with Lab(3, vips=[vip(0, 4), vip(0, 6), vip(1, 4)]) as lab:
        speakers = LabSpeakers(lab, demo_config_path(), workdir=tmp_path)
        try:
            speakers.start_all()
            speakers.wait_owners([V4, V6], timeout=30)
            yield speakers
        finally:
            speakers.close()
            for node in lab.node_names:
                print(f"--- {node} log tail ---\n{speakers.log_text(node)[-3000:]}")


def test_every_speaker_agrees_on_one_owner_per_ip(cluster: LabSpeakers) -> None:
    owners = cluster.owners()
    assert {ip: len(nodes) for ip, nodes in owners.items()} == {V4: 1, V6: 1, str(vip(1, 4)): 1}
    # The election is MetalLB's: the offline plan over the same members names the same nodes.
    from l2agent.model.snapshot import build_state
    from l2agent.plan import explain
    from l2agent.static import load_yaml_files

    state = build_state(load_yaml_files([demo_config_path()])).state
    expected = {str(ip): s.owner for s in explain(state, cluster.lab.node_names) for ip in s.ips}
    assert {ip: next(iter(n)) for ip, n in owners.items()} == expected


def test_cut_link_moves_client_traffic_to_the_successor(cluster: LabSpeakers) -> None:
    owner = cluster.wait_owners([V4])[V4]
    prober = cluster.probe(V4, duration=4.0)
    time.sleep(1.0)
    cluster.lab.cut_link(owner)
    probes = cluster.probes(prober)
    movers = {p.node for p in probes if p.node and p.node != owner}
    assert len(movers) == 1, f"traffic went to {movers}"
    (successor,) = movers
    seen = outage(probes, owner, successor)
    assert seen is not None
    assert seen.seconds < 2.0, f"outage {seen.seconds:.3f} s"
    # The client's kernel now resolves the VIP to the successor's MAC.
    assert cluster.lab.neighbour_mac(vip(0, 4)) == cluster.lab.nodes[successor].mac


def test_sigterm_hands_over_without_losing_a_probe(cluster: LabSpeakers) -> None:
    owner = cluster.wait_owners([V4])[V4]
    prober = cluster.probe(V4, duration=3.0)
    time.sleep(1.0)
    assert cluster.terminate(owner) == 0
    probes = cluster.probes(prober)
    lost = [p.seq for p in probes if p.replied is None]
    assert not lost, f"{len(lost)} probes lost"
    assert cluster.lab.neighbour_mac(vip(0, 4)) != cluster.lab.nodes[owner].mac


def test_partition_then_heal_ends_with_one_owner(cluster: LabSpeakers) -> None:
    owner = cluster.wait_owners([V4])[V4]
    cluster.lab.cut_link(owner)
    # Both sides announce while partitioned: the cut node keeps its IP, the rest elect anew.
    assert wait_until(lambda: len(cluster.owners().get(V4, ())) == 2, 10, interval=0.2)
    cluster.lab.restore_link(owner)
    healed = cluster.wait_owners([V4, V6], timeout=15)
    assert all(len(n) == 1 for n in cluster.owners().values())
    assert healed[V4] == owner  # MetalLB's hash picks the same node once it is back
