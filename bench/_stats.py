"""Pure result math for the benchmarks: summaries, ratios and the markdown table.

Kept apart from the lab drivers so it is unit-tested without namespaces or clocks
(tests/bench/test_stats.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Summary:
    """min/median/p95/max of one case's trials, in seconds; ``n`` trials measured."""

    n: int
    min: float
    median: float
    p95: float
    max: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "n": self.n,
            "min": self.min,
            "median": self.median,
            "p95": self.p95,
            "max": self.max,
        }


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between closest ranks.

    The same definition as numpy's default, so figures can be checked with any tool.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError("q must be within 0..100")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(values: Sequence[float]) -> Summary | None:
    """Summary of the measured values; None when no trial produced a value."""
    if not values:
        return None
    return Summary(
        n=len(values),
        min=min(values),
        median=percentile(values, 50),
        p95=percentile(values, 95),
        max=max(values),
    )


def ratio(peer: float, ours: float) -> float | None:
    """How many times longer the peer takes than we do (None when ours is 0)."""
    if ours <= 0.0:
        return None
    return peer / ours


def fmt_seconds(value: float | None) -> str:
    """Human-sized duration: ms below 1 s, seconds above; "-" when missing."""
    if value is None:
        return "-"
    if value < 1.0:
        return f"{value * 1e3:.0f} ms" if value >= 0.01 else f"{value * 1e3:.1f} ms"
    return f"{value:.2f} s"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table: a system and case, its summary, lost probes and a note."""

    system: str
    case: str
    summary: Summary | None
    lost_max: int | None = None
    note: str = ""
    compare: bool = True
    """Show the ratio to the reference (peers); False for our own other cases."""


def render_table(rows: Sequence[Row], reference: Summary | None) -> str:
    """The markdown table; the ratio column compares each row's median to ``reference``'s."""
    head = (
        "| system | case | trials | min | median | p95 | max | lost probes (max) "
        "| median vs l2agent link-down | note |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n"
    )
    lines = []
    for row in rows:
        s = row.summary
        r = None
        if row.compare and s is not None and reference is not None:
            r = ratio(s.median, reference.median)
        cells = [
            row.system,
            row.case,
            str(s.n) if s else "0",
            fmt_seconds(s.min if s else None),
            fmt_seconds(s.median if s else None),
            fmt_seconds(s.p95 if s else None),
            fmt_seconds(s.max if s else None),
            "-" if row.lost_max is None else str(row.lost_max),
            fmt_ratio(r),
            row.note,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"
