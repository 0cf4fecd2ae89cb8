"""`l2agent plan`: offline, explainable ownership from the same YAML the agent reads.

Reads static files (for example a `kubectl get -o yaml` dump of a real cluster), runs the
same `plan` the speakers run, and prints for every LoadBalancer Service its IPs and pool
(or why none), the elected node, the ranked candidates, and for every other node why it
does not announce; in BGP mode, the sessions of every node and, per Service, which nodes
announce which prefix to which peer with which communities and LOCAL_PREF.  With
`--node N --frr` it prints the frr.conf node N would get instead (passwords redacted
unless `--show-passwords`).  Exit status: 0 when every input was valid and every service
got its IPs; 1 when an object was rejected or a service could not be allocated; 2 when a
file could not be read or parsed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TextIO

from l2agent.bgp import report as bgp_report
from l2agent.bgp.frr_config import FrrOptions, redact, render
from l2agent.bgp.plan import BgpServicePlan, explain_bgp, plan_bgp, sessions_on
from l2agent.election import NotAnnouncing
from l2agent.errors import ConfigError
from l2agent.model.problems import ObjectProblem, ProblemReason
from l2agent.model.snapshot import BuildResult, build_state
from l2agent.plan import ServicePlan, explain
from l2agent.static import load_yaml_files

__all__ = ["PlanReport", "build_report", "render_json", "render_table", "run_plan"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PlanReport:
    """Everything `l2agent plan` prints: the services, the members used, and input problems."""

    services: tuple[ServicePlan, ...]
    members: tuple[str, ...]
    members_from: str
    problems: tuple[ObjectProblem, ...]
    """Every object left out of the plan, or only reported (kinds this build does not act on)."""
    notes: tuple[str, ...] = ()
    """Problems of the invocation itself (no members)."""
    bgp: tuple[BgpServicePlan, ...] = ()
    """BGP mode: what every member node announces, per Service."""
    bgp_sessions: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """BGP mode: the peers each member node has a session with."""
    ibgp: Mapping[str, bool] = field(default_factory=lambda: MappingProxyType({}))
    """Peer name -> iBGP (LOCAL_PREF is sent) for the attributes shown."""

    @property
    def errors(self) -> tuple[str, ...]:
        """Sentences for everything that was rejected (objects and the invocation)."""
        rejected = (
            p.message
            for p in self.problems
            if p.reason
            not in (
                ProblemReason.UNSUPPORTED_KIND,
                ProblemReason.UNKNOWN_KIND,
                ProblemReason.MISSING_REFERENCE,
            )
        )
        return (*rejected, *self.notes)

    @property
    def waiting(self) -> tuple[str, ...]:
        """Objects set aside until what they name (a Secret, a BFDProfile) is there."""
        return tuple(
            p.message for p in self.problems if p.reason is ProblemReason.MISSING_REFERENCE
        )

    @property
    def unsupported(self) -> tuple[str, ...]:
        return tuple(p.message for p in self.problems if p.reason is ProblemReason.UNSUPPORTED_KIND)

    @property
    def ok(self) -> bool:
        return not self.errors and all(s.error is None for s in self.services)


def build_report(
    result: BuildResult,
    members: Sequence[str] | None,
    *,
    ignore_exclude_lb: bool = False,
    lb_class: str | None = None,
) -> PlanReport:
    """Explain every service; without `members`, the Node objects in the inputs are the members."""
    if members is None:
        chosen = tuple(sorted(result.state.nodes))
        source = "Node objects in the inputs"
    else:
        chosen = tuple(sorted(set(members)))
        source = "--members"
    notes: tuple[str, ...] = ()
    if not chosen:
        notes = ("no members: pass --members a,b,c or include Node objects in the inputs",)
    services = explain(result.state, chosen, ignore_exclude_lb=ignore_exclude_lb, lb_class=lb_class)
    bgp = explain_bgp(result.state, chosen, ignore_exclude_lb=ignore_exclude_lb, lb_class=lb_class)
    sessions = {n: tuple(s.name for s in sessions_on(result.state, n)[0]) for n in chosen}
    ibgp = {p.name: p.is_ibgp for p in result.state.bgp_peers}
    return PlanReport(
        services,
        chosen,
        source,
        result.problems,
        notes,
        bgp,
        MappingProxyType(sessions),
        MappingProxyType(ibgp),
    )


def _service_json(sp: ServicePlan) -> dict[str, Any]:
    interfaces: Any = None
    if sp.interfaces is not None:
        interfaces = "all" if sp.interfaces.all else sorted(sp.interfaces.names)
    return {
        "namespace": sp.namespace,
        "name": sp.name,
        "ips": [str(ip) for ip in sp.ips],
        "pool": sp.pool,
        "owner": sp.owner,
        "candidates": list(sp.candidates),
        "error": sp.error,
        "reason": sp.reason.value if sp.reason is not None else None,
        "interfaces": interfaces,
        "not_announcing": {node: r.value for node, r in sorted(sp.node_reasons.items())},
    }


def render_json(report: PlanReport) -> str:
    """`{"services": [...], "errors": [...]}` plus members and unsupported objects."""
    doc = {
        "services": [_service_json(s) for s in report.services],
        "errors": list(report.errors),
        "unsupported": list(report.unsupported),
        "waiting": list(report.waiting),
        "members": list(report.members),
        "bgp": {
            "sessions": bgp_report.sessions_json(report.bgp_sessions),
            "services": [bgp_report.service_json(s, report.ibgp) for s in report.bgp if s.bgp],
        },
    }
    return json.dumps(doc, indent=2) + "\n"


def _bgp_only(sp: ServicePlan, bgp: Mapping[str, BgpServicePlan]) -> bool:
    """A Service that only BGP mode announces (its pool has no L2Advertisement)."""
    other = bgp.get(sp.key)
    return sp.reason is NotAnnouncing.NO_ADVERTISEMENT and other is not None and other.bgp


def _status(sp: ServicePlan, bgp: Mapping[str, BgpServicePlan]) -> str:
    if _bgp_only(sp, bgp):
        return f"BGP from {len(bgp[sp.key].announcing)} node(s), see below"
    if sp.owner is not None and sp.interfaces is not None:
        where = "all interfaces" if sp.interfaces.all else ",".join(sorted(sp.interfaces.names))
        return f"announced on {where}"
    text = sp.reason.value if sp.reason is not None else "not announced"
    return f"{text}: {sp.error}" if sp.error else text


def render_table(report: PlanReport) -> str:
    """A fixed-width table, then why each other node does not announce, then input problems."""
    header = ("SERVICE", "IPS", "POOL", "OWNER", "CANDIDATES", "STATUS")
    bgp = {s.key: s for s in report.bgp}
    rows = [
        (
            sp.key,
            ",".join(str(ip) for ip in sp.ips) or "-",
            sp.pool or "-",
            sp.owner or "-",
            ",".join(sp.candidates) or "-",
            _status(sp, bgp),
        )
        for sp in report.services
    ]
    lines: list[str] = []
    if rows:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
        for row in [header, *rows]:
            cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)]
            lines.append("  ".join([*cells, row[-1]]).rstrip())
    else:
        lines.append("no LoadBalancer services")
    lines.append("")
    lines.append(f"members ({report.members_from}): {', '.join(report.members) or '-'}")
    explained = [sp for sp in report.services if sp.node_reasons and not _bgp_only(sp, bgp)]
    if explained:
        lines.append("")
        lines.append("why other nodes do not announce:")
        for sp in explained:
            parts = []
            for node, reason in sorted(sp.node_reasons.items()):
                extra = ""
                if node in sp.candidates:
                    extra = f" (rank {sp.candidates.index(node) + 1})"
                parts.append(f"{node}={reason.value}{extra}")
            lines.append(f"  {sp.key}: {', '.join(parts)}")
    lines += bgp_report.table_lines(report.bgp, report.bgp_sessions, report.ibgp)
    if report.unsupported:
        lines.append("")
        lines.append("not supported yet (ignored):")
        lines.extend(f"  {msg}" for msg in report.unsupported)
    if report.waiting:
        lines.append("")
        lines.append("waiting for a referenced object:")
        lines.extend(f"  {msg}" for msg in report.waiting)
    if report.errors:
        lines.append("")
        lines.append("errors:")
        lines.extend(f"  {msg}" for msg in report.errors)
    return "\n".join(lines) + "\n"


def run_plan(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Entry point for `l2agent plan --config FILE... [--members a,b] [--output table|json]`."""
    out = out if out is not None else sys.stdout
    try:
        objects = load_yaml_files(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    members_arg = getattr(args, "members", None)
    members = (
        [m.strip() for m in members_arg.split(",") if m.strip()]
        if members_arg is not None
        else None
    )
    result = build_state(objects)
    if getattr(args, "frr", False):
        return _print_frr(args, result, out)
    report = build_report(
        result,
        members,
        ignore_exclude_lb=bool(getattr(args, "ignore_exclude_lb", False)),
        lb_class=getattr(args, "lb_class", None),
    )
    if getattr(args, "output", "table") == "json":
        out.write(render_json(report))
    else:
        out.write(render_table(report))
    return 0 if report.ok else 1


def _print_frr(args: argparse.Namespace, result: BuildResult, out: TextIO) -> int:
    """`--node N --frr`: the frr.conf node N would get (its problems on stderr)."""
    node = getattr(args, "node", None)
    if not node:
        print("error: --frr needs --node NAME", file=sys.stderr)
        return 2
    plan = plan_bgp(
        result.state,
        node,
        ignore_exclude_lb=bool(getattr(args, "ignore_exclude_lb", False)),
        lb_class=getattr(args, "lb_class", None),
    )
    text = render(plan, FrrOptions(hostname=getattr(args, "hostname", None)))
    out.write(text if getattr(args, "show_passwords", False) else redact(text))
    blocking = [
        p.message for p in result.dropped if p.reason is not ProblemReason.MISSING_REFERENCE
    ]
    for msg in [*blocking, *(p.message for p in plan.problems)]:
        print(f"problem: {msg}", file=sys.stderr)
    for p in result.problems:
        if p.reason is ProblemReason.MISSING_REFERENCE:
            print(f"waiting: {p.message}", file=sys.stderr)
    return 1 if blocking or plan.problems else 0
