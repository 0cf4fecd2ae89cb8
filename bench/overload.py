"""Overload: how many fast-preset speakers the 2-core lab sustains, what each costs, where
its CPU goes, and how fast a stalled cluster comes back to one view (issue 11, item 10).

    python -m bench.overload [--sizes 3,6,10,16] [--starts simultaneous,staggered]
        [--seconds 30] [--realtime-priority 0] [--profile] [--out bench/results/overload.json]

For each size N and start mode: N speakers (fast preset, 20 service IPs, every node joining
through node1, as the issue's setup) start at once or one second apart. After the last
start the run waits for one view (every speaker sees all N alive and every IP has one
owner), then measures for `--seconds`: CPU per speaker (utime+stime from /proc), "member
failed" log lines per minute, and whether the view held. Then every speaker is stopped for
2 s (SIGSTOP, a cluster-wide stall) and the time back to one view is measured. With
`--profile`, py-spy samples one speaker for 20 s of steady state and the report splits its
samples into the gossip engine, the runtime and loop, logging, the plan, and the rest.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.failover import source_version
from l2agent.lab.netns import CLIENT, Lab
from l2agent.lab.speakers import GOSSIP_PORT, METRICS_PORT, LabSpeakers
from l2agent.lab.topology import vip

RESULTS = Path(__file__).resolve().parent / "results"
VIPS = [vip(i, 4) for i in range(20)]
_CLK = os.sysconf("SC_CLK_TCK")

_VIEW = r"""
import json, sys, urllib.request, concurrent.futures as cf
urls = sys.argv[1:]
def get(u):
    try:
        return json.loads(urllib.request.urlopen(u + "/status", timeout=2).read())
    except Exception:
        return None
with cf.ThreadPoolExecutor(16) as ex:
    docs = list(ex.map(get, urls))
