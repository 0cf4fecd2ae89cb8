"""Failover benchmark: l2agent against keepalived VRRP and the Go memberlist, same lab, same run.

``python -m bench.failover [--trials 20] [--cases ...] [--out-dir bench/results]
[--privileges daemonset|root]`` (root, iproute2, setpriv; keepalived and Go are optional,
their cases are skipped with a reason). The l2agent speakers run with exactly the shipped
DaemonSet's capabilities (``bench/_privileges.py``) unless ``--privileges root``. A client in
the lab probes a VIP over UDP every 2 ms; each node runs a UDP echo server that answers with
its node name, so every reply says which node got the packet.

What each case measures (seconds):

- ``l2agent link-down``: the owner's switch port goes down (a pulled cable). The client's
  outage: last reply from the old owner to the first from the new one (``prober.outage``).
- ``l2agent SIGKILL``: the owner's speaker is killed; the node stays up with the VIP on
  ``kube-ipvs0`` and its echo server running, so the client's traffic still reaches the old
  node and the client loses nothing. The figure is therefore the *takeover time*: from the
  kill to the first reply by the new owner (gossip detection + gratuitous ARP); the lost
  probes column shows what the client actually lost (expected 0).
- ``l2agent SIGTERM``: planned handover; the outage as for link-down (expected about one
  probe interval) and the lost probes (expected 0).
- ``l2agent rolling restart``: SIGTERM and restart every speaker in turn (waiting for the
  cluster to settle each time); the figure is the longest gap between two consecutive
  replies across the whole roll, and the lost probes of the whole roll.
- ``keepalived``: VRRP on the nodes' eth0 (default ``advert_int 1``, VRRPv2; tuned VRRPv3
  ``advert_int 0.1``); failure = link cut of the MASTER; outage as for link-down.
- ``Go memberlist``: three ``tests/gopeer`` members with ``DefaultLANConfig`` (MetalLB's
  settings) in the node namespaces; failure = link cut; the figure is the failure
  *detection* time: from the cut to the first surviving member reporting it dead (MetalLB's
  lower bound: its speaker cannot react sooner). The time until the last survivor reports it
  is in the JSON.

Between trials the lab returns to a steady state: link restored, speaker restarted, one owner
per IP as in the first steady state, the client's neighbour cache flushed (so every trial
starts from a fresh resolution of the VIP).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import logging
import platform
import queue
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from bench._cases import CASES, LABELS, NOTES, RATIO_CASES
from bench._keepalived import KEEPALIVED_VIP, Keepalived
from bench._privileges import PRIVILEGES, daemonset_wrapper, process_privileges
from bench._stats import Row, summarize
from l2agent.lab.netns import Lab, tools_missing
from l2agent.lab.prober import Probe, outage
from l2agent.lab.speakers import LabSpeakers
from l2agent.lab.topology import vip
from l2agent.static import demo_config_path

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"

V4 = str(vip(0, 4))
LAB_VIPS = [vip(0, 4), vip(0, 6), vip(1, 4)]
"""The demo config's service IPs (l2agent/data/demo.yaml), on every node's kube-ipvs0."""

MEMBERLIST_FLAGS = {
    "memberlist-lan": {"preset": "lan"},
    # DefaultLANConfig with 100 ms probes (50 ms ack wait): what tuning memberlist alone buys.
    "memberlist-tuned": {"preset": "lan", "probe_interval": "100ms", "probe_timeout": "50ms"},
}

WARMUP = 0.8
"""Seconds of probing before the fault (the old owner must have answered)."""


@dataclass
class Trial:
    """One trial's measurement (seconds) plus what the client lost and the plot data."""

    value: float | None
    lost: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    timeline: list[list[Any]] | None = None
    error: str | None = None


# -- probe arithmetic (pure) ----------------------------------------------------------------


def last_before(probes: Sequence[Probe], t: float) -> str | None:
    """The node that answered last before ``t``."""
    answered = [p for p in probes if p.replied is not None and p.replied <= t]
    return max(answered, key=lambda p: p.replied or 0.0).node if answered else None


