"""`l2agent status`: one ownership table for the whole fleet, from each speaker's /status.

Each speaker only knows for sure what *it* announces, so the merge trusts claims, not views:
the owners of an IP are the speakers that say they announce it. Nobody claiming it, or two
speakers claiming it, is flagged (and makes the exit code 1, for scripts). When the node the
views elect was not queried, its claim cannot be checked and the owner is shown with a `?`.
Speakers in BGP mode also list their BGP sessions as FRR reports them; a session that is
not Established, or an FRR that cannot be read, makes the exit code 1 as well.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import enum
import ipaddress
import json
import logging
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

log = logging.getLogger(__name__)

DEFAULT_SPEAKER = "http://127.0.0.1:7472"
FETCH_TIMEOUT = 3.0


class Problem(enum.Enum):
    """What the merge flags for one IP; values are the words printed."""

    NO_OWNER = "NO OWNER"
    TWO_OWNERS = "MULTIPLE OWNERS"
    VIEWS_DIFFER = "views differ"
    UNCONFIRMED = "owner not queried"


#: Problems that make `l2agent status` exit 1.
SERIOUS = frozenset({Problem.NO_OWNER, Problem.TWO_OWNERS})


@dataclass(frozen=True, slots=True)
class Claim:
    """One speaker's row for one IP."""

    node: str
    service: str
    owner: str | None
    announcing: bool
    interfaces: tuple[str, ...]
    since: float | None


@dataclass(frozen=True, slots=True)
class BgpSession:
    """One BGP session of one speaker, as its FRR reports it."""

    node: str
    peer: str
    address: str
    vrf: str
    state: str
    prefixes_sent: int
    bfd: str | None

    @property
    def established(self) -> bool:
        return self.state == "Established"


@dataclass(frozen=True, slots=True)
class SpeakerReport:
    """What one speaker answered (or why it did not). ``bgp_error``: why its FRR could not
    be read (its sessions are then the last reading)."""

    url: str
    node: str | None = None
    claims: Mapping[str, tuple[Claim, ...]] = field(default_factory=dict)
    members: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    error: str | None = None
    bgp: tuple[BgpSession, ...] = ()
    bgp_error: str | None = None


@dataclass(frozen=True, slots=True)
class MergedRow:
    """One service IP across every speaker queried."""

    ip: str
    services: tuple[str, ...]
    owners: tuple[str, ...]
    interfaces: Mapping[str, tuple[str, ...]]
    since: float | None
    elected: tuple[str, ...]
    problems: tuple[Problem, ...]


@dataclass(frozen=True, slots=True)
class MergedMember:
    """One gossip member and the state each speaker gives it."""

    name: str
    addr: str
    states: Mapping[str, str]


