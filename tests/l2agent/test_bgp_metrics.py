"""BGP metrics under MetalLB's FRR-exporter names, from a real FRR's JSON (tests/data/frr/)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from l2agent.bgp.frr_state import FrrState, parse_bfd_peers, parse_bgp_neighbors
from l2agent.bgp.metrics import BgpMetrics
from l2agent.bgp.reload_outcome import ReloadOutcome, ReloadResult

DATA = Path(__file__).resolve().parents[1] / "data" / "frr"


def state() -> FrrState:
    return FrrState(
        sessions=parse_bgp_neighbors((DATA / "show_bgp_neighbors.json").read_text()),
        bfd_peers=parse_bfd_peers(
            (DATA / "show_bfd_peers.json").read_text(),
            (DATA / "show_bfd_peers_counters.json").read_text(),
        ),
    )


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def key(name: str, peer: str, vrf: str = "default") -> tuple[str, tuple[tuple[str, str], ...]]:
    return (name, (("peer", peer), ("vrf", vrf)))


def test_session_metrics_keep_metallb_names_and_labels(registry: CollectorRegistry) -> None:
    BgpMetrics(registry, frr_state=state)
    got = samples(registry)
    assert got[key("metallb_bgp_session_up", "192.0.2.1:179")] == 1
    assert got[key("metallb_bgp_session_up", "192.0.2.2:179")] == 0  # wrong password
    assert got[key("metallb_bgp_announced_prefixes_total", "192.0.2.1:179")] == 1
    assert got[key("metallb_bgp_updates_total", "192.0.2.1:179")] == 2
    assert got[key("metallb_bgp_opens_sent", "2001:db8::1:179")] >= 1
    assert got[key("metallb_bfd_session_up", "192.0.2.1")] == 1
    assert got[key("metallb_bfd_session_up_events", "192.0.2.1")] == 1
    assert got[key("metallb_bfd_session_down_events", "192.0.2.1")] == 0
    text = generate_latest(registry).decode()
    # Exact exposition names (no _total added to MetalLB's suffix-less counters).
    for name in ("metallb_bfd_session_up_events{", "metallb_bgp_keepalives_sent{",
                 "metallb_bgp_updates_total{", "metallb_bgp_updates_total_received{"):  # fmt: skip
        assert name in text, name
    assert "metallb_bfd_session_up_events_total" not in text


def test_no_state_no_series_and_a_failing_source_is_counted(registry: CollectorRegistry) -> None:
    def broken() -> FrrState:
        raise RuntimeError("poller gone")

    BgpMetrics(registry, frr_state=broken)
    got = samples(registry)
    assert not any(name.startswith("metallb_bgp_session") for name, _ in got)
    got = samples(registry)  # the error counter is exported before the FRR collector runs
    assert got[("l2agent_bgp_metrics_source_errors_total", (("source", "frr_state"),))] == 1


def test_reload_outcomes_are_counted_by_result(registry: CollectorRegistry) -> None:
    metrics = BgpMetrics(registry, frr_state=lambda: None)
    metrics.reload_finished(ReloadOutcome(ReloadResult.APPLIED_AFTER_RESET, 1, 1.2))
    metrics.reload_finished(ReloadOutcome(ReloadResult.FAILED, 2, 0.7))
    got = samples(registry)
    assert got[("l2agent_frr_reloads_total", (("result", "applied_after_reset"),))] == 1
    assert got[("l2agent_frr_reloads_total", (("result", "failed"),))] == 1
    assert got[("l2agent_frr_reloads_total", (("result", "invalid"),))] == 0
    assert got[("l2agent_frr_config_stale", ())] == 1
    assert got[("l2agent_frr_reload_duration_seconds_count", ())] == 2