def first_other_after(probes: Sequence[Probe], node: str, t: float) -> Probe | None:
    """The first reply after ``t`` from a node other than ``node``."""
    later = [p for p in probes if p.replied is not None and p.replied > t and p.node != node]
    return min(later, key=lambda p: p.replied or 0.0) if later else None


def longest_gap(probes: Sequence[Probe]) -> float:
    """The longest time between two consecutive replies (what a client feels as an outage)."""
    times = sorted(p.replied for p in probes if p.replied is not None)
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def timeline(probes: Sequence[Probe], t0: float, before: float, after: float) -> list[list[Any]]:
    """Probes sent within [t0-before, t0+after], as [sent-t0, rtt or None, node] for the plot."""
    return [
        [
            round(p.sent - t0, 6),
            None if p.replied is None else round(p.replied - p.sent, 6),
            p.node,
        ]
        for p in probes
        if t0 - before <= p.sent <= t0 + after
    ]


def client_outage(probes: Sequence[Probe], t_fault: float) -> Trial:
    """Outage around a fault at ``t_fault``: old = last to answer before, new = next other."""
    old = last_before(probes, t_fault)
    if old is None:
        return Trial(None, error="no reply before the fault")
    nxt = first_other_after(probes, old, t_fault)
    if nxt is None:
        return Trial(None, error=f"nobody but {old} answered after the fault")
    assert nxt.node is not None
    seen = outage(probes, old, nxt.node)
    if seen is None:
        return Trial(None, error="no outage window")
    return Trial(
        seen.seconds,
        lost=seen.lost,
        extra={"old": old, "new": nxt.node, "takeover": seen.first_new - t_fault},
        timeline=timeline(probes, t_fault, 0.2, seen.first_new - t_fault + 0.3),
    )


# -- l2agent ------------------------------------------------------------------------------


class L2agentBench:
    """Three speakers with shipped defaults (plus ``extra`` arguments) on the demo config."""

    def __init__(
        self, lab: Lab, workdir: Path, extra: Sequence[str] = (), wrapper: Sequence[str] = ()
    ) -> None:
        self.lab = lab
        self.sp = LabSpeakers(
            lab, demo_config_path(), workdir=workdir, extra=extra, wrapper=wrapper
        )
        self.ips = [str(v) for v in LAB_VIPS]
        self.steady: dict[str, str] = {}

    def start(self) -> None:
        self.sp.start_all()
        self.steady = self.sp.wait_owners(self.ips, timeout=60)
        log.info("l2agent steady state: %s", self.steady)

    def settle(self, timeout: float = 60.0) -> None:
        """Wait for the first steady state again: every speaker up, the same single owners."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            owners = self.sp.owners()
            if {ip: owners.get(ip, set()) for ip in self.ips} == {
                ip: {n} for ip, n in self.steady.items()
            } and all(self.sp.status(n) is not None for n in self.sp.speakers):
                self.lab.flush_neighbours()
                return
            time.sleep(0.2)
        raise TimeoutError(f"l2agent did not settle back to {self.steady}")

    def link_down(self) -> Trial:
        owner = self.steady[V4]
        prober = self.sp.probe(V4, duration=WARMUP + 2.5)
        time.sleep(WARMUP)
        t_fault = time.monotonic()
        self.lab.cut_link(owner)
        try:
            return client_outage(self.sp.probes(prober), t_fault)
        finally:
            self.lab.restore_link(owner)
            self.settle()

    def sigkill(self) -> Trial:
        owner = self.steady[V4]
        prober = self.sp.probe(V4, duration=WARMUP + 2.5)
        time.sleep(WARMUP)
        t_fault = time.monotonic()
        self.sp.kill(owner)
        try:
            probes = self.sp.probes(prober)
            nxt = first_other_after(probes, owner, t_fault)
            if nxt is None or nxt.replied is None:
                return Trial(None, error="no new owner answered")
            seen = outage(probes, owner, nxt.node or "")
            lost = sum(1 for p in probes if p.replied is None and p.sent >= t_fault - 0.1)
            return Trial(
                nxt.replied - t_fault,
                lost=lost,
                extra={
                    "old": owner,
                    "new": nxt.node,
                    "client_gap": None if seen is None else seen.seconds,
                },
                timeline=timeline(probes, t_fault, 0.2, nxt.replied - t_fault + 0.3),
            )
        finally:
            self.sp.start(owner)
            self.settle()

    def sigterm(self) -> Trial:
        owner = self.steady[V4]
        prober = self.sp.probe(V4, duration=WARMUP + 3.0)
        time.sleep(WARMUP)
        t_fault = time.monotonic()
        self.sp.terminate(owner)
        try:
            return client_outage(self.sp.probes(prober), t_fault)
        finally:
            self.sp.start(owner)
            self.settle()

    def rolling(self) -> Trial:
        prober = self.sp.probe(V4, duration=600.0)
        time.sleep(WARMUP)
        t_start = time.monotonic()
        try:
            for node in self.lab.node_names:
                self.sp.terminate(node)
                self.sp.start(node)
                self._settle_quietly()
        finally:
            time.sleep(0.3)
            prober.terminate()
        probes = self.sp.probes(prober)
        window = [p for p in probes if p.sent >= t_start - 0.05]
        lost = sum(1 for p in window if p.replied is None)
        roll = time.monotonic() - t_start
        return Trial(
            longest_gap(window),
            lost=lost,
            extra={"roll_seconds": roll, "probes": len(window)},
            timeline=timeline(probes, t_start, 0.2, roll),
        )

    def _settle_quietly(self) -> None:
        """Like ``settle`` but keeps the client's neighbour cache (traffic is flowing)."""
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            owners = self.sp.owners()
            if {ip: owners.get(ip, set()) for ip in self.ips} == {
                ip: {n} for ip, n in self.steady.items()
            }:
                return
            time.sleep(0.2)
        raise TimeoutError("rolling restart: the cluster did not settle")

    def close(self) -> None:
        self.sp.close()


