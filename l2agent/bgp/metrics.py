"""BGP mode's metrics: FRR's sessions and BFD peers under the names MetalLB's FRR exporter
uses (so MetalLB's BGP dashboards and alerts keep working), and our FRR reloader's outcomes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from l2agent.bgp.frr_state import FrrState
from l2agent.bgp.reload_outcome import ReloadOutcome, ReloadResult

log = logging.getLogger(__name__)

_BGP_LABELS = ["peer", "vrf"]
# MetalLB's FRR exporter (frr-tools/metrics/collector): name, help, BgpSession/BfdPeer field.
_BGP_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("metallb_bgp_opens_sent", "Number of BGP open messages sent", "opens_sent"),
    ("metallb_bgp_opens_received", "Number of BGP open messages received", "opens_received"),
    ("metallb_bgp_notifications_sent", "Number of BGP notification messages sent",
     "notifications_sent"),
    ("metallb_bgp_updates_total_received", "Number of BGP UPDATE messages received",
     "updates_received"),
    ("metallb_bgp_keepalives_sent", "Number of BGP keepalive messages sent", "keepalives_sent"),
    ("metallb_bgp_keepalives_received", "Number of BGP keepalive messages received",
     "keepalives_received"),
    ("metallb_bgp_route_refresh_sent", "Number of BGP route refresh messages sent",
     "route_refresh_sent"),
    ("metallb_bgp_total_sent", "Number of total BGP messages sent", "total_sent"),
    ("metallb_bgp_total_received", "Number of total BGP messages received", "total_received"),
)  # fmt: skip
_BFD_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("metallb_bfd_control_packet_input", "Number of received BFD control packets",
     "control_packet_input"),
    ("metallb_bfd_control_packet_output", "Number of sent BFD control packets",
     "control_packet_output"),
    ("metallb_bfd_echo_packet_input", "Number of received BFD echo packets", "echo_packet_input"),
    ("metallb_bfd_echo_packet_output", "Number of sent BFD echo packets", "echo_packet_output"),
    ("metallb_bfd_session_up_events", "Number of BFD session up events", "session_up_events"),
    ("metallb_bfd_session_down_events", "Number of BFD session down events",
     "session_down_events"),
    ("metallb_bfd_zebra_notifications", "Number of BFD zebra notifications",
     "zebra_notifications"),
)  # fmt: skip


class _FrrStateCollector(Collector):
    """FRR's sessions and BFD peers under MetalLB's FRR-exporter names, from the newest
    ``FrrState`` at each scrape (the poller reads FRR; a scrape never waits on it).

    MetalLB's suffix-less counters are exported untyped under their exact names (see the
    note in ``l2agent.metrics``); ``metallb_bgp_updates_total`` is a real counter (its name
    ends in _total).
    """

    def __init__(self, state: Callable[[], FrrState | None], errors: Counter) -> None:
        self._state = state
        self._errors = errors

    @staticmethod
    def _gauges() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "metallb_bgp_session_up",
                "BGP session state (1 is up, 0 is down)",
                labels=_BGP_LABELS,
            ),
            GaugeMetricFamily(
                "metallb_bgp_announced_prefixes_total",
                "Number of prefixes currently being advertised on the BGP session",
                labels=_BGP_LABELS,
            ),
            GaugeMetricFamily(
                "metallb_bfd_session_up",
                "BFD session state (1 is up, 0 is down)",
                labels=_BGP_LABELS,
            ),
        )

    @staticmethod
    def _updates() -> CounterMetricFamily:
        return CounterMetricFamily(
            "metallb_bgp_updates_total", "Number of BGP UPDATE messages sent", labels=_BGP_LABELS
        )

    @staticmethod
    def _untyped() -> dict[str, Metric]:
        return {
            f: Metric(name, doc, "unknown") for name, doc, f in (*_BGP_COUNTERS, *_BFD_COUNTERS)
        }

    def describe(self) -> Iterator[Metric]:
        yield from self._gauges()
        yield self._updates()
        yield from self._untyped().values()

    def collect(self) -> Iterator[Metric]:
        session_up, prefixes, bfd_up = self._gauges()
        updates = self._updates()
        untyped = self._untyped()
        try:
            state = self._state()
        except Exception:
            log.warning("metrics source frr_state failed during scrape", exc_info=True)
            self._errors.labels(source="frr_state").inc()
            state = None
        for s in state.sessions if state is not None else ():
            labels = [s.label, s.vrf]
            session_up.add_metric(labels, 1 if s.established else 0)
            prefixes.add_metric(labels, s.prefixes_sent)
            updates.add_metric(labels, s.updates_sent)
            for name, _doc, f in _BGP_COUNTERS:
                untyped[f].add_sample(name, {"peer": s.label, "vrf": s.vrf}, getattr(s, f))
        for b in state.bfd_peers if state is not None else ():
            bfd_up.add_metric([b.peer, b.vrf], 1 if b.up else 0)
            for name, _doc, f in _BFD_COUNTERS:
                untyped[f].add_sample(name, {"peer": b.peer, "vrf": b.vrf}, getattr(b, f))
        yield from (session_up, prefixes, updates, bfd_up)
        yield from untyped.values()


class BgpMetrics:
    """BGP mode: FRR's state as MetalLB names it, and our reloader's outcomes.

    ``frr_state`` is called at every scrape and returns the poller's newest reading
    (``FrrStatePoller.state``; cheap, no I/O). ``reload_finished`` is the reloader's
    ``on_outcome`` callback.
    """

    def __init__(
        self, registry: CollectorRegistry, *, frr_state: Callable[[], FrrState | None]
    ) -> None:
        self._errors = Counter(
            "l2agent_bgp_metrics_source_errors",
            "Scrapes where reading the FRR state raised.",
            ["source"],
            registry=registry,
        )
        registry.register(_FrrStateCollector(frr_state, self._errors))
        self._reloads = Counter(
            "l2agent_frr_reloads",
            "FRR configuration attempts, by result (applied, applied_after_reset, "
            "applied_in_steps, unchanged, invalid, failed, unavailable, timeout, crashed).",
            ["result"],
            registry=registry,
        )
        for result in ReloadResult:
            self._reloads.labels(result=result.value)
        self._reload_seconds = Histogram(
            "l2agent_frr_reload_duration_seconds",
            "Time one FRR configuration attempt took (offline check, frr-reload.py test "
            "and reload).",
            buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
            registry=registry,
        )
        self._stale = Gauge(
            "l2agent_frr_config_stale",
            "1 while FRR does not run the newest configuration the speaker rendered.",
            registry=registry,
        )

    def reload_finished(self, outcome: ReloadOutcome) -> None:
        """Count one reload attempt (the ``FrrReloader`` ``on_outcome`` callback)."""
        self._reloads.labels(result=outcome.result.value).inc()
        self._reload_seconds.observe(outcome.seconds)
        self._stale.set(0 if outcome.result.ok else 1)


__all__ = ["BgpMetrics"]
