"""Every metric l2agent exports, built against a registry the caller gives us.

MetalLB's names and labels are kept, so dashboards and alerts written for MetalLB keep working;
our own metrics are named ``l2agent_*``. What the speaker *is* (which IPs it owns, who the
members are) is never mirrored into gauges: a scrape-time collector asks the speaker through
callables, so a node that stops announcing stops exporting at once (MetalLB issue #1972 left
``metallb_speaker_announced`` at 1 on such a node). What the speaker *does* (packets, changes,
failovers) is counted through small methods such as :meth:`SpeakerMetrics.request_received`.

Note on MetalLB's three layer 2 counters: prometheus-client appends ``_total`` to every
counter it exposes, which would rename ``metallb_layer2_requests_received``. Those three are
therefore exported by our own collector as untyped samples with MetalLB's exact names;
``rate()`` and ``increase()`` treat them as counters (they only ever go up).
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gossip.rotation import Phase
from l2agent.model.reports import (
    GossipKeyReport,
    IPLike,
    MemberRow,
    OwnershipChange,
    OwnershipRow,
    PoolUsage,
)
from l2agent.responder.decide import DropReason

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Failover: from the member's failure to our first gratuitous packet, 1 ms .. 10 s.
FAILOVER_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
#: Gossip probe round-trip time: loopback (100 us) to a slow WAN (5 s).
PROBE_RTT_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
#: Gossip member states, always exported (0 when empty) so dashboards show a flat line.
MEMBER_STATES: tuple[str, ...] = ("alive", "suspect", "dead", "left")
_MAX_INT64 = 2**63 - 1


def _label(value: object) -> str:
    """Label text for an IP, enum or plain string."""
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def _clamp(n: int) -> float:
    """MetalLB counts any pool of 2**62 or more addresses as MaxInt64."""
    return float(_MAX_INT64 if n >= 2**62 else n)


class _ConfigMetrics:
    """Config reloads and rejections, shared by speaker and controller.

    Also keeps MetalLB's ``metallb_k8s_client_config_loaded_bool`` and ``..._stale_bool``,
    which MetalLB's Helm alerts (MetalLBConfigNotLoaded, MetalLBStaleConfig) read.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._reloads = Counter(
            "l2agent_config_reloads",
            "Configurations accepted and applied.",
            registry=registry,
        )
        self._rejected = Counter(
            "l2agent_config_rejected",
            "Configurations applied with objects left out, or not readable at all.",
            registry=registry,
        )
        self._k8s_updates = Counter(
            "metallb_k8s_client_updates",
            "Number of configuration updates processed (MetalLB name).",
            registry=registry,
        )
        self._k8s_update_errors = Counter(
            "metallb_k8s_client_update_errors",
            "Number of configuration updates that failed (MetalLB name).",
            registry=registry,
        )
        self._loaded = Gauge(
            "metallb_k8s_client_config_loaded_bool",
            "1 once a configuration has been loaded (MetalLB name).",
            registry=registry,
        )
        self._stale = Gauge(
            "metallb_k8s_client_config_stale_bool",
            "1 while the configuration in force is not all of the latest one seen: an object "
            "left out, or unreadable files (MetalLB name).",
            registry=registry,
        )
        self._left_out = Gauge(
            "l2agent_config_objects_left_out",
            "Configuration objects left out (invalid or in conflict); each costs only itself.",
            registry=registry,
        )

    def config_reloaded(self) -> None:
        """A new configuration was accepted whole and is now in force."""
        self.config_applied(0)

    def config_applied(self, left_out: int) -> None:
        """A configuration is in force with `left_out` objects left out of it (a bad
        object costs only itself; the configuration is stale while there are any)."""
        self._reloads.inc()
        self._k8s_updates.inc()
        self._loaded.set(1)
        self._left_out.set(left_out)
        self._stale.set(1 if left_out else 0)
        if left_out:
            self._rejected.inc()
            self._k8s_update_errors.inc()

    def config_rejected(self) -> None:
        """A new configuration could not be read at all (files that do not parse); whatever
        was loaded before stays in force."""
        self._rejected.inc()
        self._k8s_updates.inc()
        self._k8s_update_errors.inc()
        self._stale.set(1)