# -- keepalived ---------------------------------------------------------------------------


class KeepalivedBench:
    """VRRP on eth0 of every node; node1 is the preferred MASTER."""

    def __init__(self, lab: Lab, workdir: Path, advert_int: float, version: int, vrid: int):
        self.lab = lab
        self.ka = Keepalived(lab, workdir, advert_int, version, vrid)
        self.echo = LabSpeakers(lab, demo_config_path(), workdir=workdir)
        self.master = lab.node_names[0]

    def start(self) -> None:
        for node in self.lab.node_names:  # as LabSpeakers.start_echo, minus the banner
            argv = [sys.executable, "-m", "l2agent.lab.echo", "--name", node]
            self.echo.echoes[node] = self.lab.spawn(node, argv, stdout=subprocess.DEVNULL)
        self.ka.start_all()
        if not self.ka.wait_master(self.master, timeout=30):
            raise TimeoutError(f"keepalived: {self.master} never became the only MASTER")
        self.lab.flush_neighbours()

    def link_down(self) -> Trial:
        prober = self.echo.probe(KEEPALIVED_VIP, duration=WARMUP + 3 * self.ka.advert_int + 2.0)
        time.sleep(WARMUP)
        t_fault = time.monotonic()
        self.lab.cut_link(self.master)
        try:
            return client_outage(self.echo.probes(prober), t_fault)
        finally:
            self.lab.restore_link(self.master)
            # The cut MASTER never stopped being MASTER; the backup that took over yields
            # to the higher priority once adverts flow again.
            if not self.ka.wait_master(self.master, timeout=30):
                raise TimeoutError("keepalived did not return to one MASTER")
            time.sleep(3 * self.ka.advert_int + 0.2)
            self.lab.flush_neighbours()

    def close(self) -> None:
        self.ka.close()
        self.echo.close()


# -- Go memberlist ------------------------------------------------------------------------


