"""Dashboards and rules against a real Prometheus scraping our real /metrics endpoints.

Two speakers and a controller (our HealthServer with sample data, counters moving) serve on
127.0.0.1; Debian's `prometheus` binary scrapes them every second and loads our alert rules.
Then every panel query of both dashboards must return data, and every rule must evaluate
without error. The judge is Prometheus itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import ipaddress
import json
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from helpers.prometheus_server import PROMETHEUS, PrometheusServer, wait_until
from prometheus_client import CollectorRegistry

from gossip.events import DropReason as GossipDrop
from l2agent.bgp.frr_state import BfdPeer, BgpSession, FrrState
from l2agent.bgp.metrics import BgpMetrics
from l2agent.bgp.reload_outcome import ReloadOutcome, ReloadResult
from l2agent.health import HealthServer, speaker_status
from l2agent.metrics import (
    ControllerMetrics,
    MemberRow,
    OwnershipChange,
    OwnershipRow,
    PoolUsage,
    SpeakerMetrics,
)
from l2agent.model.reports import GossipReport
from l2agent.speaker.gossip_metrics import GossipInputCollector

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
RULE_FILES = sorted((ROOT / "deploy" / "prometheus").glob("*-rules.yaml"))
# What Grafana would put in place of its variables.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__range": "5m",
    "$__interval": "15s",
    "$namespace": "metallb-system",
}
WEB = ipaddress.ip_address("192.0.2.10")
DB = ipaddress.ip_address("192.0.2.20")
V6 = ipaddress.ip_address("2001:db8::10")


def _builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_dashboard", GRAFANA / "build_dashboard.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(GRAFANA.glob("*.json"))}


def _panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expr with Grafana's variables filled in)."""
    out = []
    for name, dash in _dashboards().items():
        for panel in dash["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for var, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(var, value)
                out.append((name, panel["title"], expr))
    return out


def test_committed_json_is_what_the_builder_makes() -> None:
    rendered = _builder().render()
    assert sorted(rendered) == sorted(_dashboards())
    for name, text in rendered.items():
        assert (GRAFANA / name).read_text() == text, f"{name} is stale: run build_dashboard.py"


@pytest.mark.parametrize("name", sorted(_dashboards()))
def test_dashboard_shape(name: str) -> None:
    dash = _dashboards()[name]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"
    assert "$" not in "".join(q[2] for q in _panel_queries() if q[0] == name)


def test_bgp_row_has_the_required_views() -> None:
    titles = [p["title"] for p in _dashboards()["l2agent-dashboard.json"]["panels"]]
    bgp = titles[titles.index("BGP") :]
    for wanted in (
        "BGP sessions",
        "Announced prefixes",
        "BGP UPDATE messages",
        "BFD sessions",
        "BFD flaps",
        "FRR reloads by result",
    ):
        assert wanted in bgp
    assert "BGP Session Status" in {
        p["title"] for p in _dashboards()["metallb-dashboard.json"]["panels"]
    }


def test_ownership_dashboard_has_the_required_views() -> None:
    titles = {p["title"] for p in _dashboards()["l2agent-dashboard.json"]["panels"]}
    for wanted in (
        "Service IP owners",
        "Ownership timeline",
        "Failover duration",
        "Members by state",
        "Requests and replies",
        "Pool utilisation",
    ):
        assert wanted in titles


# Refused or violating input (issue 11): each counter on the dashboard, each with an alert.
REFUSED_INPUT = {
    "l2agent_gossip_input_dropped_total": True,
    "l2agent_gossip_input_malformed_total": False,  # the dropped{reason="malformed"} detail
    "l2agent_gossip_undecryptable_sources": True,
    "l2agent_http_connections_refused_total": True,
    "l2agent_config_rejected_total": True,
}


@pytest.mark.parametrize(("metric", "alerted"), sorted(REFUSED_INPUT.items()))
def test_refused_input_is_on_the_dashboard_and_alerted(metric: str, alerted: bool) -> None:
    exprs = [q[2] for q in _panel_queries() if q[0] == "l2agent-dashboard.json"]
    assert any(metric in e for e in exprs), f"{metric} is on no panel"
    if alerted:
        rules = [
            r["expr"]
            for path in RULE_FILES
            for g in yaml.safe_load(path.read_text())["groups"]
            for r in g["rules"]
            if "alert" in r
        ]
        assert any(metric in e for e in rules), f"no alert reads {metric}"


# The live part: our endpoints, scraped by a real Prometheus.


class _Endpoints:
    """Two speakers and a controller serving sample data from a background event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.servers: list[HealthServer] = []
        self.ports: dict[str, int] = {}
        self._bump: asyncio.Task[None] | None = None
        self._refused = 0
        self.speakers: dict[str, SpeakerMetrics] = {}
        self.step = 0

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=10)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    async def _start(self) -> None:
        views = {
            "node-a": [
                OwnershipRow(WEB, "default/web", "node-a", True, ("eth0",), 1_700_000_000.0),
                OwnershipRow(V6, "default/web6", "node-a", True, ("eth0", "eth1")),
                OwnershipRow(DB, "default/db", "node-b", False),
            ],
            "node-b": [
                OwnershipRow(WEB, "default/web", "node-a", False),
                OwnershipRow(V6, "default/web6", "node-a", False),
                OwnershipRow(DB, "default/db", "node-b", True, ("eth0",), 1_700_000_100.0),
            ],
        }
        members = [
            MemberRow("node-a", "127.0.0.1:7946", "alive"),
            MemberRow("node-b", "127.0.0.1:7947", "alive"),
            MemberRow("node-c", "127.0.0.1:7948", "dead"),
        ]
        for node, rows in views.items():
            registry = CollectorRegistry()
            m = SpeakerMetrics(
                registry,
                node,
                ownership=rows.copy,
                members=members.copy,
                awareness=lambda: 0,
            )
            m.config_reloaded()
            m.config_rejected()
            m.ownership_changed(WEB, OwnershipChange.GAINED)
            m.ownership_changed(DB, OwnershipChange.LOST)
            m.member_failed("node-c")
            m.suspicion_raised()
            m.suspicion_refuted()
            m.conflict_detected(WEB, bytes.fromhex("020000000099"))
            registry.register(GossipInputCollector(self._gossip_report))
            self.speakers[node] = m
            bgp = BgpMetrics(registry, frr_state=lambda node=node: self._frr_state(node))
            bgp.reload_finished(ReloadOutcome(ReloadResult.APPLIED, 1, 0.4))
            status = speaker_status(node, rows.copy, members.copy)
            await self._serve(node, registry, status)
        registry = CollectorRegistry()
        controller = ControllerMetrics(registry, pools=lambda: [PoolUsage("lab", 254, 16, 2, 1)])
        controller.config_reloaded()
        await self._serve("controller", registry, None)
        self._bump = asyncio.create_task(self._keep_counting())

    def _frr_state(self, node: str) -> FrrState:
        """What FRR would report: node-a's session to router1 is up (UPDATEs and BFD
        session-down events counting), node-b's to router2 is down, its BFD too."""
        up = node == "node-a"
        address = "192.0.2.1" if up else "192.0.2.2"
        session = BgpSession(
            address=address,
            port=179,
            vrf="default",
            state="Established" if up else "Active",
            prefixes_sent=2 if up else 0,
            updates_sent=10 + self.step if up else 0,
            updates_received=3,
            opens_sent=1,
            opens_received=1,
            notifications_sent=0,
            keepalives_sent=self.step,
            keepalives_received=self.step,
            route_refresh_sent=0,
            total_sent=11 + 2 * self.step,
            total_received=4 + self.step,
            established_count=1,
            dropped_count=0,
        )
        bfd = BfdPeer(
            peer=address,
            local="",
            vrf="default",
            interface="",
            status="up" if up else "down",
            multihop=False,
            receive_interval_ms=300,
            transmit_interval_ms=300,
            detect_multiplier=3,
            session_down_events=self.step // 5,
        )
        return FrrState(sessions=(session,), bfd_peers=(bfd,))

    async def _serve(self, name: str, registry: CollectorRegistry, status: Any) -> None:
        server = HealthServer(registry, host="127.0.0.1", port=0, status=status)
        await server.start()
        self.servers.append(server)
        self.ports[name] = server.address[1]

    def _gossip_report(self) -> GossipReport:
        """Refused gossip input that keeps climbing, as under a flood."""
        return GossipReport(
            dropped={GossipDrop.RATE_LIMITED: self._refused, GossipDrop.MALFORMED: 1},
            stalls=self._refused // 10,
            undecryptable=frozenset({"192.0.2.66"}),
            key_mismatch=True,
        )

    async def _keep_counting(self) -> None:
        """Move the event counters so rates are not zero (what live traffic would do)."""
        while True:
            self.step += 1
            step = self.step
            self._refused += 25
            for m in self.speakers.values():
                for ip in (WEB, DB, V6):
                    m.request_received(ip)
                    m.response_sent(ip)
                    m.gratuitous_sent(ip, count=2)
                m.dropped("notMatchInterface")
                m.probe_rtt(0.0004 * (1 + step % 5))
                m.failover_observed(0.05 * (1 + step % 7))
            await asyncio.sleep(0.2)

    async def _stop(self) -> None:
        if self._bump is not None:
            self._bump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._bump
        for server in self.servers:
            await server.close()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    if PROMETHEUS is None:
        pytest.skip("prometheus binary missing (Debian package `prometheus`)")
    workdir = tmp_path_factory.mktemp("prometheus")
    endpoints = _Endpoints()
    endpoints.start()
    try:
        p = endpoints.ports
        targets = {
            "metallb-speaker": [f"127.0.0.1:{p['node-a']}", f"127.0.0.1:{p['node-b']}"],
            "metallb-controller": [f"127.0.0.1:{p['controller']}"],
        }
        with PrometheusServer(
            workdir, targets, RULE_FILES, labels={"namespace": "metallb-system"}
        ) as prom:
            prom.wait_for_scrapes(4, targets=3)
            yield prom
    finally:
        endpoints.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.slow
