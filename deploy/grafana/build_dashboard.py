#!/usr/bin/env python3
"""Build the Grafana dashboards in this directory, deterministically, from the panel lists below.

    python deploy/grafana/build_dashboard.py          # rewrite the JSON files
    python deploy/grafana/build_dashboard.py --check  # exit 1 if a committed file is stale

Two dashboards come out:

- ``l2agent-dashboard.json``: who owns which service IP, when ownership moved, how long
  failovers took, gossip health, ARP/NDP traffic, BGP mode (sessions per node and peer,
  announced prefixes, UPDATEs, BFD state and flaps, FRR reload outcomes), pool utilisation
  and config state.
- ``metallb-dashboard.json``: the seed guide's "MetalLB Load Balancer Monitoring" dashboard,
  adapted so every panel returns data against l2agent (and MetalLB) metrics:
  ``metallb_ip_addresses_in_use_total / metallb_ip_addresses_total`` (names MetalLB never
  exported) became ``metallb_allocator_addresses_in_use_total / metallb_allocator_addresses_total``;
  ``metallb_allocator_addresses_in_use`` became ``metallb_allocator_addresses_in_use_total``;
  "BGP Session Status" reads ``metallb_bgp_session_up`` as the guide wrote it (l2agent's
  speakers export it from FRR), and "Layer 2 Announcements" on ``metallb_speaker_announced``
  joins it for layer 2 mode; the deprecated ``graph`` panel type became ``timeseries``; and
  the file holds the bare dashboard (for provisioning) instead of the HTTP API's
  ``{"dashboard": ...}`` wrapper.

The Grafana JSON model is written by hand here: the panels use a small, stable subset of it
(schemaVersion 39), and a generator in plain Python keeps the output reviewable in diffs.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
QUIET_GOSSIP_DROPS = "unknown_ack|unknown_stream|stream_eof|stream_timeout"
"""Drop reasons that ordinary churn produces (late acks, dials to a peer that is down)."""


@dataclass(frozen=True)
class Target:
    """One PromQL query of a panel."""

    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False


@dataclass(frozen=True)
class Panel:
    """One panel: its type, title, size and queries."""

    title: str
    kind: str
    targets: tuple[Target, ...]
    width: int = 12
    height: int = 8
    unit: str | None = None
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    """A collapsible row header; the panels after it belong to it."""

    title: str


def _target_json(target: Target, ref: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "datasource": DATASOURCE,
        "expr": target.expr,
        "refId": ref,
        "range": not target.instant,
        "instant": target.instant,
    }
    if target.legend:
        out["legendFormat"] = target.legend
    if target.table:
        out["format"] = "table"
    return out


def _layout(items: list[Panel | Row]) -> list[dict[str, Any]]:
    """Place panels left to right in a 24-column grid, starting a new line when full."""
    panels: list[dict[str, Any]] = []
    x = y = 0
    line_height = 0
    for pid, item in enumerate(items, start=1):
        if isinstance(item, Row):
            y += line_height
            x, line_height = 0, 0
            panels.append(
                {
                    "id": pid,
                    "type": "row",
                    "title": item.title,
                    "collapsed": False,
                    "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                    "panels": [],
                }
            )
            y += 1
            continue
        if x + item.width > 24:
            y += line_height
            x, line_height = 0, 0
        defaults: dict[str, Any] = {}
        if item.unit:
            defaults["unit"] = item.unit
        panel: dict[str, Any] = {
            "id": pid,
            "type": item.kind,
            "title": item.title,
            "datasource": DATASOURCE,
            "gridPos": {"h": item.height, "w": item.width, "x": x, "y": y},
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": item.options,
            "targets": [_target_json(t, chr(ord("A") + i)) for i, t in enumerate(item.targets)],
        }
        if item.description:
            panel["description"] = item.description
        panels.append(panel)
        x += item.width
        line_height = max(line_height, item.height)
    return panels


def _dashboard(
    uid: str, title: str, tags: list[str], items: list[Panel | Row], variables: list[dict[str, Any]]
) -> dict[str, Any]:
    datasource_var = {
        "name": "datasource",
        "label": "Prometheus",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
    }
    return {
        "uid": uid,
        "title": title,
        "tags": tags,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "10s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "utc",
        "templating": {"list": [datasource_var, *variables]},
        "annotations": {"list": []},
        "panels": _layout(items),
    }


def _table(title: str, expr: str, *, width: int = 12, description: str = "") -> Panel:
    return Panel(
        title,
        "table",
        (Target(expr, instant=True, table=True),),
        width=width,
        description=description,
        options={"showHeader": True},
    )


def l2agent_dashboard() -> dict[str, Any]:
    """The ownership dashboard."""
    items: list[Panel | Row] = [
        Row("Ownership"),
        _table(
            "Service IP owners",
            "max by (ip, service, node) (l2agent_ip_owner == 1)",
            width=12,
            description="One row per service IP and the node that announces it right now.",
        ),
        Panel(
            "IPs without an owner",
            "stat",
            (Target("count(max by (ip) (l2agent_ip_owner) == 0) or vector(0)", instant=True),),
            width=6,
            description="Service IPs that every speaker reports as not announced.",
        ),
        Panel(
            "IPs with two owners",
            "stat",
            (
                Target(
                    "count(count by (ip) (max by (ip, node) (l2agent_ip_owner) == 1) > 1)"
                    " or vector(0)",
                    instant=True,
                ),
            ),
            width=6,
            description="Service IPs that more than one speaker announces (a split brain).",
        ),
        Panel(
            "Ownership timeline",
            "state-timeline",
            (Target("max by (ip, node) (l2agent_ip_owner == 1)", legend="{{ip}} on {{node}}"),),
            width=24,
            description="A bar per (IP, node) while that node announces the IP.",
            options={"showValue": "never", "mergeValues": True},
        ),
        Panel(
            "Ownership changes",
            "timeseries",
            (
                Target(
                    f"sum by (ip, change) (increase(l2agent_ownership_changes_total[{RATE}]))",
                    legend="{{ip}} {{change}}",
                ),
            ),
            width=12,
        ),
        _table(
            "Interfaces announced on",
            "max by (ip, service, interface, instance) (l2agent_interface_announced == 1)",
            width=12,
        ),
        Row("Failover"),
        Panel(
            "Failover duration",
            "timeseries",
            tuple(
                Target(
                    f"histogram_quantile({q}, sum by (le) "
                    f"(rate(l2agent_failover_duration_seconds_bucket[{RATE}])))",
                    legend=f"p{round(q * 100)}",
                )
                for q in (0.5, 0.9, 0.99)
            ),
            width=12,
            unit="s",
            description="From a member's failure to the new owner's first gratuitous packet.",
        ),
        Panel(
            "Failover duration distribution",
            "heatmap",
            (
                Target(
                    f"sum by (le) (increase(l2agent_failover_duration_seconds_bucket[{RATE}]))",
                    legend="{{le}}",
                ),
            ),
            width=8,
            options={"calculate": False, "yAxis": {"unit": "s"}},
        ),
        Panel(
            "Failovers in range",
            "stat",
            (
                Target(
                    "sum(increase(l2agent_failover_duration_seconds_count[$__range]))",
                    instant=True,
                ),
            ),
            width=4,
        ),
        Row("Gossip"),
        Panel(
            "Members by state",
            "timeseries",
            (Target("max by (state) (l2agent_gossip_members)", legend="{{state}}"),),
            width=8,
            description="Highest count any speaker reports per state.",
        ),
        _table(
            "Member state per speaker",
            "max by (instance, member, state) (l2agent_gossip_member_state == 1)",
            width=8,
        ),
        Panel(
            "Awareness score",
            "timeseries",
            (Target("max by (instance) (l2agent_gossip_awareness_score)", legend="{{instance}}"),),
            width=8,
            description="Lifeguard local health: 0 is healthy.",
        ),
        Panel(
            "Probe round-trip time (p99)",
            "timeseries",
            (
                Target(
                    "histogram_quantile(0.99, sum by (instance, le) "
                    f"(rate(l2agent_gossip_probe_rtt_seconds_bucket[{RATE}])))",
                    legend="{{instance}}",
                ),
            ),
            width=8,
            unit="s",
        ),
        Panel(
            "Suspicions",
            "timeseries",
            (
                Target(
                    f"sum(rate(l2agent_gossip_suspicions_raised_total[{RATE}]))", legend="raised"
                ),
                Target(
                    f"sum(rate(l2agent_gossip_suspicions_refuted_total[{RATE}]))",
                    legend="refuted",
                ),
            ),
            width=8,
            unit="ops",
        ),
        Panel(
            "Members declared dead",
            "timeseries",
            (
                Target(
                    f"max by (member) (increase(l2agent_gossip_member_failures_total[{RATE}]))",
                    legend="{{member}}",
                ),
            ),
            width=8,
        ),
        Panel(
            "Refused gossip input",
            "timeseries",
            (
                Target(
                    "sum by (reason) (rate(l2agent_gossip_input_dropped_total"
                    f'{{reason!~"{QUIET_GOSSIP_DROPS}"}}[{RATE}]))',
                    legend="{{reason}}",
                ),
                Target(
                    f"sum by (reason) (rate(l2agent_gossip_input_malformed_total[{RATE}]))",
                    legend="malformed: {{reason}}",
                ),
            ),
            width=8,
            unit="ops",
            description="Gossip input a speaker refused or found wrong, by reason: bad bytes, "
            "rate limits, answers past the reply budget, streams past their limits; what "
            "could not be decoded also by the codec's cause (malformed: ...). A climb is an "
            "attack or a broken peer (the speakers log a bounded summary naming sources).",
        ),
        Panel(
            "Undecryptable gossip sources",
            "timeseries",
            (
                Target(
                    "max by (instance) (l2agent_gossip_undecryptable_sources)",
                    legend="{{instance}} sources",
                ),
                Target(
                    "max by (instance) (l2agent_gossip_key_mismatch)",
                    legend="{{instance}} key mismatch",
                ),
            ),
            width=8,
            description="Addresses whose gossip no installed key opens (a peer with another "
            "key); key mismatch = 1 while a speaker stays unready because of it.",
        ),
        Panel(
            "Gossip stalls",
            "timeseries",
            (
                Target(
                    f"sum by (instance) (increase(l2agent_gossip_stalls_total[{RATE}]))",
                    legend="{{instance}}",
                ),
            ),
            width=8,
            description="Times a speaker's gossip timers ran far later than due: that node "
            "was stalled (CPU starvation, a blocked loop) and blamed itself, not its peers.",
        ),
        Panel(
            "Refused HTTP connections",
            "timeseries",
            (
                Target(
                    "sum by (instance, reason) "
                    f"(rate(l2agent_http_connections_refused_total[{RATE}]))",
                    legend="{{instance}} {{reason}}",
                ),
            ),
            width=8,
            unit="ops",
            description="Connections to the metrics/health port closed unserved: over the "
            "connection limit (limit) or past the per-connection time (timeout). A climb is a "
            "connection flood; the cap keeps it from taking the gossip's file descriptors.",
        ),
        Row("ARP / NDP traffic"),
        Panel(
            "Requests and replies",
            "timeseries",
            (
                Target(
                    f"sum by (ip) (rate(metallb_layer2_requests_received[{RATE}]))",
                    legend="{{ip}} requests",
                ),
                Target(
                    f"sum by (ip) (rate(metallb_layer2_responses_sent[{RATE}]))",
                    legend="{{ip}} replies",
                ),
            ),
            width=12,
            unit="pps",
        ),
        Panel(
            "Gratuitous ARP / unsolicited NA",
            "timeseries",
            (
                Target(
                    f"sum by (ip, instance) (rate(metallb_layer2_gratuitous_sent[{RATE}]))",
                    legend="{{ip}} from {{instance}}",
                ),
            ),
            width=12,
            unit="pps",
        ),
        Panel(
            "Dropped by reason",
            "timeseries",
            (
                Target(
                    f"sum by (reason) (rate(l2agent_packets_dropped_total[{RATE}]))",
                    legend="{{reason}}",
                ),
            ),
            width=12,
            unit="pps",
        ),
        Panel(
            "Address conflicts",
            "timeseries",
            (
                Target(
                    f"sum by (ip) (increase(l2agent_address_conflicts_total[{RATE}]))",
                    legend="{{ip}}",
                ),
            ),
            width=12,
            description="Another MAC answered for a service IP we own.",
        ),
        Row("BGP"),
        Panel(
            "BGP sessions",
            "state-timeline",
            (
                Target(
                    "max by (instance, peer, vrf) (metallb_bgp_session_up)",
                    legend="{{instance}} to {{peer}} ({{vrf}})",
                ),
            ),
            width=16,
            description="Per speaker and peer: 1 while FRR's session is Established.",
            options={"showValue": "never", "mergeValues": True},
        ),
        Panel(
            "BGP sessions down",
            "stat",
            (Target("count(metallb_bgp_session_up == 0) or vector(0)", instant=True),),
            width=4,
        ),
        Panel(
            "BFD sessions down",
            "stat",
            (Target("count(metallb_bfd_session_up == 0) or vector(0)", instant=True),),
            width=4,
        ),
        Panel(
            "Announced prefixes",
            "timeseries",
            (
                Target(
                    "max by (instance, peer) (metallb_bgp_announced_prefixes_total)",
                    legend="{{instance}} to {{peer}}",
                ),
            ),
            width=8,
            description="Prefixes each speaker's FRR advertises to each peer right now.",
        ),
        Panel(
            "BGP UPDATE messages",
            "timeseries",
            (
                Target(
                    f"sum by (instance, peer) (rate(metallb_bgp_updates_total[{RATE}]))",
                    legend="{{instance}} to {{peer}} sent",
                ),
                Target(
                    f"sum by (instance, peer) (rate(metallb_bgp_updates_total_received[{RATE}]))",
                    legend="{{instance}} from {{peer}} received",
                ),
            ),
            width=8,
            unit="ops",
        ),
        Panel(
            "BFD sessions",
            "state-timeline",
            (
                Target(
                    "max by (instance, peer) (metallb_bfd_session_up)",
                    legend="{{instance}} to {{peer}}",
                ),
            ),
            width=8,
            options={"showValue": "never", "mergeValues": True},
        ),
        Panel(
            "BFD flaps",
            "timeseries",
            (
                Target(
                    f"sum by (instance, peer) (increase(metallb_bfd_session_down_events[{RATE}]))",
                    legend="{{instance}} to {{peer}}",
                ),
            ),
            width=8,
            description="BFD session-down events: each took that node's path away at once.",
        ),
        Panel(
            "FRR reloads by result",
            "timeseries",
            (
                Target(
                    f"sum by (result) (increase(l2agent_frr_reloads_total[{RATE}]))",
                    legend="{{result}}",
                ),
            ),
            width=8,
            description="applied, applied_after_reset and applied_in_steps are fine; invalid, "
            "failed, unavailable, timeout and crashed leave FRR on an older configuration.",
        ),
        Panel(
            "FRR config stale",
            "table",
            (
                Target(
                    "max by (instance) (l2agent_frr_config_stale)",
                    instant=True,
                    table=True,
                ),
            ),
            width=8,
            description="1 = FRR does not run the newest configuration the speaker rendered.",
            options={"showHeader": True},
        ),
        Row("Pools and configuration"),
        Panel(
            "Pool utilisation",
            "bargauge",
            (
                Target(
                    "100 * max by (pool) (metallb_allocator_addresses_in_use_total)"
                    " / max by (pool) (metallb_allocator_addresses_total)",
                    legend="{{pool}}",
                    instant=True,
                ),
            ),
            width=12,
            unit="percent",
        ),
        Panel(
            "Pool addresses",
            "table",
            (
                Target(
                    "max by (pool) (metallb_allocator_addresses_in_use_total)",
                    legend="in use",
                    instant=True,
                    table=True,
                ),
                Target(
                    "max by (pool) (metallb_allocator_addresses_total)",
                    legend="usable",
                    instant=True,
                    table=True,
                ),
            ),
            width=12,
            options={"showHeader": True},
        ),
        Panel(
            "Config reloads and rejections",
            "timeseries",
            (
                Target(
                    f"sum by (instance) (increase(l2agent_config_reloads_total[{RATE}]))",
                    legend="{{instance}} reloaded",
                ),
                Target(
                    f"sum by (instance) (increase(l2agent_config_rejected_total[{RATE}]))",
                    legend="{{instance}} rejected",
                ),
            ),
            width=12,
        ),
        Panel(
            "Config state",
            "table",
            (
                Target(
                    "max by (instance) (metallb_k8s_client_config_stale_bool)",
                    instant=True,
                    table=True,
                ),
            ),
            width=12,
            description="1 = running on a stale configuration (the latest was rejected).",
        ),
    ]
    return _dashboard("l2agent-ownership", "l2agent: service IP ownership", ["l2agent"], items, [])


def metallb_dashboard() -> dict[str, Any]:
    """The seed guide's dashboard, adapted (see the module docstring)."""
    ns = 'namespace="$namespace"'
    items: list[Panel | Row] = [
        Panel(
            "Controller Status",
            "stat",
            (Target(f'up{{job="metallb-controller", {ns}}}', legend="Controller Instances"),),
        ),
        Panel(
            "Speaker Status",
            "stat",
            (Target(f'up{{job="metallb-speaker", {ns}}}', legend="Speaker Instances"),),
        ),
        Panel(
            "BGP Session Status",
            "timeseries",
            (Target(f"metallb_bgp_session_up{{{ns}}}", legend="{{peer}} - {{instance}}"),),
        ),
        Panel(
            "Layer 2 Announcements",
            "timeseries",
            (
                Target(
                    f"sum by (node) (metallb_speaker_announced{{{ns}}})",
                    legend="{{node}}",
                ),
            ),
            description="Not in the guide: layer 2 mode's counterpart of BGP Session Status.",
        ),
        Panel(
            "IP Pool Utilization",
            "timeseries",
            (
                Target(
                    f"metallb_allocator_addresses_in_use_total{{{ns}}}"
                    f" / metallb_allocator_addresses_total{{{ns}}} * 100",
                    legend="{{pool}} - Utilization %",
                ),
            ),
            unit="percent",
        ),
        Panel(
            "Service Allocations",
            "table",
            (
                Target(
                    f"metallb_allocator_addresses_in_use_total{{{ns}}}", instant=True, table=True
                ),
            ),
        ),
    ]
    namespace_var = {
        "name": "namespace",
        "type": "query",
        "datasource": DATASOURCE,
        "query": 'label_values(up{job="metallb-controller"}, namespace)',
        "current": {"text": "metallb-system", "value": "metallb-system"},
        "refresh": 1,
        "hide": 0,
    }
    return _dashboard(
        "metallb-seed",
        "MetalLB Load Balancer Monitoring",
        ["metallb", "load-balancer", "networking"],
        items,
        [namespace_var],
    )


def render() -> dict[str, str]:
    """File name -> JSON text, byte-for-byte what is committed."""
    return {
        name: json.dumps(build(), indent=2, sort_keys=True) + "\n"
        for name, build in (
            ("l2agent-dashboard.json", l2agent_dashboard),
            ("metallb-dashboard.json", metallb_dashboard),
        )
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a committed file is stale")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = HERE / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale: {', '.join(stale)}; run {Path(__file__).name}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
