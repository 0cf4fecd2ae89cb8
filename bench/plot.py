"""PNG timeline of the failover benchmark: one representative trial per case.

``python -m bench.plot [bench/results/failover.json] [--out bench/results/failover.png]``
redraws from a saved run. Each panel shows the probes of the trial closest to its case's
median: x is the time since the fault (ms), y the reply's round-trip time (ms), the colour
says which node answered; lost probes are red crosses on the x axis. Needs matplotlib (the
``bench`` extra); without it no PNG is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench._cases import CASES, LABELS

COLOURS = {"node1": "#1f77b4", "node2": "#2ca02c", "node3": "#ff7f0e"}


def plot_failover(doc: dict[str, Any], out: Path) -> Path | None:
    """Draw the timelines in ``doc`` (bench/results/failover.json) to ``out``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    panels = [(c, doc["cases"][c]) for c in CASES if (doc["cases"].get(c) or {}).get("timeline")]
    if not panels:
        return None
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.2 * len(panels)), squeeze=False)
    for ax, (case, res) in zip(axes[:, 0], panels, strict=True):
        rows = res["timeline"]
        for node, colour in COLOURS.items():
            xs = [r[0] * 1e3 for r in rows if r[2] == node]
            ys = [r[1] * 1e3 for r in rows if r[2] == node]
            if xs:
                ax.scatter(xs, ys, s=3, color=colour, label=node)
        lost = [r[0] * 1e3 for r in rows if r[1] is None]
        if lost:
            ax.scatter(lost, [0.0] * len(lost), s=12, marker="x", color="red", label="lost")
        ax.axvline(0.0, color="grey", linewidth=0.8, linestyle="--")
        system, what = LABELS[case]
        ax.set_title(f"{system}: {what}", fontsize=9)
        ax.set_ylabel("RTT (ms)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(loc="upper right", fontsize=7, markerscale=3)
    axes[-1, 0].set_xlabel("time since the fault (ms); probes every 2 ms", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json", nargs="?", type=Path, default=Path("bench/results/failover.json"))
    ap.add_argument("--out", type=Path, default=Path("bench/results/failover.png"))
    args = ap.parse_args(argv)
    png = plot_failover(json.loads(args.json.read_text()), args.out)
    if png is None:
        print("no PNG: matplotlib missing (pip install -e '.[bench]') or no timelines")
        return 1
    print(png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
