"""The failover benchmark's probe arithmetic on hand-made probe streams (no lab)."""

from __future__ import annotations

import pytest

from bench.failover import (
    Trial,
    client_outage,
    longest_gap,
    markdown,
    ratios,
    representative,
)
from l2agent.lab.prober import Probe


def stream(plan: list[str | None], start: float = 100.0, rtt: float = 0.0001) -> list[Probe]:
    """One probe every 2 ms; each entry names the answering node or None (lost)."""
    out = []
    for seq, node in enumerate(plan):
        sent = start + seq * 0.002
        out.append(Probe(seq, sent, None if node is None else sent + rtt, node))
    return out


def test_client_outage_runs_from_last_old_to_first_new_reply() -> None:
    probes = stream(["a"] * 10 + [None] * 25 + ["b"] * 10)
    t_fault = 100.0 + 10 * 0.002  # just after the last reply from a
    trial = client_outage(probes, t_fault)
    assert trial.extra["old"] == "a" and trial.extra["new"] == "b"
    assert trial.value == pytest.approx(26 * 0.002)
    assert trial.lost == 25
    assert trial.timeline is not None and any(row[1] is None for row in trial.timeline)


def test_client_outage_reports_why_it_cannot_measure() -> None:
    only_a = stream(["a"] * 20)
    assert client_outage(only_a, 100.01).error is not None
    assert client_outage(only_a, 100.01).value is None
    assert client_outage(stream([None] * 5 + ["b"] * 5), 100.005).error is not None


def test_longest_gap_is_between_consecutive_replies_whoever_answers() -> None:
    probes = stream(["a"] * 5 + [None] * 3 + ["b"] * 5 + [None] * 7 + ["a"] * 2)
    assert longest_gap(probes) == pytest.approx(8 * 0.002)
    assert longest_gap([]) == 0.0


def test_representative_trial_is_the_one_nearest_the_median() -> None:
    trials = [Trial(0.05), Trial(None, error="x"), Trial(0.2), Trial(0.06), Trial(0.07)]
    rep = representative(trials)
    assert rep is not None and rep.value == 0.06
    assert representative([Trial(None)]) is None


def test_ratios_and_markdown_from_a_result_document() -> None:
    def case(name: str, median: float, mx: float, lost: int | None) -> dict:
        summary = {"n": 20, "min": median / 2, "median": median, "p95": mx, "max": mx}
        return {
            "case": name,
            "skipped": None,
            "summary": summary,
            "lost_max": lost,
            "failed_trials": [],
        }

    cases = {
        "l2agent-link-down": case("l2agent-link-down", 0.1, 0.2, 50),
        "l2agent-sigterm": case("l2agent-sigterm", 0.002, 0.003, 0),
        "keepalived-default": case("keepalived-default", 3.0, 3.4, 1600),
        "memberlist-lan": case("memberlist-lan", 5.5, 7.0, None),
    }
    r = ratios(cases)
    assert set(r) == {"keepalived-default", "memberlist-lan"}
    assert r["keepalived-default"]["median"] == pytest.approx(30.0)
    assert r["memberlist-lan"]["max"] == pytest.approx(35.0)
    doc = {"when": "now", "host": {"kernel": "k"}, "cases": cases}
    table = markdown(doc)
    assert "| keepalived VRRPv2 advert_int 1 |" in table
    assert "30.0x" in table and "55.0x" in table
    sigterm = next(line for line in table.splitlines() if "SIGTERM" in line)
    assert "x |" not in sigterm  # no ratio for our own non-reference rows


def test_merge_keeps_old_cases_and_recomputes_ratios() -> None:
    from bench.failover import merge

    def case(median: float) -> dict:
        return {"summary": {"n": 1, "min": median, "median": median, "p95": median, "max": median}}

    old = {
        "when": "t1",
        "source": "a",
        "cases": {"l2agent-link-down": case(0.06), "keepalived-default": case(3.0)},
    }
    new = {"when": "t2", "source": "b", "cases": {"l2agent-link-down": case(0.1)}}
    doc = merge(old, new)
    assert doc["cases"]["l2agent-link-down"]["measured"] == "t2"
    assert doc["cases"]["keepalived-default"]["measured"] == "t1"
    assert doc["cases"]["keepalived-default"]["source"] == "a"
    assert doc["ratios"]["keepalived-default"]["median"] == pytest.approx(30.0)
