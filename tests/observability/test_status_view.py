"""`l2agent status`: the merge as tables, and the whole command against live /status endpoints."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import ipaddress
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from l2agent.cli import main as cli_main
from l2agent.cli.status_view import (
    Problem,
    SpeakerReport,
    merge,
    parse_report,
    render_json,
    render_table,
    run_status,
    status_url,
)
from l2agent.health import HealthServer, speaker_status, status_document
from l2agent.metrics import MemberRow, OwnershipRow
from l2agent.model.reports import BgpReport, BgpSessionRow

WEB = ipaddress.ip_address("192.0.2.10")
DB = ipaddress.ip_address("192.0.2.20")
V6 = ipaddress.ip_address("2001:db8::10")
T0 = 1_700_000_000.0


def _report(node: str, rows: list[OwnershipRow], members: list[MemberRow] | None = None) -> Any:
    doc = json.loads(json.dumps(status_document(node, rows, members or [])))
    return parse_report(f"http://{node}:7472/status", doc)


def _row(ip: Any, owner: str | None, announcing: bool, svc: str = "default/web") -> OwnershipRow:
    return OwnershipRow(ip, svc, owner, announcing, ("eth0",) if announcing else (), T0)


@pytest.mark.parametrize(
    ("claims", "owners", "problems"),
    [
        # (node, elected owner in its view, announcing)
        ([("a", "a", True), ("b", "a", False)], ("a",), ()),
        ([("a", "b", False), ("b", "b", False)], (), (Problem.NO_OWNER,)),
        ([("a", None, False), ("b", None, False)], (), (Problem.NO_OWNER,)),
        (
            [("a", "a", True), ("b", "b", True)],
            ("a", "b"),
            (Problem.TWO_OWNERS, Problem.VIEWS_DIFFER),
        ),
        ([("a", "c", False), ("b", "c", False)], (), (Problem.UNCONFIRMED,)),
        ([("a", "a", True), ("b", "c", False)], ("a",), (Problem.VIEWS_DIFFER,)),
    ],
)
def test_merge_flags(
    claims: list[tuple[str, str | None, bool]],
    owners: tuple[str, ...],
    problems: tuple[Problem, ...],
) -> None:
    reports = [_report(node, [_row(WEB, owner, ann)]) for node, owner, ann in claims]
    (row,), _ = merge(reports)
    assert row.owners == owners
    assert row.problems == problems


def test_merge_sorts_ips_numerically_v4_first() -> None:
    ips = [ipaddress.ip_address(t) for t in ("192.0.2.100", "2001:db8::1", "192.0.2.9")]
    rows, _ = merge([_report("a", [_row(ip, "a", True) for ip in ips])])
    assert [r.ip for r in rows] == ["192.0.2.9", "192.0.2.100", "2001:db8::1"]


def test_member_states_per_viewer() -> None:
    reports = [
        _report("a", [], [MemberRow("c", "198.51.100.3:7946", "suspect")]),
        _report("b", [], [MemberRow("c", "198.51.100.3:7946", "alive")]),
    ]
    _, (member,) = merge(reports)
    assert member.states == {"a": "suspect", "b": "alive"}
    text = render_table(reports, [], [member], now=T0)
    assert "suspect (per a), alive (per b)" in text


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"node": 3, "ownership": [], "members": []},
        {"node": "a", "ownership": [{"ip": "not-an-ip"}], "members": []},
        {"node": "a", "ownership": ["x"], "members": []},
        {"node": "a", "ownership": []},
        {"node": "a", "ownership": [], "members": [], "bgp": {"sessions": [{"peer": "r"}]}},
        {"node": "a", "ownership": [], "members": [], "bgp": []},
    ],
)
def test_malformed_status_is_an_error_not_a_crash(doc: Any) -> None:
    report = parse_report("http://x/status", doc)
    assert report.error is not None and report.error.startswith("malformed")


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("127.0.0.1:7472", "http://127.0.0.1:7472/status"),
        ("http://127.0.0.1:7472", "http://127.0.0.1:7472/status"),
        ("http://[2001:db8::1]:7472/", "http://[2001:db8::1]:7472/status"),
        ("http://h:1/custom", "http://h:1/custom"),
    ],
)
def test_status_url(text: str, url: str) -> None:
    assert status_url(text) == url


def test_table_lists_owner_interfaces_since_and_flags() -> None:
    reports = [
        _report("node-a", [_row(WEB, "node-a", True), _row(DB, "node-b", False, "default/db")]),
        _report("node-b", [_row(WEB, "node-a", False), _row(DB, "node-b", False, "default/db")]),
        SpeakerReport("http://node-c:7472/status", error="unreachable (refused)"),
    ]
    rows, members = merge(reports)
    text = render_table(reports, rows, members, now=T0 + 125)
    lines = text.splitlines()
    assert lines[0] == "speaker http://node-c:7472/status: unreachable (refused)"
    assert lines[1].split() == ["IP", "SERVICE", "OWNER", "INTERFACES", "SINCE", "FLAGS"]
    assert lines[2].split() == [
        "192.0.2.10",
        "default/web",
        "node-a",
        "eth0",
        "2023-11-14",
        "22:13:20Z",
        "(2m05s",
        "ago)",
    ]
    assert lines[3].split() == ["192.0.2.20", "default/db", "-", "-", "-", "NO", "OWNER"]
    doc = json.loads(render_json(reports, rows, members))
    assert doc["ownership"][1]["problems"] == ["no_owner"]
    assert doc["speakers"][2]["error"] == "unreachable (refused)"


def test_bgp_sessions_table_and_json() -> None:
    up = BgpSessionRow("router-a", "192.0.2.1", "default", "Established", 2, "up")
    down = BgpSessionRow("router-b", "192.0.2.2", "red", "Active", 0, None, "Hold Timer Expired")
    docs = {
        "node-a": status_document("node-a", [], [], BgpReport((up, down))),
        "node-b": status_document("node-b", [], [], BgpReport((up,), error="vtysh: timeout")),
        "node-c": status_document("node-c", [], []),  # layer 2 only: "bgp": null
    }
    assert docs["node-c"]["bgp"] is None
    reports = [
        parse_report(f"http://{n}/status", json.loads(json.dumps(d))) for n, d in docs.items()
    ]
    assert [len(r.bgp) for r in reports] == [2, 1, 0] and reports[1].bgp_error == "vtysh: timeout"
    # a speaker from before BGP mode (no "bgp" key at all) still parses
    old = {"node": "x", "ownership": [], "members": []}
    assert parse_report("http://x/status", old).bgp == ()
    rows, members = merge(reports)
    lines = render_table(reports, rows, members, now=T0).splitlines()
    assert "speaker node-b: FRR: vtysh: timeout" in lines
    start = next(i for i, line in enumerate(lines) if line.startswith("NODE"))
    assert [line.split() for line in lines[start + 1 : start + 4]] == [
        ["node-a", "router-a", "192.0.2.1", "default", "Established", "2", "up"],
        ["node-a", "router-b", "192.0.2.2", "red", "Active", "0", "-"],
        ["node-b", "router-a", "192.0.2.1", "default", "Established", "2", "up"],
    ]
    doc = json.loads(render_json(reports, rows, members))
    assert doc["bgp_sessions"][1] == {
        "node": "node-a",
        "peer": "router-b",
        "address": "192.0.2.2",
        "vrf": "red",
        "state": "Active",
        "established": False,
        "prefixes_sent": 0,
        "bfd": None,
    }
    assert [s["bgp_error"] for s in doc["speakers"]] == [None, "vtysh: timeout", None]
    # no speaker in BGP mode: no BGP table at all
    l2_only = [reports[2]]
    assert "NODE" not in render_table(l2_only, *merge(l2_only), now=T0)


# The whole command against real endpoints.


@contextlib.contextmanager
def _speakers(views: dict[str, list[OwnershipRow]]) -> Iterator[dict[str, int]]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    servers: list[HealthServer] = []
    members = [MemberRow(n, f"127.0.0.1:{7946 + i}", "alive") for i, n in enumerate(views)]

    async def start() -> dict[str, int]:
        ports = {}
        for node, rows in views.items():
            status = speaker_status(node, rows.copy, members.copy)
            server = HealthServer(CollectorRegistry(), host="127.0.0.1", port=0, status=status)
            await server.start()
            servers.append(server)
            ports[node] = server.address[1]
        return ports

    async def stop() -> None:
        for server in servers:
            await server.close()

    try:
        yield asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def test_run_status_against_live_speakers() -> None:
    views = {
        "node-a": [_row(WEB, "node-a", True), _row(V6, "node-b", False, "default/web6")],
        "node-b": [_row(WEB, "node-a", False), _row(V6, "node-b", True, "default/web6")],
    }
    with _speakers(views) as ports:
        args = argparse.Namespace(
            speaker=[f"127.0.0.1:{p}" for p in ports.values()], output="table"
        )
        out = io.StringIO()
        assert run_status(args, out) == 0
    text = out.getvalue()
    assert "192.0.2.10    default/web   node-a  eth0" in text
    assert "2001:db8::10  default/web6  node-b  eth0" in text
    assert "MEMBER" in text and "node-b  127.0.0.1:7947  alive" in text


def test_cli_status_json_and_exit_code_on_two_owners(capsys: pytest.CaptureFixture[str]) -> None:
    views = {"node-a": [_row(WEB, "node-a", True)], "node-b": [_row(WEB, "node-b", True)]}
    with _speakers(views) as ports:
        argv = ["status", "--output", "json"]
        for port in ports.values():
            argv += ["--speaker", f"http://127.0.0.1:{port}"]
        assert cli_main(argv) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ownership"][0]["owners"] == ["node-a", "node-b"]
    assert "two_owners" in doc["ownership"][0]["problems"]


def test_unreachable_speaker_exits_1() -> None:
    with _speakers({"node-a": []}) as ports:
        port = ports["node-a"]
    # The server is closed now: nothing listens on that port.
    out = io.StringIO()
    args = argparse.Namespace(speaker=[f"127.0.0.1:{port}"], output="table")
    assert run_status(args, out) == 1
    assert "unreachable" in out.getvalue()


def test_shared_ip_is_one_row_with_both_services_and_one_owner() -> None:
    reports = [
        _report(
            "a", [_row(WEB, "a", True, "default/dns-tcp"), _row(WEB, "a", True, "default/dns-udp")]
        ),
        _report(
            "b",
            [_row(WEB, "a", False, "default/dns-tcp"), _row(WEB, "a", False, "default/dns-udp")],
        ),
    ]
    (row,), _ = merge(reports)
    assert row.services == ("default/dns-tcp", "default/dns-udp")
    assert row.owners == ("a",)
    assert row.problems == ()
    assert row.interfaces == {"a": ("eth0",)}
