"""The benchmark's result math: percentiles, summaries, ratios and the markdown table."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench._stats import Row, Summary, fmt_seconds, percentile, ratio, render_table, summarize


def test_percentile_interpolates_between_ranks_like_numpy() -> None:
    values = [0.4, 0.1, 0.3, 0.2]  # unsorted on purpose
    assert percentile(values, 0) == 0.1
    assert percentile(values, 100) == 0.4
    assert percentile(values, 50) == pytest.approx(0.25)
    # numpy.percentile([1..20], 95) == 19.05 (linear method)
    assert percentile([float(i) for i in range(1, 21)], 95) == pytest.approx(19.05)


def test_percentile_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), min_size=1, max_size=50))
def test_summary_is_ordered_and_median_agrees_with_statistics(values: list[float]) -> None:
    s = summarize(values)
    assert s is not None
    assert s.n == len(values)
    assert s.min <= s.median <= s.p95 <= s.max
    assert s.median == pytest.approx(statistics.median(values))


def test_no_values_no_summary() -> None:
    assert summarize([]) is None


def test_ratio() -> None:
    assert ratio(3.0, 0.06) == pytest.approx(50.0)
    assert ratio(1.0, 0.0) is None


def test_fmt_seconds_picks_a_readable_unit() -> None:
    assert fmt_seconds(None) == "-"
    assert fmt_seconds(0.0025) == "2.5 ms"
    assert fmt_seconds(0.0629) == "63 ms"
    assert fmt_seconds(3.148) == "3.15 s"


def test_table_has_one_line_per_row_and_ratios_only_where_asked() -> None:
    ours = Summary(n=20, min=0.05, median=0.06, p95=0.08, max=0.09)
    peer = Summary(n=20, min=2.4, median=3.0, p95=3.4, max=3.5)
    table = render_table(
        [
            Row("l2agent", "link-down", ours, 30, compare=False),
            Row("keepalived", "link-down", peer, 1500, note="default"),
            Row("memberlist", "detection", None, None, note="go missing"),
        ],
        ours,
    )
    lines = table.strip().splitlines()
    assert len(lines) == 2 + 3
    assert lines[0].startswith("| system | case | trials |")
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells == [
        "l2agent",
        "link-down",
        "20",
        "50 ms",
        "60 ms",
        "80 ms",
        "90 ms",
        "30",
        "-",
        "",
    ]
    cells = [c.strip() for c in lines[3].strip("|").split("|")]
    assert cells[4] == "3.00 s" and cells[8] == "50.0x" and cells[9] == "default"
    cells = [c.strip() for c in lines[4].strip("|").split("|")]
    assert cells[2] == "0" and cells[4] == "-" and cells[9] == "go missing"


def test_soak_reads_counters_and_drop_counts() -> None:
    from bench.soak import counters, dropped_packets, log_counts

    metrics = (
        "# HELP l2agent_ownership_changes_total Times.\n"
        "# TYPE l2agent_ownership_changes_total counter\n"
        'l2agent_ownership_changes_total{change="gained",ip="192.0.2.200"} 2.0\n'
        'l2agent_ownership_changes_total{change="lost",ip="192.0.2.200"} 1.0\n'
        "# HELP l2agent_gossip_suspicions_raised_total Members.\n"
        "# TYPE l2agent_gossip_suspicions_raised_total counter\n"
        "l2agent_gossip_suspicions_raised_total 4.0\n"
    )
    got = counters(metrics)
    assert got["ownership_changes"] == 3.0
    assert got["suspicions_raised"] == 4.0
    assert got["member_failures"] == 0.0
    listing = (
        "Chain INPUT (policy ACCEPT 10 packets, 840 bytes)\n"
        "    pkts      bytes target     prot opt in     out     source    destination\n"
        "      17     1428 DROP       0    --  !lo    *       0.0.0.0/0 0.0.0.0/0  statistic\n"
        "Chain OUTPUT (policy ACCEPT 9 packets, 700 bytes)\n"
        "       5      420 DROP       0    --  *      !lo     0.0.0.0/0 0.0.0.0/0  statistic\n"
    )
    assert dropped_packets(listing) == 22
    log = "x member node2 suspected by node3\nmember node2 failed\nannouncing 192.0.2.200 (a)\n"
    assert log_counts(log) == {"failed_lines": 1, "suspected_lines": 1, "ownership_lines": 1}