class _Layer2Counters(Collector):
    """MetalLB's per-IP layer 2 counters, exported under their exact (suffix-less) names."""

    _FAMILIES: tuple[tuple[str, str], ...] = (
        (
            "metallb_layer2_requests_received",
            "Number of layer2 requests received for owned IPs",
        ),
        ("metallb_layer2_responses_sent", "Number of layer2 responses sent for owned IPs"),
        ("metallb_layer2_gratuitous_sent", "Number of gratuitous layer2 packets sent"),
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, float]] = {name: {} for name, _ in self._FAMILIES}

    def inc(self, family: str, ip: IPLike, amount: float = 1.0) -> None:
        key = _label(ip)
        with self._lock:
            table = self._counts[family]
            table[key] = table.get(key, 0.0) + amount

    def describe(self) -> Iterator[Metric]:
        for name, doc in self._FAMILIES:
            yield Metric(name, doc, "unknown")

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snapshot = {name: dict(table) for name, table in self._counts.items()}
        for name, doc in self._FAMILIES:
            family = Metric(name, doc, "unknown")
            for ip in sorted(snapshot[name]):
                family.add_sample(name, {"ip": ip}, snapshot[name][ip])
            yield family


class _SpeakerStateCollector(Collector):
    """Ownership and membership gauges, computed from the speaker's live view at each scrape."""

    def __init__(
        self,
        node: str,
        ownership: Callable[[], Iterable[OwnershipRow]],
        members: Callable[[], Iterable[MemberRow]],
        awareness: Callable[[], float] | None,
        errors: Counter,
    ) -> None:
        self._node = node
        self._ownership = ownership
        self._members = members
        self._awareness = awareness
        self._errors = errors

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily]:
        return {
            "announced": GaugeMetricFamily(
                "metallb_speaker_announced",
                "1 while this node announces the service IP (MetalLB name); absent otherwise.",
                labels=["service", "protocol", "node", "ip"],
            ),
            "owner": GaugeMetricFamily(
                "l2agent_ip_owner",
                "1 if this node owns (announces) the service IP, 0 if it knows the IP but "
                "another node or nobody owns it.",
                labels=["ip", "service", "node"],
            ),
            "iface": GaugeMetricFamily(
                "l2agent_interface_announced",
                "1 for each interface this node announces the service IP on.",
                labels=["ip", "service", "interface"],
            ),
            "members": GaugeMetricFamily(
                "l2agent_gossip_members",
                "Gossip members in this node's member table, by state.",
                labels=["state"],
            ),
            "member": GaugeMetricFamily(
                "l2agent_gossip_member_state",
                "1 for each member in its current state, as this node sees it.",
                labels=["member", "state"],
            ),
            "awareness": GaugeMetricFamily(
                "l2agent_gossip_awareness_score",
                "Lifeguard local health score: 0 is healthy, higher means this node is "
                "slow to answer and stretches its timeouts.",
            ),
        }

    def describe(self) -> Iterator[Metric]:
        families = self._families()
        if self._awareness is None:
            del families["awareness"]
        yield from families.values()

    def _call(self, source: str, fn: Callable[[], Iterable[_T]]) -> list[_T]:
        """Run one speaker callable; a failure costs that part of one scrape, not the scrape."""
        try:
            return list(fn())
        except Exception:
            log.warning("metrics source %s failed during scrape", source, exc_info=True)
            self._errors.labels(source=source).inc()
            return []

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        for row in self._call("ownership", self._ownership):
            ip = _label(row.ip)
            if row.announcing:
                families["announced"].add_metric([row.service, row.protocol, self._node, ip], 1)
                for ifname in sorted(set(row.interfaces)):
                    families["iface"].add_metric([ip, row.service, ifname], 1)
            families["owner"].add_metric([ip, row.service, self._node], 1 if row.announcing else 0)
        by_state = dict.fromkeys(MEMBER_STATES, 0)
        for member in self._call("members", self._members):
            state = member.state.lower()
            by_state[state] = by_state.get(state, 0) + 1
            families["member"].add_metric([member.name, state], 1)
        for state, count in by_state.items():
            families["members"].add_metric([state], count)
        if self._awareness is None:
            del families["awareness"]
        else:
            try:
                families["awareness"].add_metric([], float(self._awareness()))
            except Exception:
                log.warning("metrics source awareness failed during scrape", exc_info=True)
                self._errors.labels(source="awareness").inc()
                del families["awareness"]
        yield from families.values()


