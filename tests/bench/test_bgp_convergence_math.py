"""The BGP benchmark's per-flow arithmetic on hand-made probe streams (no lab)."""

from __future__ import annotations

from bench.bgp_convergence import client_figures, flow_outages, flows_served, lost_after
from l2agent.lab.prober import Probe


def stream() -> list[Probe]:
    """Two flows, a probe every 1 ms in turn: flow 0 served by a, flow 1 by b. At t=100.010
    node a fails; flow 0 is lost for 4 probes and comes back on b."""
    out = []
    for seq in range(30):
        sent = 100.0 + seq * 0.001
        flow = seq % 2
        node: str | None = "a" if flow == 0 else "b"
        if flow == 0 and sent >= 100.010:
            node = None if sent < 100.018 else "b"
        out.append(Probe(seq, sent, None if node is None else sent + 0.0002, node, flow))
    return out


def test_flows_served_before_the_fault() -> None:
    assert flows_served(stream(), "a", 100.010) == {0}
    assert flows_served(stream(), "b", 100.010) == {1}
    assert flows_served(stream(), "a", 100.0) == set()


def test_flow_outage_runs_from_last_reply_before_to_first_after() -> None:
    out = flow_outages(stream(), {0, 1}, 100.010)
    assert abs(out[0] - (100.0182 - 100.0082)) < 1e-9  # type: ignore[operator]
    assert abs(out[1] - 0.002) < 1e-9  # type: ignore[operator]  # b's flow: one gap as usual
    silent = [p if p.flow != 0 or p.sent < 100.010 else Probe(p.seq, p.sent, None, None, 0)
              for p in stream()]  # fmt: skip
    assert flow_outages(silent, {0}, 100.010) == {0: None}


def test_lost_counts_and_client_figures() -> None:
    probes = stream()
    assert lost_after(probes, 100.010) == 4
    assert lost_after(probes, 100.010, {1}) == 0
    fig = client_figures(probes, "a", 100.010)
    assert fig["victim_flows"] == 1 and fig["lost_victim_flows"] == 4 and fig["lost_all"] == 4
    assert fig["flows_never_back"] == 0 and abs(fig["client_outage_max"] - 0.010) < 1e-9