def test_every_panel_query_returns_data(prometheus: PrometheusServer) -> None:
    empty = []
    for dashboard, title, expr in _panel_queries():
        if not prometheus.query(expr):
            empty.append(f"{dashboard} / {title}: {expr}")
    assert not empty, "panel queries with no data:\n" + "\n".join(empty)


@pytest.mark.slow
def test_ownership_as_prometheus_sees_it(prometheus: PrometheusServer) -> None:
    owners = prometheus.query("max by (ip, node) (l2agent_ip_owner == 1)")
    assert {(r["metric"]["ip"], r["metric"]["node"]) for r in owners} == {
        ("192.0.2.10", "node-a"),
        ("2001:db8::10", "node-a"),
        ("192.0.2.20", "node-b"),
    }
    announced = prometheus.query("metallb_speaker_announced")
    assert {r["metric"]["node"] for r in announced if r["metric"]["ip"] == "192.0.2.20"} == {
        "node-b"
    }


@pytest.mark.slow
def test_rules_load_and_evaluate_cleanly(prometheus: PrometheusServer) -> None:
    def evaluated() -> bool:
        groups = prometheus.api("/api/v1/rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        assert len(rules) == sum(
            len(g["rules"]) for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"]
        )
        bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
        assert not bad, bad
        return all(r["health"] == "ok" for r in rules)

    wait_until("every rule evaluated", evaluated, limit=30)
    # The sample data has a dead member, a conflict and a rejected config: those alerts fire
    # (or are pending); the healthy ownership must not raise the ownership alerts.
    alerts = {a["labels"]["alertname"] for a in prometheus.api("/api/v1/alerts")["data"]["alerts"]}
    assert {"L2AgentGossipMemberFailed", "L2AgentAddressConflict"} <= alerts
    assert not alerts & {"L2AgentServiceIPNoOwner", "L2AgentServiceIPTwoOwners"}
    # node-b's BGP and BFD sessions are down: the seed's BGP alert reads our metrics.
    assert {"MetalLBBGPSessionDown", "L2AgentBFDSessionDown"} <= alerts
    assert "L2AgentFRRConfigStale" not in alerts