class _GossipKeyCollector(Collector):
    """The gossip keys and their rotation, read from the speaker at each scrape."""

    def __init__(self, report: Callable[[], GossipKeyReport], errors: Counter) -> None:
        self._report = report
        self._errors = errors

    @staticmethod
    def _gauges() -> dict[str, GaugeMetricFamily]:
        return {
            "installed": GaugeMetricFamily(
                "l2agent_gossip_keys_installed",
                "Gossip keys this node decrypts with (1 when no rotation is under way).",
            ),
            "info": GaugeMetricFamily(
                "l2agent_gossip_key_info",
                "1, labelled with the fingerprints of the key this node sends with (primary) "
                "and of the key its secret file names (target).",
                labels=["primary", "target"],
            ),
            "phase": GaugeMetricFamily(
                "l2agent_gossip_key_rotation_phase",
                "1 for the phase of the key rotation this node is in (steady, distributing, "
                "switching, draining), 0 for the others.",
                labels=["phase"],
            ),
            "waiting": GaugeMetricFamily(
                "l2agent_gossip_key_rotation_waiting",
                "1 for each member that holds the key rotation up, with the reason "
                "(lacks_new_key: its Secret has not arrived; sends_old_key; no_fingerprints: "
                "a MetalLB or older speaker).",
                labels=["member", "reason"],
            ),
            "seconds": GaugeMetricFamily(
                "l2agent_gossip_key_rotation_seconds",
                "Seconds since the current key rotation began (0 when steady).",
            ),
        }

    @staticmethod
    def _counters() -> dict[str, CounterMetricFamily]:
        return {
            "file": CounterMetricFamily(
                "l2agent_gossip_key_file_errors",
                "Failed reads of the secret key file (the keys stay as they are).",
                labels=["problem"],
            ),
            "meta": CounterMetricFamily(
                "l2agent_gossip_meta_unreadable",
                "Distinct member metas in l2agent's format that this node cannot read.",
                labels=["problem"],
            ),
        }

    def describe(self) -> Iterator[Metric]:
        yield from self._gauges().values()
        yield from self._counters().values()

    def collect(self) -> Iterator[Metric]:
        try:
            report = self._report()
        except Exception:
            log.warning("metrics source gossip_keys failed during scrape", exc_info=True)
            self._errors.labels(source="gossip_keys").inc()
            return
        gauges, counters = self._gauges(), self._counters()
        status = report.status
        gauges["installed"].add_metric([], status.installed)
        gauges["info"].add_metric([status.primary.hex(), status.target.hex()], 1)
        for value in Phase:
            gauges["phase"].add_metric([value.value], 1 if value is status.phase else 0)
        for w in status.waiting:
            gauges["waiting"].add_metric([w.member, w.reason.value], 1)
        gauges["seconds"].add_metric([], report.rotating_for)
        for problem, count in report.file_errors.items():
            counters["file"].add_metric([problem.value], count)
        for meta_problem, count in report.unreadable_meta.items():
            counters["meta"].add_metric([meta_problem.value], count)
        yield from gauges.values()
        yield from counters.values()