print(json.dumps(docs))
"""


def config_text(nodes: int) -> str:
    """N Node objects, one pool, one advertisement, 20 single-IP Services."""
    docs = [
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p, namespace: m}"
        "\nspec: {addresses: [192.0.2.200-192.0.2.249]}",
        "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: a, namespace: m}"
        "\nspec: {ipAddressPools: [p]}",
    ]
    docs += [
        f"apiVersion: v1\nkind: Node\nmetadata: {{name: node{i}}}" for i in range(1, nodes + 1)
    ]
    docs += [
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: d, annotations: "
        f"{{metallb.io/loadBalancerIPs: {ip}}}}}\n"
        "spec: {type: LoadBalancer, ports: [{port: 80}]}"
        for i, ip in enumerate(VIPS)
    ]
    return "\n---\n".join(docs) + "\n"


class Cluster(LabSpeakers):
    """Every speaker joins through node1 only (node1 joins nobody)."""

    def speaker_argv(self, node: str) -> list[str]:
        argv = super().speaker_argv(node)
        out: list[str] = []
        skip = False
        for arg in argv:
            if skip:
                skip = False
                continue
            if arg == "--join":
                skip = True
                continue
            out.append(arg)
        if node != "node1":
            out += ["--join", f"{self.address('node1')}:{GOSSIP_PORT}"]
        return out

    def view(self) -> list[dict[str, Any] | None]:
        urls = [f"http://{self.address(n)}:{METRICS_PORT}" for n in self.speakers]
        out = self.lab.exec(CLIENT, [sys.executable, "-c", _VIEW, *urls], timeout=20)
        return list(json.loads(out))

    def one_view(self) -> bool:
        nodes = set(self.speakers)
        owners: dict[str, int] = collections.Counter()
        for doc in self.view():
            if doc is None:
                return False
            alive = {m["name"] for m in doc["members"] if m["state"] == "alive"}
            if alive != nodes:
                return False
            for row in doc["ownership"]:
                if row["announcing"]:
                    owners[row["ip"]] += 1
        return all(owners.get(str(ip), 0) == 1 for ip in VIPS)

    def cpu_seconds(self) -> dict[str, float]:
        out = {}
        for node, proc in self.speakers.items():
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[node] = (int(fields[11]) + int(fields[12])) / _CLK
        return out

    def failed_lines(self) -> int:
        return sum(self.log_text(n).count(" failed") for n in self.speakers)


def _wait_view(cluster: Cluster, timeout: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cluster.one_view():
            return time.monotonic() - start
        time.sleep(0.5)
    return None


def run_one(size: int, start: str, args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="l2overload-"))
    config = workdir / "cluster.yaml"
    config.write_text(config_text(size))
    extra = ("--realtime-priority", str(args.realtime_priority))
    result: dict[str, Any] = {"size": size, "start": start}
    with Lab(size, vips=VIPS) as lab:
        cluster = Cluster(lab, config, extra=extra, workdir=workdir)
        try:
            for node in lab.node_names:
                cluster.start_echo(node)
            for node in lab.node_names:
                cluster.start(node)
                if start == "staggered":
                    time.sleep(1.0)
            result["converged_after_s"] = _wait_view(cluster, args.converge_timeout)
            cpu0, lines0, t0 = cluster.cpu_seconds(), cluster.failed_lines(), time.monotonic()
            profile = _profile(cluster, args) if args.profile else None
            time.sleep(max(0.0, args.seconds - (time.monotonic() - t0)))
            cpu1, lines1, t1 = cluster.cpu_seconds(), cluster.failed_lines(), time.monotonic()
            wall = t1 - t0
            per = sorted(100 * (cpu1[n] - cpu0[n]) / wall for n in cpu0)
            result.update(
                cpu_percent_median=per[len(per) // 2],
                cpu_percent_max=per[-1],
                cpu_percent_total=sum(per),
                failed_lines_per_minute=60 * (lines1 - lines0) / wall,
                one_view_at_end=cluster.one_view(),
            )
            if profile is not None:
                result["profile"] = profile
            result["recovery_after_stall_s"] = _stall_and_recover(cluster, args)
        finally:
            cluster.close()
    shutil.rmtree(workdir, ignore_errors=True)
    result["sustained"] = bool(
        result.get("converged_after_s") is not None
        and result.get("one_view_at_end")
        and result.get("failed_lines_per_minute", 1) == 0
    )
    return result


def _stall_and_recover(cluster: Cluster, args: argparse.Namespace) -> float | None:
    procs = list(cluster.speakers.values())
    for proc in procs:
        os.kill(proc.pid, signal.SIGSTOP)
    time.sleep(2.0)
    for proc in procs:
        os.kill(proc.pid, signal.SIGCONT)
    return _wait_view(cluster, args.converge_timeout)


_BUCKETS = (
    ("gossip engine", ("gossip/engine.py", "gossip/probing.py", "gossip/members.py",
                       "gossip/broadcast.py", "gossip/_wire.py", "gossip/framing.py",
                       "gossip/codec.py", "gossip/keyring.py", "gossip/streams.py",
                       "gossip/stream_parser.py", "gossip/push_pull.py", "gossip/probe.py",
                       "gossip/admission.py", "gossip/violations.py", "gossip/suspicion.py",
                       "gossip/scaling.py", "gossip/_lzw.py")),
    ("gossip runtime (aio)", ("gossip/aio/",)),
    ("logging", ("logging/", "l2agent/logs.py")),
    ("plan and election", ("l2agent/plan.py", "l2agent/election.py", "l2agent/allocator.py",
                           "l2agent/service_ips.py")),
    ("speaker", ("l2agent/speaker/",)),
    ("data plane", ("l2agent/responder/", "l2agent/announce/", "l2agent/interfaces/")),
    ("metrics and HTTP", ("prometheus_client/", "l2agent/metrics.py", "l2agent/health.py")),
    ("asyncio loop", ("asyncio/", "selectors.py")),
)  # fmt: skip


def _profile(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any] | None:
    """py-spy samples node1's speaker for 20 s; samples by innermost project frame."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return None
    out = cluster.workdir / "profile.txt"
    pid = cluster.speakers["node1"].pid
    subprocess.run(
        [spy, "record", "--pid", str(pid), "--duration", "20", "--rate", "200",
         "--format", "raw", "--output", str(out), "--nonblocking"],
        check=False, capture_output=True, timeout=60,
    )  # fmt: skip
    if not out.exists():
        return None
    counts: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = stack.split(";")
        total += int(n)
        counts[_bucket(frames)] += int(n)
        leaves[frames[-1][:120]] += int(n)
    return {
        "samples": total,
        "share_percent": {k: round(100 * v / max(total, 1), 1) for k, v in counts.most_common()},
        "top_leaves": [(k, round(100 * v / max(total, 1), 1)) for k, v in leaves.most_common(12)],
    }


