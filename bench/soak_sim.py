"""Which gossip knob makes the soak pass? The soak's conditions in the gossip simulator.

``python -m bench.soak_sim [--seconds 60] [--seeds 3] [--loss 0.19] [--jitter 0.01]``.
The lab soak (bench/soak.py) shows *that* the ``fast`` preset moves IPs under 10 % loss per
link and a busy CPU; this isolates *why*, deterministically: three members of our engine in
``gossip.sim`` (virtual time, seeded), every packet between two members lost with
probability ``--loss`` (0.19 = 10 % on each of the two links it crosses) and delayed by
up to ``--jitter`` seconds (what a CPU-starved event loop adds), for ``--seconds``; counted:
members wrongly declared dead (each one is an IP moving in the speaker). Then one member
crashes and the time until every survivor declares it dead is the price of the setting.
Variants are ``fast()`` with overrides; streams (the TCP fallback) are lossless here, so
the simulator is, if anything, kinder than the lab.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import statistics
import sys
from pathlib import Path
from typing import Any

from gossip.config import fast
from gossip.sim.cluster import SimCluster
from gossip.sim.network import LinkSpec

RESULTS = Path(__file__).resolve().parent / "results"

VARIANTS: dict[str, dict[str, Any]] = {
    "fast (shipped)": {},
    "fast, dead_after_confirmations=0": {"dead_after_confirmations": 0},
    "fast, probe_timeout=20ms": {"probe_timeout": 0.02},
    "fast, suspicion_mult=6": {"suspicion_mult": 6},
    "fast, suspicion_max_timeout_mult=6": {"suspicion_max_timeout_mult": 6},
    "fast, awareness_max_multiplier=8": {"awareness_max_multiplier": 8},
    "fast, probe 50ms/25ms": {"probe_interval": 0.05, "probe_timeout": 0.025},
    "fast, probe 100ms/50ms": {"probe_interval": 0.1, "probe_timeout": 0.05},
    "fast, probe 100ms/50ms, dead_after_confirmations=0": {
        "probe_interval": 0.1,
        "probe_timeout": 0.05,
        "dead_after_confirmations": 0,
    },
    "fast, all of: dac=0, probe 50/25ms, awareness 8": {
        "dead_after_confirmations": 0,
        "probe_interval": 0.05,
        "probe_timeout": 0.025,
        "awareness_max_multiplier": 8,
    },
}


def one(overrides: dict[str, Any], seed: int, seconds: float, link: LinkSpec) -> dict[str, Any]:
    """False failures over ``seconds`` of a healthy 3-member cluster, then crash detection."""
    cluster = SimCluster(3, functools.partial(fast, **overrides), seed, link=link)
    cluster.observer.record_trace = False
    cluster.join_all()
    cluster.run_for(2.0)
    failed0 = len(cluster.observer.failed)
    suspected0 = len(cluster.observer.suspected)
    cluster.run_for(seconds)
    false_failures = len(cluster.observer.failed) - failed0
    suspicions = len(cluster.observer.suspected) - suspected0
    return {"false_failures": false_failures, "suspicions": suspicions}


def detection(overrides: dict[str, Any], seed: int) -> float | None:
    """Seconds from a member's crash until both survivors declare it dead (clean network)."""
    cluster = SimCluster(3, functools.partial(fast, **overrides), seed)
    cluster.observer.record_trace = False
    cluster.join_all()
    cluster.run_for(2.0)
    victim = cluster.nodes[0].name
    t0 = cluster.now
    cluster.crash(0)

    def seen() -> list[float]:
        return sorted(t - t0 for t, _obs, m in cluster.observer.failed if m == victim and t >= t0)

    cluster.run_until(lambda: len(seen()) >= 2, limit=30.0)
    times = seen()
    return times[1] if len(times) >= 2 else None


def sweep(seconds: float, seeds: int, loss: float, jitter: float) -> list[dict[str, Any]]:
    link = LinkSpec(latency=0.0005, jitter=jitter, loss=loss)
    rows = []
    for name, overrides in VARIANTS.items():
        runs = [one(overrides, seed, seconds, link) for seed in range(1, seeds + 1)]
        found = [detection(overrides, seed) for seed in range(1, 4 * seeds + 1)]
        detects = [d for d in found if d is not None]
        rows.append(
            {
                "variant": name,
                "overrides": overrides,
                "false_failures_per_min": sum(r["false_failures"] for r in runs)
                / (seeds * seconds / 60.0),
                "suspicions_per_min": sum(r["suspicions"] for r in runs) / (seeds * seconds / 60.0),
                "crash_detect_median_s": statistics.median(detects) if detects else None,
                "crash_detect_s": found,
                "runs": runs,
            }
        )
        row = rows[-1]
        med = row["crash_detect_median_s"]
        print(
            f"{name:<52} false failures/min {row['false_failures_per_min']:7.1f}  "
            f"suspicions/min {row['suspicions_per_min']:7.1f}  crash detected by all in "
            f"{'-' if med is None else f'{med * 1e3:.0f} ms'}",
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--loss", type=float, default=0.19)
    ap.add_argument("--jitter", type=float, default=0.01)
    ap.add_argument("--out", type=Path, default=RESULTS / "soak_sim.json")
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)  # the engine logs every TCP-fallback probe
    rows = sweep(args.seconds, args.seeds, args.loss, args.jitter)
    doc = {"loss": args.loss, "jitter": args.jitter, "seconds": args.seconds, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