class SpeakerMetrics(_ConfigMetrics):
    """Everything a speaker exports.

    ``ownership`` and ``members`` are called at every scrape and must return the live view
    (cheap, no I/O, on the event loop thread). The counting methods match the responder's
    ``ResponderCounters`` protocol (``request_received``, ``response_sent``, ``dropped``,
    ``gratuitous_sent``) so this object can be handed to it as is.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        node: str,
        *,
        ownership: Callable[[], Iterable[OwnershipRow]],
        members: Callable[[], Iterable[MemberRow]],
        awareness: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(registry)
        self.node = node
        self._registry = registry
        self._l2 = _Layer2Counters()
        registry.register(self._l2)
        self._source_errors = Counter(
            "l2agent_metrics_source_errors",
            "Scrapes where a live-view callable of the speaker raised.",
            ["source"],
            registry=registry,
        )
        registry.register(
            _SpeakerStateCollector(node, ownership, members, awareness, self._source_errors)
        )
        self._changes = Counter(
            "l2agent_ownership_changes",
            "Times this node gained or lost ownership of a service IP.",
            ["ip", "change"],
            registry=registry,
        )
        self._failover = Histogram(
            "l2agent_failover_duration_seconds",
            "From a member's failure (as the gossip declared it) to this node's first "
            "gratuitous packet for an IP it took over.",
            buckets=FAILOVER_BUCKETS,
            registry=registry,
        )
        self._init_data_plane(registry)
        self._init_gossip(registry)

    def _init_data_plane(self, registry: CollectorRegistry) -> None:
        """The responder's and announcer's own counters (MetalLB's are in ``_l2``)."""
        self._dropped = Counter(
            "l2agent_packets_dropped",
            "ARP/NS frames that got no answer, by reason (the responder's DropReason). "
            "Requests for IPs this node does not own are dropped by the kernel filter and "
            "never counted here.",
            ["reason"],
            registry=registry,
        )
        for reason in DropReason:  # every series from the start: rate() sees a quiet 0
            self._dropped.labels(reason=reason.value)
        self._filter_coverage = Gauge(
            "l2agent_responder_filter_coverage",
            "How the kernel filter on each interface matches the owned IPs (1 = current): "
            "exact, senderRange, or passAll (too many IPs: every ARP/NS reaches the speaker).",
            ["interface", "coverage"],
            registry=registry,
        )
        self._overruns = Counter(
            "l2agent_responder_overruns",
            "ARP/NS frames the kernel dropped because the responder did not read them in "
            "time: a flood beyond the data path's budget (it answers at most its share of "
            "a core, so gossip and timers keep running).",
            ["interface"],
            registry=registry,
        )
        self._conflicts = Counter(
            "l2agent_address_conflicts",
            "Another MAC answered ARP/NS for a service IP this node owns.",
            ["ip"],
            registry=registry,
        )

    def _init_gossip(self, registry: CollectorRegistry) -> None:
        """What this node saw of the gossip: probe round trips, suspicions, failures."""
        self._probe_rtt = Histogram(
            "l2agent_gossip_probe_rtt_seconds",
            "Round-trip time of successful direct gossip probes (ping to ack).",
            buckets=PROBE_RTT_BUCKETS,
            registry=registry,
        )
        self._suspicions = Counter(
            "l2agent_gossip_suspicions_raised",
            "Members this node saw move to the suspect state.",
            registry=registry,
        )
        self._refutations = Counter(
            "l2agent_gossip_suspicions_refuted",
            "Suspicions about this node that it refuted (a false positive somewhere).",
            registry=registry,
        )
        self._member_failures = Counter(
            "l2agent_gossip_member_failures",
            "Members this node saw declared dead.",
            ["member"],
            registry=registry,
        )

    # Responder (ResponderCounters protocol) and announcer.

    def request_received(self, ip: IPLike, count: int = 1) -> None:
        """ARP requests / NS for an IP we announce arrived on a matching interface."""
        self._l2.inc("metallb_layer2_requests_received", ip, float(count))

    def response_sent(self, ip: IPLike, count: int = 1) -> None:
        """We sent ARP replies / NAs in answer."""
        self._l2.inc("metallb_layer2_responses_sent", ip, float(count))

    def overrun(self, ifname: str, frames: int) -> None:
        """The kernel dropped ``frames`` ARP/NS for ``ifname`` that the responder did not
        read in time (a flood beyond its budget)."""
        self._overruns.labels(interface=ifname).inc(frames)

    def filter_coverage(self, ifname: str, coverage: enum.Enum) -> None:
        """The responder's kernel filter on ``ifname`` now has ``coverage`` (a
        ``l2agent.responder.filter.Coverage``): 1 for it, 0 for the others."""
        for value in type(coverage):
            self._filter_coverage.labels(interface=ifname, coverage=_label(value)).set(
                1 if value is coverage else 0
            )

    def gratuitous_sent(self, ip: IPLike, count: int = 1) -> None:
        """We sent gratuitous frames (MetalLB counts 2 per GARP round, 1 per unsolicited NA)."""
        self._l2.inc("metallb_layer2_gratuitous_sent", ip, float(count))

    def dropped(self, reason: enum.Enum | str) -> None:
        """A frame got no answer; ``reason`` is a DropReason (its ``.value`` is the label)."""
        self._dropped.labels(reason=_label(reason)).inc()

    # Ownership.

    def ownership_changed(self, ip: IPLike, change: OwnershipChange) -> None:
        """This node started (GAINED) or stopped (LOST) announcing ``ip``.

        On a gain, the IP's other per-IP counters are created at 0, so the first conflict
        or loss is an increase Prometheus can see (a series born at 1 hides it from
        ``increase()``).
        """
        key = _label(ip)
        if change is OwnershipChange.GAINED:
            for other in OwnershipChange:
                self._changes.labels(ip=key, change=other.value)
            self._conflicts.labels(ip=key)
        self._changes.labels(ip=key, change=change.value).inc()

    def failover_observed(self, seconds: float) -> None:
        """Time from the old owner's failure to our first gratuitous packet for its IP."""
        if seconds < 0:
            log.warning("negative failover duration %.6f s ignored", seconds)
            return
        self._failover.observe(seconds)

    def conflict_detected(self, ip: IPLike, mac: bytes) -> None:
        """Another station claimed ``ip``, which we own (called once per frame: the data
        plane logs conflicts at a bounded rate, with the MAC)."""
        self._conflicts.labels(ip=_label(ip)).inc()

    # Gossip.

    def probe_rtt(self, seconds: float) -> None:
        """A direct probe was acked after ``seconds``."""
        self._probe_rtt.observe(max(0.0, seconds))

    def suspicion_raised(self) -> None:
        """A member entered the suspect state in our table."""
        self._suspicions.inc()

    def suspicion_refuted(self) -> None:
        """We refuted a suspicion about ourselves."""
        self._refutations.inc()

    def member_failed(self, name: str) -> None:
        """The gossip declared ``name`` dead (MemberFailed)."""
        self._member_failures.labels(member=name).inc()

    def watch_gossip_keys(self, report: Callable[[], GossipKeyReport]) -> None:
        """Export the gossip keys and their rotation, read through ``report`` at each scrape."""
        self._registry.register(_GossipKeyCollector(report, self._source_errors))


class _PoolCollector(Collector):
    """MetalLB's allocator gauges, computed from the controller's live allocation."""

    _NAMES: tuple[tuple[str, str], ...] = (
        ("metallb_allocator_addresses_total", "Number of usable IP addresses, per pool"),
        ("metallb_allocator_ipv4_addresses_total", "Number of usable IPv4 addresses, per pool"),
        ("metallb_allocator_ipv6_addresses_total", "Number of usable IPv6 addresses, per pool"),
        ("metallb_allocator_addresses_in_use_total", "Number of IP addresses in use, per pool"),
        (
            "metallb_allocator_ipv4_addresses_in_use_total",
            "Number of IPv4 addresses in use, per pool",
        ),
        (
            "metallb_allocator_ipv6_addresses_in_use_total",
            "Number of IPv6 addresses in use, per pool",
        ),
    )

    def __init__(self, pools: Callable[[], Iterable[PoolUsage]], errors: Counter) -> None:
        self._pools = pools
        self._errors = errors

    def _families(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily(name, doc, labels=["pool"]) for name, doc in self._NAMES]

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        try:
            pools = sorted(self._pools(), key=lambda p: p.pool)
        except Exception:
            log.warning("metrics source pools failed during scrape", exc_info=True)
            self._errors.labels(source="pools").inc()
            pools = []
        for p in pools:
            values = (
                p.total_v4 + p.total_v6,
                p.total_v4,
                p.total_v6,
                p.in_use_v4 + p.in_use_v6,
                p.in_use_v4,
                p.in_use_v6,
            )
            for family, value in zip(families, values, strict=True):
                family.add_metric([p.pool], _clamp(value))
        yield from families


class _KubeResourceCollector(Collector):
    """``l2agent_k8s_resource_missing``: 1 for each watched kind the API server does not
    serve (its CRD is not installed; the agent counts it as empty), 0 for the others."""

    def __init__(self, resources: Iterable[str], absent: Callable[[], Iterable[str]]) -> None:
        self._resources = tuple(resources)
        self._absent = absent

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "l2agent_k8s_resource_missing",
            "1 while the API server does not serve a watched kind (its CRD is not installed: "
            "counted as empty, listed again now and then).",
            labels=["resource"],
        )

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        try:
            absent = frozenset(self._absent())
        except Exception:
            log.warning("metrics source k8s_resources failed during scrape", exc_info=True)
            absent = frozenset()
        for name in self._resources:
            family.add_metric([name], 1 if name in absent else 0)
        yield family


def register_kube_resources(
    registry: CollectorRegistry, resources: Iterable[str], absent: Callable[[], Iterable[str]]
) -> None:
    """Export which of `resources` the API server does not serve (``absent()`` names them,
    read at every scrape; ``WatchedObjects.absent``)."""
    registry.register(_KubeResourceCollector(resources, absent))


class ControllerMetrics(_ConfigMetrics):
    """Everything the controller exports; ``pools`` is called at every scrape."""

    def __init__(
        self, registry: CollectorRegistry, *, pools: Callable[[], Iterable[PoolUsage]]
    ) -> None:
        super().__init__(registry)
        self._source_errors = Counter(
            "l2agent_metrics_source_errors",
            "Scrapes where a live-view callable of the controller raised.",
            ["source"],
            registry=registry,
        )
        registry.register(_PoolCollector(pools, self._source_errors))


__all__ = [
    "FAILOVER_BUCKETS",
    "MEMBER_STATES",
    "PROBE_RTT_BUCKETS",
    "ControllerMetrics",
    "MemberRow",
    "OwnershipChange",
    "OwnershipRow",
    "PoolUsage",
    "SpeakerMetrics",
    "register_kube_resources",
]
