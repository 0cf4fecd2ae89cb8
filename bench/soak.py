"""Soak: a healthy cluster under packet loss and a busy CPU must never move an IP.

``python -m bench.soak [--minutes 10] [--loss 0.1] [--extra "--gossip-preset fast"]
[--out bench/results/soak.json] [--privileges daemonset|root]`` (root, iproute2, iptables,
setpriv). ``make soak`` runs 10 minutes; tests/e2e/test_soak.py runs one minute in CI. The
speakers hold exactly the shipped DaemonSet's capabilities unless ``--privileges root``.

Three speakers (shipped defaults unless ``--extra``) on the demo config settle to one owner
per IP. Then, for the whole soak:

- every node namespace drops each packet at random with probability ``--loss`` on its way
  in and again on its way out (``iptables``/``ip6tables -m statistic --mode random`` on
  INPUT and OUTPUT, loopback exempt so the speaker's own /metrics stays readable). That is
  10 % loss on each node's link in each direction; a packet between two nodes crosses two
  such links, so node-to-node loss is 1 - 0.9² = 19 %. (The kernel has no netem here.)
  ARP/NS are not IP and pass unharmed; gossip (UDP and TCP) is what suffers;
- one CPU burner process per core (tracked and killed by PID).

Measured from each speaker's /metrics (deltas over the soak): ``l2agent_ownership_changes``
(must stay 0), gossip suspicions raised and refuted, members declared dead; from the
speaker logs: "member X failed" / "suspected" lines (false, since nothing failed).
The exit status is 1 when any ownership changed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench._privileges import PRIVILEGES, daemonset_wrapper, process_privileges
from bench.failover import source_version
from l2agent.lab.netns import CLIENT, Lab, tools_missing
from l2agent.lab.speakers import LabSpeakers
from l2agent.lab.topology import vip
from l2agent.static import demo_config_path

log = logging.getLogger(__name__)

RESULTS = Path(__file__).resolve().parent / "results"
LAB_VIPS = [vip(0, 4), vip(0, 6), vip(1, 4)]

COUNTERS = {
    "ownership_changes": "l2agent_ownership_changes",
    "suspicions_raised": "l2agent_gossip_suspicions_raised",
    "suspicions_refuted": "l2agent_gossip_suspicions_refuted",
    "member_failures": "l2agent_gossip_member_failures",
}

_FAILED = re.compile(r"member \S+ failed")
_SUSPECTED = re.compile(r"member \S+ suspected by")
_OWNERSHIP = re.compile(r"(stopped announcing|announcing) \S+")


def counters(metrics_text: str) -> dict[str, float]:
    """Our soak counters from one /metrics page (every label summed; 0 when absent)."""
    totals = dict.fromkeys(COUNTERS, 0.0)
    by_family = {family: key for key, family in COUNTERS.items()}
    for family in text_string_to_metric_families(metrics_text):
        key = by_family.get(family.name)
        if key is None:
            continue
        totals[key] += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return totals


def log_counts(text: str) -> dict[str, int]:
    """False-failure evidence in a speaker log (lines after the soak started)."""
    return {
        "failed_lines": len(_FAILED.findall(text)),
        "suspected_lines": len(_SUSPECTED.findall(text)),
        "ownership_lines": len(_OWNERSHIP.findall(text)),
    }


def _loss_rules(probability: float) -> list[list[str]]:
    match = ["-m", "statistic", "--mode", "random", "--probability", f"{probability:g}"]
    rules = []
    for tool in ("iptables", "ip6tables"):
        rules.append([tool, "-w", "-A", "INPUT", "!", "-i", "lo", *match, "-j", "DROP"])
        rules.append([tool, "-w", "-A", "OUTPUT", "!", "-o", "lo", *match, "-j", "DROP"])
    return rules


def dropped_packets(listing: str) -> int:
    """Packets the DROP rules counted, from ``iptables -L -v -n -x`` output."""
    total = 0
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "DROP" and fields[0].isdigit():
            total += int(fields[0])
    return total


def _dropped(lab: Lab, node: str) -> int:
    return sum(
        dropped_packets(lab.exec(node, [tool, "-w", "-L", "-v", "-n", "-x"]))
        for tool in ("iptables", "ip6tables")
    )


def _snapshot(sp: LabSpeakers) -> dict[str, dict[str, float]]:
    out = {}
    for node in sp.lab.node_names:
        text = sp.fetch(node, "/metrics", timeout=5.0)
        if text is None:
            raise RuntimeError(f"{node}: /metrics unreadable")
        out[node] = counters(text)
    return out


def run_soak(
    minutes: float,
    loss: float = 0.1,
    extra: tuple[str, ...] = (),
    workdir: Path | None = None,
    privileges: str = "daemonset",
) -> dict[str, Any]:
    """Run the soak and return its report (see the module docstring)."""
    missing = tools_missing("ip", "iptables", "ip6tables")
    if missing:
        raise RuntimeError(f"the soak needs {', '.join(missing)} (scripts/install-deps.sh)")
    work = workdir or Path(tempfile.mkdtemp(prefix="l2soak-"))
    with Lab(3, vips=LAB_VIPS) as lab:
        wrapper = daemonset_wrapper() if privileges == "daemonset" else []
        sp = LabSpeakers(lab, demo_config_path(), workdir=work, extra=extra, wrapper=wrapper)
        burners = []
        try:
            sp.start_all()
            owners_before = sp.wait_owners([str(v) for v in LAB_VIPS], timeout=60)
            time.sleep(2.0)  # let the join-time gossip settle before the baseline
            held = {n: process_privileges(p.pid) for n, p in sp.speakers.items()}
            before = _snapshot(sp)
            log_offsets = {n: len(sp.log_text(n)) for n in lab.node_names}
            for node in lab.node_names:
                for rule in _loss_rules(loss):
                    lab.exec(node, rule)
            for _ in range(os.cpu_count() or 1):
                burners.append(lab.spawn(CLIENT, [sys.executable, "-c", "while True: pass"]))
            started = time.monotonic()
            deadline = started + minutes * 60.0
            while time.monotonic() < deadline:
                time.sleep(min(10.0, max(0.0, deadline - time.monotonic())))
                alive = [n for n, p in sp.speakers.items() if p.poll() is None]
                if len(alive) != len(lab.node_names):
                    raise RuntimeError(f"a speaker exited during the soak (alive: {alive})")
            soaked = time.monotonic() - started
            for proc in burners:
                lab.stop(proc)
            burners.clear()
            after = _snapshot(sp)  # loopback is exempt from the loss rules
            owners_after = {ip: sorted(n) for ip, n in sp.owners().items()}
            per_node: dict[str, Any] = {}
            for node in lab.node_names:
                delta = {k: after[node][k] - before[node][k] for k in COUNTERS}
                text = sp.log_text(node)[log_offsets[node] :]
                per_node[node] = {**delta, **log_counts(text), "dropped": _dropped(lab, node)}
        finally:
            for proc in burners:
                lab.stop(proc)
            sp.close()
    total = {k: sum(v[k] for v in per_node.values()) for k in next(iter(per_node.values()))}
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": source_version(),
        "minutes": round(soaked / 60.0, 2),
        "loss_per_link_direction": loss,
        "cpu_burners": os.cpu_count() or 1,
        "speaker_extra_args": list(extra),
        "speaker_privileges": {"mode": privileges, "wrapper": wrapper, "held": held},
        "owners_before": owners_before,
        "owners_after": owners_after,
        "per_node": per_node,
        "total": total,
        "ownership_changes": total["ownership_changes"],
        "passed": total["ownership_changes"] == 0,
        "logs": str(work),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--loss", type=float, default=0.1, help="drop probability per direction")
    ap.add_argument("--extra", default="", help="more speaker arguments, shell-quoted")
    ap.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    ap.add_argument(
        "--privileges",
        choices=PRIVILEGES,
        default="daemonset",
        help="daemonset (default): exactly deploy/speaker.yaml's capabilities; root: all",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    report = run_soak(
        args.minutes, args.loss, tuple(shlex.split(args.extra)), privileges=args.privileges
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    t = report["total"]
    print(
        f"soak {report['minutes']} min, {args.loss:.0%} loss per link direction, CPU busy: "
        f"ownership changes {t['ownership_changes']:g}, suspicions {t['suspicions_raised']:g} "
        f"(refuted {t['suspicions_refuted']:g}), members declared dead "
        f"{t['member_failures']:g}; log lines failed={t['failed_lines']} "
        f"suspected={t['suspected_lines']}  -> {'PASS' if report['passed'] else 'FAIL'}"
    )
    print(f"report: {args.out}; speaker logs: {report['logs']}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