def _gopeer_module() -> ModuleType:
    """tests/helpers/gopeer.py (builds the Go member against Debian's memberlist)."""
    path = REPO / "tests" / "helpers" / "gopeer.py"
    spec = importlib.util.spec_from_file_location("_bench_gopeer", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


class MemberlistBench:
    """Three Go members (``-preset lan`` = DefaultLANConfig) in the node namespaces."""

    def __init__(self, lab: Lab, flags: dict[str, str] | None = None) -> None:
        self.lab = lab
        self.gp = _gopeer_module()
        self.binary = self.gp.build_peer()
        self.flags = flags or {"preset": "lan"}
        self.members: dict[str, Any] = {}

    def _argv(self, node: str) -> list[str]:
        me = str(self.lab.nodes[node].ipv4)
        argv = ["ip", "netns", "exec", self.lab.netns(node), str(self.binary)]
        argv += ["-name", node, "-bind", me, "-port", "7946"]
        for key, value in self.flags.items():
            argv += [f"-{key.replace('_', '-')}", value]
        first = self.lab.node_names[0]
        if node != first:
            argv += ["-join", f"{self.lab.nodes[first].ipv4}:7946"]
        return argv

    def start(self, attempts: int = 3) -> None:
        """Start the members and wait until each has seen all join; retry a failed start."""
        for attempt in range(1, attempts + 1):
            try:
                self._start_once()
                return
            except AssertionError:
                self.stop()
                if attempt == attempts:
                    raise
                log.warning("memberlist start attempt %d failed; retrying", attempt)
                time.sleep(1.0)

    def _start_once(self) -> None:
        for node in self.lab.node_names:
            member = self.gp.JsonLinesProcess(self._argv(node))
            self.members[node] = member
            ready = member.wait_for(lambda e: e.get("event") in ("ready", "error"), timeout=20)
            if ready["event"] == "error":
                raise AssertionError(f"{node}: {ready}")
        names = set(self.lab.node_names)
        for member in self.members.values():
            member.wait_for(_joined(names, member), timeout=10)
        time.sleep(1.0)  # a few probe rounds in the steady state

    def stop(self) -> None:
        for member in self.members.values():
            member.close()
        self.members.clear()

    def trial(self, index: int) -> Trial:
        """Trial ``index`` cuts the nodes' links in turn."""
        return self.link_down(self.lab.node_names[index % len(self.lab.node_names)])

    def link_down(self, victim: str) -> Trial:
        try:
            self.start()
            for member in self.members.values():
                _drain(member)
            t_fault = time.monotonic()
            self.lab.cut_link(victim)
            others = {n: m for n, m in self.members.items() if n != victim}
            seen = _wait_dead(others, victim, timeout=60.0)
            if len(seen) < len(others):
                return Trial(None, error=f"only {sorted(seen)} reported {victim} dead in 60 s")
            times = sorted(t - t_fault for t in seen.values())
            return Trial(times[0], extra={"victim": victim, "all_reported": times[-1]})
        finally:
            self.stop()
            self.lab.restore_link(victim)
            time.sleep(0.5)  # carrier back before the next start joins through it


def _joined(names: set[str], member: Any) -> Callable[[dict[str, Any]], bool]:
    """A ``wait_for`` predicate: ``member`` has seen every name join (itself included)."""

    def pred(event: dict[str, Any]) -> bool:
        return names <= {e.get("node") for e in member.seen if e.get("event") == "join"}

    return pred


def _drain(member: Any) -> None:
    while True:
        try:
            member.seen.append(member.lines.get_nowait())
        except queue.Empty:
            return


def _wait_dead(members: dict[str, Any], victim: str, timeout: float) -> dict[str, float]:
    """Receipt time of each member's first "leave" (dead) event for ``victim``."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < len(members) and time.monotonic() < deadline:
        for name, member in members.items():
            if name in seen:
                continue
            try:
                event = member.lines.get(timeout=0.002)
            except queue.Empty:
                continue
            now = time.monotonic()
            member.seen.append(event)
            if event.get("event") == "leave" and event.get("node") == victim:
                seen[name] = now
    return seen


# -- the run ------------------------------------------------------------------------------


def source_version() -> str:
    """``git describe --always --dirty`` of the tree measured (or "unknown")."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def _trials(name: str, n: int, run: Callable[[int], Trial]) -> list[Trial]:
    out = []
    for i in range(n):
        try:
            trial = run(i)
        except Exception as exc:  # a trial that cannot finish is reported, not hidden
            log.exception("%s trial %d failed", name, i)
            trial = Trial(None, error=f"{type(exc).__name__}: {exc}")
        value = "-" if trial.value is None else f"{trial.value * 1e3:.1f} ms"
        print(f"  {name} #{i + 1}/{n}: {value} lost={trial.lost} {trial.error or ''}", flush=True)
        out.append(trial)
    return out


def _each(fn: Callable[[], Trial]) -> Callable[[int], Trial]:
    """A trial runner that ignores the trial index."""
    return lambda _i: fn()


def representative(trials: Sequence[Trial]) -> Trial | None:
    """The trial whose value is closest to the median (for the timeline plot)."""
    measured = [t for t in trials if t.value is not None]
    if not measured:
        return None
    s = summarize([t.value for t in measured if t.value is not None])
    assert s is not None
    return min(measured, key=lambda t: abs((t.value or 0.0) - s.median))


def case_result(name: str, trials: Sequence[Trial], skipped: str | None = None) -> dict[str, Any]:
    values = [t.value for t in trials if t.value is not None]
    s = summarize(values)
    rep = representative(trials)
    lost = [t.lost for t in trials if t.lost is not None]
    return {
        "case": name,
        "skipped": skipped,
        "summary": s.as_dict() if s else None,
        "lost_max": max(lost) if lost else None,
        "lost_total": sum(lost) if lost else None,
        "failed_trials": [t.error for t in trials if t.value is None],
        "trials": [{"value": t.value, "lost": t.lost, **t.extra} for t in trials],
        "timeline": rep.timeline if rep else None,
    }


def run(
    trials: int,
    cases: Sequence[str],
    workdir: Path,
    speaker_args: Sequence[str] = (),
    privileges: str = "daemonset",
) -> dict[str, Any]:
    results: dict[str, dict[str, Any]] = {}
    wrapper = daemonset_wrapper() if privileges == "daemonset" else []
    held: dict[str, Any] | None = None
    if tools_missing("ip"):
        raise SystemExit("the lab needs iproute2 (`ip`); run `make bench`, which installs it")
    with Lab(3, vips=LAB_VIPS) as lab:
        l2 = [c for c in cases if c.startswith("l2agent-")]
        if l2:
            bench = L2agentBench(lab, workdir / "l2agent", extra=speaker_args, wrapper=wrapper)
            (workdir / "l2agent").mkdir(parents=True, exist_ok=True)
            try:
                bench.start()
                bench.settle()
                held = process_privileges(next(iter(bench.sp.speakers.values())).pid)
                print(f"speaker privileges ({privileges}): {held}", flush=True)
                runs = {
                    "l2agent-link-down": bench.link_down,
                    "l2agent-sigkill": bench.sigkill,
                    "l2agent-sigterm": bench.sigterm,
                    "l2agent-rolling": bench.rolling,
                }
                for case in l2:
                    print(f"== {case}", flush=True)
                    fn = runs[case]
                    results[case] = case_result(case, _trials(case, trials, _each(fn)))
            finally:
                bench.close()
        for case, advert, version, vrid in (
            ("keepalived-default", 1.0, 2, 51),
            ("keepalived-tuned", 0.1, 3, 52),
        ):
            if case not in cases:
                continue
            if shutil.which("keepalived") is None:
                results[case] = case_result(case, [], skipped="keepalived not installed")
                continue
            print(f"== {case}", flush=True)
            kb = KeepalivedBench(lab, workdir, advert, version, vrid)
            try:
                kb.start()
                results[case] = case_result(case, _trials(case, trials, _each(kb.link_down)))
            finally:
                kb.close()
        for case, flags in MEMBERLIST_FLAGS.items():
            if case not in cases:
                continue
            reason = _gopeer_module().skip_reason()
            if reason:
                results[case] = case_result(case, [], skipped=reason)
                continue
            print(f"== {case}", flush=True)
            results[case] = case_result(
                case, _trials(case, trials, MemberlistBench(lab, flags).trial)
            )
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {"kernel": platform.release(), "python": platform.python_version()},
        "source": source_version(),
        "trials_requested": trials,
        "speaker_args": list(speaker_args),
        "speaker_privileges": {"mode": privileges, "wrapper": wrapper, "held": held},
        "probe_interval_s": 0.002,
        "cases": results,
        "ratios": ratios(results),
    }


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Peer median / l2agent link-down median, and the same for max."""
    ours = (results.get("l2agent-link-down") or {}).get("summary")
    out: dict[str, dict[str, float | None]] = {}
    if not ours:
        return out
    for case, res in results.items():
        s = res.get("summary")
        if case not in RATIO_CASES or not s:
            continue
        out[case] = {
            "median": s["median"] / ours["median"] if ours["median"] > 0 else None,
            "max": s["max"] / ours["max"] if ours["max"] > 0 else None,
        }
    return out


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` plus the cases only ``old`` has (each case keeps its own "measured" stamp)."""
    cases = {}
    for case in CASES:
        if case in new["cases"]:
            cases[case] = {**new["cases"][case], "measured": new["when"], "source": new["source"]}
        elif case in old["cases"]:
            kept = old["cases"][case]
            cases[case] = {
                **kept,
                "measured": kept.get("measured", old["when"]),
                "source": kept.get("source", old.get("source", "unknown")),
            }
    return {**new, "cases": cases, "ratios": ratios(cases)}


