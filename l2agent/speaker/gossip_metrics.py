"""The gossip's refused or violating input as metrics, read at scrape time (issue 11).

`GossipInputCollector` renders a `GossipReport` (the engine's counters by reason, the
sources whose traffic no installed key opens, whether the speaker stays unready for it);
every reason's series exists from the start, so a first violation is an increase that
`rate()` sees. The speaker registers it beside `SpeakerMetrics` when it gossips.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gossip.errors import MalformedReason
from gossip.events import DropReason
from l2agent.model.reports import GossipReport

__all__ = ["GossipInputCollector"]

log = logging.getLogger(__name__)


class GossipInputCollector(Collector):
    """l2agent_gossip_input_dropped_total{reason}, ..._malformed_total{reason},
    l2agent_gossip_stalls_total, l2agent_gossip_undecryptable_sources and
    l2agent_gossip_key_mismatch, from `report()` (None: no series, no gossip)."""

    def __init__(self, report: Callable[[], GossipReport | None]) -> None:
        self._report = report

    @staticmethod
    def _families() -> dict[str, CounterMetricFamily | GaugeMetricFamily]:
        return {
            "dropped": CounterMetricFamily(
                "l2agent_gossip_input_dropped",
                "Gossip input refused or found wrong, by the engine's reason (bad bytes, rate "
                "limits, answers past the reply budget, streams past their limits, ...).",
                labels=["reason"],
            ),
            "malformed": CounterMetricFamily(
                "l2agent_gossip_input_malformed",
                "Gossip input that could not be decoded, by the codec's reason.",
                labels=["reason"],
            ),
            "stalls": CounterMetricFamily(
                "l2agent_gossip_stalls",
                "Times the gossip engine's timers ran much later than due (this node stalled).",
            ),
            "undecryptable": GaugeMetricFamily(
                "l2agent_gossip_undecryptable_sources",
                "Source addresses that sent gossip no installed key opens, in the last minute.",
            ),
            "mismatch": GaugeMetricFamily(
                "l2agent_gossip_key_mismatch",
                "1 while this speaker stays unready because its peers speak another key.",
            ),
        }

    def describe(self) -> Iterator[Metric]:
        yield from self._families().values()

    def collect(self) -> Iterator[Metric]:
        try:
            report = self._report()
        except Exception:  # a failing source costs its series in one scrape, not the scrape
            log.warning("metrics source gossip input failed during scrape", exc_info=True)
            return
        if report is None:
            return
        families = self._families()
        for reason in DropReason:
            families["dropped"].add_metric([reason.name.lower()], report.dropped.get(reason, 0))
        for cause in MalformedReason:
            families["malformed"].add_metric([cause.name.lower()], report.malformed.get(cause, 0))
        families["stalls"].add_metric([], report.stalls)
        families["undecryptable"].add_metric([], len(report.undecryptable))
        families["mismatch"].add_metric([], 1 if report.key_mismatch else 0)
        yield from families.values()