def _bucket(frames: list[str]) -> str:
    """The bucket of the innermost frame that belongs to one (idle waits count as idle)."""
    if any("select" in f and "selectors.py" in f for f in frames[-2:]):
        return "idle (epoll wait)"
    for frame in reversed(frames):
        for name, marks in _BUCKETS:
            if any(m in frame for m in marks):
                return name
    return "other"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="3,6,10,16")
    ap.add_argument("--starts", default="simultaneous,staggered")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--converge-timeout", type=float, default=60.0)
    ap.add_argument("--realtime-priority", type=int, default=0)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS / "overload.json")
    args = ap.parse_args(argv)
    runs = []
    for size in (int(s) for s in args.sizes.split(",")):
        for start in args.starts.split(","):
            result = run_one(size, start, args)
            print(json.dumps(result), flush=True)
            runs.append(result)
    report = {
        "source": source_version(),
        "preset": "fast",
        "realtime_priority": args.realtime_priority,
        "service_ips": len(VIPS),
        "cpus": os.cpu_count(),
        "runs": runs,
        "largest_sustained": {
            start: max(
                (r["size"] for r in runs if r["start"] == start and r["sustained"]), default=0
            )
            for start in args.starts.split(",")
        },
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    return 0


def _cell(value: Any, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def markdown(report: dict[str, Any]) -> str:
    """The report as a table: one row per size and start mode."""
    lines = [
        "# Overload: fast-preset speakers on the 2-core lab (issue 11, item 10)",
        "",
        "Generated by `python -m bench.overload` (see its docstring for the command). "
        f"{report['service_ips']} service IPs, every node joining through node1, "
        f"realtime priority {report['realtime_priority']}, {report['cpus']} CPUs. "
        "Columns: seconds from the last start to one view (every speaker sees all N alive, "
        "every IP one owner: the recovery from the start-up storm), CPU per speaker "
        "(median and max, % of one core) and all speakers together in steady state, "
        "'member failed' lines per minute, one view at the end, seconds back to one view "
        "after every speaker was stopped 2 s at once (SIGSTOP/SIGCONT).",
        "",
        "| N | start | one view after (s) | CPU/speaker median % | max % | total % "
        "| failed/min | one view at end | back after 2 s stall (s) | sustained |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["runs"]:
        lines.append(
            f"| {r['size']} | {r['start']} | {_cell(r.get('converged_after_s'))} "
            f"| {_cell(r.get('cpu_percent_median'))} | {_cell(r.get('cpu_percent_max'))} "
            f"| {_cell(r.get('cpu_percent_total'))} "
            f"| {_cell(r.get('failed_lines_per_minute'), '{:.0f}')} "
            f"| {r.get('one_view_at_end', '-')} | {_cell(r.get('recovery_after_stall_s'))} "
            f"| {r['sustained']} |"
        )
    lines += ["", f"Largest sustained: {report['largest_sustained']}", ""]
    for r in report["runs"]:
        if r.get("profile"):
            lines += [f"Profile of node1 at N={r['size']} ({r['start']}):", "",
                      *(f"- {k}: {v} %" for k, v in r["profile"]["share_percent"].items()),
                      ""]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