def markdown(doc: dict[str, Any]) -> str:
    from bench._stats import Summary, render_table

    rows = []
    ref = None
    for case in CASES:
        res = doc["cases"].get(case)
        if res is None:
            continue
        s = Summary(**res["summary"]) if res["summary"] else None
        if case == "l2agent-link-down":
            ref = s
        system, what = LABELS[case]
        note = res["skipped"] or NOTES.get(case, "")
        if res["failed_trials"]:
            note = (note + "; " if note else "") + f"{len(res['failed_trials'])} trials failed"
        rows.append(Row(system, what, s, res["lost_max"], note, compare=case in RATIO_CASES))
    title = (
        f"Failover in the lab ({doc['when']}, kernel {doc['host']['kernel']}, UDP probes every "
        "2 ms; `make bench`)\n\n"
    )
    stamps = sorted({(r.get("measured", ""), r.get("source", "")) for r in doc["cases"].values()})
    foot = ""
    if len(stamps) > 1:
        foot = (
            "\nRows were measured in separate runs (`--merge`): "
            + "; ".join(
                f"{', '.join(c for c, r in doc['cases'].items() if r.get('measured') == w)} "
                f"at {w} ({src})"
                for w, src in stamps
            )
            + ".\n"
        )
    return title + render_table(rows, ref) + foot


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20, help="trials per case (default 20)")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated subset")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument(
        "--merge",
        action="store_true",
        help="keep the cases of the existing failover.json that this run does not measure",
    )
    ap.add_argument(
        "--speaker-args", default="", help="extra `l2agent speaker` arguments (shell-quoted)"
    )
    ap.add_argument(
        "--privileges",
        choices=PRIVILEGES,
        default="daemonset",
        help="daemonset (default): the speakers hold exactly deploy/speaker.yaml's "
        "capabilities and no_new_privs; root: the lab's full root",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cases = [c for c in args.cases.split(",") if c]
    unknown = set(cases) - set(CASES)
    if unknown:
        ap.error(f"unknown cases {sorted(unknown)}; known: {', '.join(CASES)}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="l2bench-") as tmp:
        doc = run(args.trials, cases, Path(tmp), shlex.split(args.speaker_args), args.privileges)
    doc["wall_seconds"] = round(time.monotonic() - started, 1)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    previous = args.out_dir / "failover.json"
    if args.merge and previous.exists():
        doc = merge(json.loads(previous.read_text()), doc)
    previous.write_text(json.dumps(doc, indent=1) + "\n")
    table = markdown(doc)
    (args.out_dir / "failover.md").write_text(table)
    print(table)
    if not args.no_plot:
        from bench.plot import plot_failover

        png = plot_failover(doc, args.out_dir / "failover.png")
        print(f"timeline: {png}" if png else "timeline: matplotlib missing, no PNG")
    return 0


if __name__ == "__main__":
    sys.exit(main())