def status_url(text: str) -> str:
    """``host:port``, ``http://host:port`` or a full URL -> the /status URL."""
    if "://" not in text:
        text = "http://" + text
    parts = urllib.parse.urlsplit(text)
    path = parts.path if parts.path not in ("", "/") else "/status"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def parse_report(url: str, doc: Any) -> SpeakerReport:
    """Check a /status document and turn it into a report; bad documents become errors."""
    try:
        node = doc["node"]
        if not isinstance(node, str):
            raise TypeError("node is not a string")
        claims: dict[str, tuple[Claim, ...]] = {}
        for row in doc["ownership"]:
            ip = str(ipaddress.ip_address(row["ip"]))
            since = row.get("since_unix")
            # A shared IP (allow-shared-ip) comes as one row per service.
            claims[ip] = (
                *claims.get(ip, ()),
                Claim(
                    node=node,
                    service=str(row["service"]),
                    owner=None if row["owner"] is None else str(row["owner"]),
                    announcing=bool(row["announcing"]),
                    interfaces=tuple(str(i) for i in row.get("interfaces", ())),
                    since=None if since is None else float(since),
                ),
            )
        members = {
            str(m["name"]): (str(m.get("addr", "")), str(m["state"])) for m in doc["members"]
        }
        bgp, bgp_error = _parse_bgp(node, doc.get("bgp"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        log.warning("speaker %s sent a malformed /status: %r", url, exc)
        return SpeakerReport(url, error=f"malformed /status ({exc!r})")
    return SpeakerReport(
        url, node=node, claims=claims, members=members, bgp=bgp, bgp_error=bgp_error
    )


def _parse_bgp(node: str, section: Any) -> tuple[tuple[BgpSession, ...], str | None]:
    """The /status ``bgp`` section (null or absent: no BGP mode on that speaker)."""
    if section is None:
        return (), None
    sessions = tuple(
        BgpSession(
            node=node,
            peer=str(s["peer"]),
            address=str(s["address"]),
            vrf=str(s["vrf"]),
            state=str(s["state"]),
            prefixes_sent=int(s["prefixes_sent"]),
            bfd=None if s.get("bfd") is None else str(s["bfd"]),
        )
        for s in section["sessions"]
    )
    error = section.get("error")
    return sessions, None if error is None else str(error)


def fetch(url: str, timeout: float = FETCH_TIMEOUT) -> SpeakerReport:
    """GET one speaker's /status; network and decoding failures become the report's error."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read()
        doc = json.loads(body)
    except urllib.error.HTTPError as exc:
        return SpeakerReport(url, error=f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        return SpeakerReport(url, error=f"unreachable ({reason})")
    except ValueError as exc:
        return SpeakerReport(url, error=f"not JSON ({exc})")
    return parse_report(url, doc)


def _ip_key(ip: str) -> tuple[int, int]:
    addr = ipaddress.ip_address(ip)
    return addr.version, int(addr)


def merge(reports: Sequence[SpeakerReport]) -> tuple[list[MergedRow], list[MergedMember]]:
    """Combine every speaker's claims into one row per IP and one entry per member."""
    queried = {r.node for r in reports if r.node is not None}
    by_ip: dict[str, list[Claim]] = {}
    for report in reports:
        for ip, ip_claims in report.claims.items():
            by_ip.setdefault(ip, []).extend(ip_claims)
    rows = []
    for ip in sorted(by_ip, key=_ip_key):
        claims = by_ip[ip]
        owners = tuple(sorted({c.node for c in claims if c.announcing}))
        views = {c.owner for c in claims}
        elected = tuple(sorted(v for v in views if v is not None))
        problems = []
        if len(owners) > 1:
            problems.append(Problem.TWO_OWNERS)
        elif not owners:
            if not elected or set(elected) <= queried:
                problems.append(Problem.NO_OWNER)
            else:
                problems.append(Problem.UNCONFIRMED)
        if len(views) > 1:
            problems.append(Problem.VIEWS_DIFFER)
        interfaces: dict[str, set[str]] = {}
        for c in claims:
            if c.announcing:
                interfaces.setdefault(c.node, set()).update(c.interfaces)
        since_values = [c.since for c in claims if c.announcing and c.since is not None]
        rows.append(
            MergedRow(
                ip=ip,
                services=tuple(sorted({c.service for c in claims})),
                owners=owners,
                interfaces={n: tuple(sorted(i)) for n, i in sorted(interfaces.items())},
                since=max(since_values) if since_values else None,
                elected=elected,
                problems=tuple(problems),
            )
        )
    members: dict[str, tuple[str, dict[str, str]]] = {}
    for report in reports:
        for name, (addr, state) in report.members.items():
            entry = members.setdefault(name, (addr, {}))
            entry[1][report.node or report.url] = state
    merged_members = [
        MergedMember(name, addr, dict(sorted(states.items())))
        for name, (addr, states) in sorted(members.items())
    ]
    return rows, merged_members


def _when(since: float | None, now: float) -> str:
    if since is None:
        return "-"
    stamp = datetime.datetime.fromtimestamp(since, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    age = max(0, int(now - since))
    h, rest = divmod(age, 3600)
    m, s = divmod(rest, 60)
    ago = f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")
    return f"{stamp} ({ago} ago)"


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def render_table(
    reports: Sequence[SpeakerReport],
    rows: Sequence[MergedRow],
    members: Sequence[MergedMember],
    now: float,
) -> str:
    """The human view: speakers that failed, the ownership table, then the members."""
    lines = [f"speaker {r.url}: {r.error}" for r in reports if r.error]
    table = [["IP", "SERVICE", "OWNER", "INTERFACES", "SINCE", "FLAGS"]]
    for row in rows:
        if row.owners:
            owner = ",".join(row.owners)
        elif Problem.UNCONFIRMED in row.problems:
            owner = ",".join(f"{e}?" for e in row.elected)
        else:
            owner = "-"
        ifaces = "; ".join(
            ",".join(names) if len(row.interfaces) == 1 else f"{node}:{','.join(names)}"
            for node, names in sorted(row.interfaces.items())
        )
        table.append(
            [
                row.ip,
                ",".join(row.services),
                owner,
                ifaces or "-",
                _when(row.since, now),
                ", ".join(p.value for p in row.problems),
            ]
        )
    lines += _columns(table) if rows else ["no service IPs reported"]
    lines.append("")
    lines += _bgp_lines(reports)
    member_table = [["MEMBER", "ADDRESS", "STATE"]]
    for m in members:
        distinct = set(m.states.values())
        if len(distinct) == 1:
            state = distinct.pop()
        else:
            state = ", ".join(f"{s} (per {viewer})" for viewer, s in m.states.items())
        member_table.append([m.name, m.addr, state])
    lines += _columns(member_table) if members else ["no members reported"]
    return "\n".join(lines) + "\n"


def _bgp_lines(reports: Sequence[SpeakerReport]) -> list[str]:
    """The BGP sessions table (nothing when no speaker runs BGP mode)."""
    sessions = [b for r in reports for b in r.bgp]
    errors = [f"speaker {r.node or r.url}: FRR: {r.bgp_error}" for r in reports if r.bgp_error]
    if not sessions and not errors:
        return []
    table = [["NODE", "PEER", "ADDRESS", "VRF", "STATE", "PREFIXES", "BFD"]]
    for b in sorted(sessions, key=lambda b: (b.node, b.vrf, b.peer, b.address)):
        table.append(
            [
                b.node,
                b.peer or "-",
                b.address,
                b.vrf,
                b.state or "not in FRR",
                str(b.prefixes_sent),
                "-" if b.bfd is None else (b.bfd or "not in FRR"),
            ]
        )
    lines = errors + (_columns(table) if sessions else ["no BGP sessions reported"])
    return [*lines, ""]


def render_json(
    reports: Sequence[SpeakerReport], rows: Sequence[MergedRow], members: Sequence[MergedMember]
) -> str:
    """The machine view of the same merge."""
    doc = {
        "speakers": [
            {"url": r.url, "node": r.node, "error": r.error, "bgp_error": r.bgp_error}
            for r in reports
        ],
        "ownership": [
            {
                "ip": r.ip,
                "services": list(r.services),
                "owners": list(r.owners),
                "interfaces": {k: list(v) for k, v in sorted(r.interfaces.items())},
                "since_unix": r.since,
                "elected": list(r.elected),
                "problems": [p.name.lower() for p in r.problems],
            }
            for r in rows
        ],
        "members": [{"name": m.name, "addr": m.addr, "states": dict(m.states)} for m in members],
        "bgp_sessions": [
            {
                "node": b.node,
                "peer": b.peer,
                "address": b.address,
                "vrf": b.vrf,
                "state": b.state,
                "established": b.established,
                "prefixes_sent": b.prefixes_sent,
                "bfd": b.bfd,
            }
            for r in reports
            for b in r.bgp
        ],
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def run_status(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Entry point for `l2agent status`: 0 if all is well, 1 if a speaker or an IP needs care."""
    out = out or sys.stdout
    urls = [status_url(u) for u in (args.speaker or [DEFAULT_SPEAKER])]
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(urls))) as pool:
        reports = list(pool.map(fetch, urls))
    rows, members = merge(reports)
    if getattr(args, "output", "table") == "json":
        out.write(render_json(reports, rows, members))
    else:
        out.write(render_table(reports, rows, members, time.time()))
    failed = any(r.error for r in reports)
    serious = any(set(r.problems) & SERIOUS for r in rows)
    bgp_down = any(r.bgp_error or not all(b.established for b in r.bgp) for r in reports)
    return 1 if failed or serious or bgp_down else 0


__all__ = [
    "DEFAULT_SPEAKER",
    "BgpSession",
    "Claim",
    "MergedMember",
    "MergedRow",
    "Problem",
    "SpeakerReport",
    "fetch",
    "merge",
    "parse_report",
    "render_json",
    "render_table",
    "run_status",
    "status_url",
]
