"""A real Prometheus, inside the lab's client namespace, scrapes three real speakers; after a
pulled cable the ownership and failover metrics must say what happened, and every dashboard
panel fed by speakers must return data (pool panels need the controller, BGP and BFD session
panels a speaker in BGP mode: see tests/observability/test_dashboard.py, which serves them)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.prometheus_server import PROMETHEUS, PrometheusServer, wait_until
from observability.test_dashboard import RULE_FILES, _panel_queries

from l2agent.lab.netns import CLIENT, Lab
from l2agent.lab.speakers import METRICS_PORT, LabSpeakers
from l2agent.lab.topology import vip
from l2agent.static import demo_config_path

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(PROMETHEUS is None, reason="needs Debian's prometheus"),
]

V4 = str(vip(0, 4))
CONTROLLER_ONLY = ("metallb_allocator_", 'job="metallb-controller"')
BGP_SESSIONS_ONLY = ("metallb_bgp_", "metallb_bfd_")
"""Series FRR's sessions feed: none in this layer-2-only lab."""


@pytest.fixture
def observed(tmp_path: Path) -> Iterator[tuple[LabSpeakers, PrometheusServer]]:
    with Lab(3, vips=[vip(0, 4), vip(0, 6), vip(1, 4)]) as lab:
        speakers = LabSpeakers(lab, demo_config_path(), workdir=tmp_path)
        try:
            speakers.start_all()
            speakers.wait_owners([V4], timeout=30)
            targets = [f"{speakers.address(n)}:{METRICS_PORT}" for n in lab.node_names]
            with PrometheusServer(
                tmp_path,
                {"metallb-speaker": targets},
                RULE_FILES,
                labels={"namespace": "metallb-system"},
                netns=lab.netns(CLIENT),
            ) as prom:
                prom.wait_for_scrapes(3, targets=3)
                yield speakers, prom
        finally:
            speakers.close()


def _value(prom: PrometheusServer, expr: str) -> float:
    result = prom.query(expr)
    return float(result[0]["value"][1]) if result else 0.0


def test_metrics_tell_the_failover_and_every_speaker_panel_has_data(
    observed: tuple[LabSpeakers, PrometheusServer],
) -> None:
    speakers, prom = observed
    old = speakers.wait_owners([V4])[V4]
    owners = prom.query(f'max by (node) (l2agent_ip_owner{{ip="{V4}"}} == 1)')
    assert {r["metric"]["node"] for r in owners} == {old}

    speakers.lab.cut_link(old)
    survivors = [n for n in speakers.lab.node_names if n != old]
    # The cut node keeps announcing on its own segment; the survivors elect one of theirs.
    moved: set[str] = set()
    wait_until(
        "a survivor announces the VIP",
        lambda: bool(moved.update(set(speakers.owners().get(V4, ())) & set(survivors)) or moved),
        limit=20,
    )
    assert len(moved) == 1
    (new,) = moved
    new_instance = f"{speakers.address(new)}:{METRICS_PORT}"

    def told() -> bool:
        seen = prom.query(f'max by (node) (l2agent_ip_owner{{ip="{V4}"}} == 1)')
        return {r["metric"]["node"] for r in seen} == {new}

    wait_until("Prometheus sees the new owner", told, limit=30)
    failovers = f'l2agent_failover_duration_seconds_count{{instance="{new_instance}"}}'
    assert _value(prom, failovers) >= 1
    took = _value(prom, f'l2agent_failover_duration_seconds_sum{{instance="{new_instance}"}}')
    assert 0 < took < 1.0  # failure declared -> first gratuitous packet, per IP
    at_new = f'instance="{new_instance}"'
    gained = f'l2agent_ownership_changes_total{{ip="{V4}",change="gained",{at_new}}}'
    assert _value(prom, gained) >= 1
    assert _value(prom, f'l2agent_gossip_member_failures_total{{member="{old}"}}') >= 1
    announced = prom.query(f'metallb_speaker_announced{{ip="{V4}"}} == 1')
    assert {r["metric"]["node"] for r in announced} == {new}

    # Client traffic for the ARP/NS panels: the client resolves the VIP again and again.
    for _ in range(3):
        speakers.lab.flush_neighbours(CLIENT)
        speakers.probes(speakers.probe(V4, duration=0.3))
    time.sleep(3)  # let rate() windows see a few samples after the change
    empty = []
    for dashboard, title, expr in _panel_queries():
        if any(marker in expr for marker in (*CONTROLLER_ONLY, *BGP_SESSIONS_ONLY)):
            continue
        if not prom.query(expr):
            empty.append(f"{dashboard}: {title}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)
