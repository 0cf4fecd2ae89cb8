"""BGP mode convergence in the lab, with l2agent's layer 2 mode measured beside it.

``python -m bench.bgp_convergence [--trials 10] [--cases ...] [--out-dir bench/results]``
(root; FRR, BIRD 2 and GoBGP installed; run it under ``flock /work/.cpu.lock``). Three nodes
run FRR configured by the speaker's own pipeline (MetalLB objects -> ``bgp.plan`` ->
``bgp.frr_config`` -> ``FrrReloader``); router1 runs BIRD with ``merge paths on`` and routes
the remote client's traffic by its kernel FIB; router2 runs GoBGP. A remote client behind
router1 probes a service IP over UDP from 16 flows (16 source ports, one probe every 1 ms in
turn), and each node's echo server answers with its name.

BGP cases (seconds; the node pulled or stopped rotates over the three nodes):

- ``bgp-bfd-seed``: the seed's BFDProfile (``default-bfd`` of
  tests/data/seeds/03-bgp-advanced.yaml: 150 ms x 3, echo mode, minimum TTL 254) on the
  router1 sessions; the node's switch port goes down (a pulled cable). Value: from the pull
  to router1's kernel dropping the node's nexthop (``ip monitor route``, stamped on
  arrival). The client's figures ride along: the longest outage of a flow the node served
  (last reply before the pull to the next reply on that flow) and the probes lost.
- ``bgp-bfd-50ms``: the same with 50 ms x 3.
- ``bgp-hold-3s``: no BFD; hold 3 s / keepalive 1 s (MetalLB's smallest hold), graceful
  restart disabled as the speaker renders it by default.
- ``bgp-planned-stop``: the speaker's SIGTERM path: ``BgpAnnouncer.withdraw`` (same
  sessions, nothing announced, through ``FrrReloader``) until FRR reports no prefix sent
  (``FrrStatePoller.prefixes_sent``), then the node stops serving (echo server and FRR
  stopped). Value: from the start of the withdraw to router1's FIB without the node; lost
  probes (expected 0).
- ``bgp-frr-sigterm``: no planned withdraw: FRR gets SIGTERM (bgpd sends a Cease) and the
  node stops serving at the same moment (a pod deleted with no termination order). Value
  as for the pull; lost probes show what the withdraw-first order saves.
- ``bgp-service-add``: a new Service: every node's speaker path (plan, render,
  ``FrrReloader.apply``) at once. Value: from the apply to router1's route having every node
  as nexthop; also the first nexthop and the client's first reply.
- ``bgp-speaker-sigterm``: real ``l2agent speaker`` processes (static mode, the same YAML),
  one gets SIGTERM; once it has exited the node stops serving. Value: from SIGTERM to
  router1's FIB without the node; the speaker's exit time and the lost probes ride along.
- ``bgp-speaker-service-add``: the speakers' file gains a Service, then SIGHUP: time to
  router1's route via every node (and to the client's first reply), as ``l2-service-add``.

Layer 2 cases, same lab, same run, the LAN client (``bench.failover.L2agentBench``):
``l2-link-down`` (client outage when the owner's cable is pulled), ``l2-sigterm`` (planned
handover outage), ``l2-service-add`` (a Service added to the speakers' file + SIGHUP: time to
the LAN client's first reply).

Results: ``bench/results/bgp_convergence.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench._stats import Row, Summary, render_table
from bench.failover import (
    LAB_VIPS,
    L2agentBench,
    Trial,
    _each,
    _trials,
    case_result,
    source_version,
)
from l2agent.bgp.announcer import BgpAnnouncer
from l2agent.bgp.frr_config import FrrOptions
from l2agent.bgp.frr_poll import FrrStatePoller
from l2agent.bgp.reload import FrrReloader
from l2agent.lab.bgp import BgpLab
from l2agent.lab.bgp_cluster import (
    POOL_V4,
    LabService,
    advertisement,
    bfd_profile,
    cluster_objects,
    frr_conf,
    prefix,
    router_peers,
    to_yaml,
)
from l2agent.lab.fib import FibWatch
from l2agent.lab.frr import frr_missing
from l2agent.lab.netns import tools_missing, wait_until
from l2agent.lab.prober import Probe
from l2agent.lab.routers import ROUTER_ASN, bird_missing, gobgp_missing
from l2agent.lab.speakers import LabSpeakers
from l2agent.lab.topology import bgp_vip, node_address, node_index, vip
from l2agent.model import build_state
from l2agent.static import load_yaml_files

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SEED = REPO / "tests" / "data" / "seeds" / "03-bgp-advanced.yaml"

NODE_ASN = 64512
FLOWS = 16
INTERVAL = 0.001
WARMUP = 0.8
SERVICE = (bgp_vip(0, 4),)
NEW_SERVICE = (bgp_vip(1, 4),)
"""IPv4 only: the seed's BFD profile has echo mode, which MetalLB refuses towards IPv6."""
L2_NEW_VIP = vip(2, 4)

BGP_CASES = (
    "bgp-bfd-seed",
    "bgp-bfd-50ms",
    "bgp-hold-3s",
    "bgp-planned-stop",
    "bgp-frr-sigterm",
    "bgp-service-add",
    "bgp-speaker-sigterm",
    "bgp-speaker-service-add",
)
L2_CASES = ("l2-link-down", "l2-sigterm", "l2-service-add")
CASES = BGP_CASES + L2_CASES

LABELS = {
    "bgp-bfd-seed": ("BGP, seed BFD 150 ms x 3 echo", "cable pulled: router FIB drops the node"),
    "bgp-bfd-50ms": ("BGP, BFD 50 ms x 3", "cable pulled: router FIB drops the node"),
    "bgp-hold-3s": ("BGP, hold 3 s, no BFD", "cable pulled: router FIB drops the node"),
    "bgp-planned-stop": ("BGP, planned stop", "withdraw -> router FIB drops the node"),
    "bgp-frr-sigterm": ("BGP, FRR SIGTERM, no withdraw", "router FIB drops the node"),
    "bgp-service-add": ("BGP", "new Service -> route via every node"),
    "bgp-speaker-sigterm": ("BGP, l2agent speakers", "SIGTERM -> router FIB drops the node"),
    "bgp-speaker-service-add": ("BGP, l2agent speakers", "new Service -> route via every node"),
    "l2-link-down": ("L2 (fast preset)", "cable pulled: client outage"),
    "l2-sigterm": ("L2 (fast preset)", "SIGTERM: client outage"),
    "l2-service-add": ("L2 (fast preset)", "new Service -> client's first reply"),
}


# -- probe arithmetic (pure; tests/bench/test_bgp_convergence_math.py) ----------------------


def flows_served(probes: Sequence[Probe], node: str, before: float) -> set[int]:
    """The flows ``node`` answered with a reply sent before ``before``."""
    return {p.flow for p in probes if p.node == node and p.sent < before}


def flow_outages(probes: Sequence[Probe], flows: set[int], t: float) -> dict[int, float | None]:
    """Per flow: from its last reply before ``t`` to its first reply after (None: no reply
    after ``t`` at all)."""
    out: dict[int, float | None] = {}
    for flow in flows:
        replies = sorted(p.replied for p in probes if p.flow == flow and p.replied is not None)
        before = [r for r in replies if r < t]
        after = [r for r in replies if r >= t]
        out[flow] = (after[0] - before[-1]) if before and after else None
    return out


def lost_after(probes: Sequence[Probe], t: float, flows: set[int] | None = None) -> int:
    """Probes sent from ``t`` on (of ``flows``, or all) that got no reply."""
    return sum(
        1
        for p in probes
        if p.replied is None and p.sent >= t and (flows is None or p.flow in flows)
    )


def client_figures(probes: Sequence[Probe], victim: str, t: float) -> dict[str, Any]:
    """What the remote client felt of a fault at ``t`` on ``victim``."""
    mine = flows_served(probes, victim, t)
    outages = flow_outages(probes, mine, t)
    measured = [v for v in outages.values() if v is not None]
    return {
        "victim_flows": len(mine),
        "client_outage_max": max(measured) if measured else None,
        "flows_never_back": sum(1 for v in outages.values() if v is None),
        "lost_victim_flows": lost_after(probes, t, mine),
        "lost_all": lost_after(probes, t),
    }


# -- the BGP harness ------------------------------------------------------------------------


def seed_bfd_profile() -> dict[str, Any]:
    """The seed guide's BFDProfile, exactly as written there."""
    for obj in load_yaml_files([SEED]):
        if obj.get("kind") == "BFDProfile":
            return obj
    raise RuntimeError(f"no BFDProfile in {SEED}")


class BgpBench:
    """Three FRR nodes, BIRD on router1, GoBGP on router2, configured per case."""

    def __init__(self, bl: BgpLab) -> None:
        self.bl = bl
        self.bfd: str | None = None
        self.services = [LabService("echo", SERVICE)]
        self.watch = FibWatch(bl.lab, "router1")
        self.v4 = prefix(SERVICE[0])

    def objects(self, services: Sequence[LabService] | None = None) -> list[dict[str, Any]]:
        profiles = [seed_bfd_profile(), bfd_profile("fast-50ms", 50)]
        return cluster_objects(
            self.bl.lab.node_names,
            router_peers(NODE_ASN, ROUTER_ASN, gobgp=True, bfd=self.bfd),
            self.services if services is None else services,
            extra=profiles,
            advertisements=[advertisement()],
            pool=(POOL_V4,),
        )

    def configure(self, bfd: str | None) -> None:
        """Sessions with BFD profile ``bfd`` (None: hold timers only) on router1's peers."""
        assert self.bl.bird is not None
        self.bfd = bfd
        self.bl.bird.reconfigure(self.bl.router_peers(bfd=bfd is not None))
        self.bl.apply(self.objects())
        self.converge()

    def converge(self, timeout: float = 60.0) -> None:
        """Every session up (BFD too, when configured) and every node a nexthop again."""
        bl = self.bl
        assert bl.bird is not None and bl.frr is not None
        names = [p.name for p in bl.bird.peers]
        if not bl.bird.wait_established(names, timeout):
            raise TimeoutError(f"BIRD sessions: {bl.bird.protocol_states()}")
        want = bl.node_nexthops(bl.lab.node_names, 4)
        if not wait_until(lambda: bl.nexthops(self.v4) == want, timeout):
            raise TimeoutError(f"router1 FIB: {bl.nexthops(self.v4)}")
        if self.bfd is not None:
            for node in bl.lab.node_names:
                ok = wait_until(lambda n=node: self._bfd_up(n), timeout, interval=0.1)
                if not ok:
                    raise TimeoutError(f"BFD on {node} did not come up")

    def _bfd_up(self, node: str) -> bool:
        assert self.bl.frr is not None
        peers = self.bl.frr.show_json(node, "show bfd peers json")
        return len([p for p in peers if p.get("status") == "up"]) >= 2

    def victim(self, i: int) -> str:
        return self.bl.lab.node_names[i % len(self.bl.lab.node_names)]

    def _without(self, victim: str) -> Callable[[frozenset[str]], bool]:
        gone = str(node_address(node_index(victim), 4))
        return lambda hops: bool(hops) and gone not in hops

    def pull(self, i: int, budget: float) -> Trial:
        """Pull ``victim``'s cable; router FIB time, client figures."""
        victim = self.victim(i)
        prober = self.bl.probe(str(SERVICE[0]), WARMUP + budget + 1.0, flows=FLOWS,
                               interval=INTERVAL)  # fmt: skip
        time.sleep(WARMUP)
        mark = self.watch.mark()
        t0 = time.monotonic()
        self.bl.lab.cut_link(victim)
        try:
            gone = self.watch.wait_for(self.v4, self._without(victim), mark, budget + 5.0)
            probes = self._probes(prober)
        finally:
            self.bl.lab.restore_link(victim)
        self.converge()
        return self._trial(gone, t0, probes, victim)

    def _probes(self, prober: Any) -> list[Probe]:
        assert self.bl.echo is not None
        return self.bl.echo.probes(prober)

    def _trial(self, t: float | None, t0: float, probes: list[Probe], victim: str) -> Trial:
        figures = client_figures(probes, victim, t0)
        if t is None:
            return Trial(None, error="the router never dropped the node", extra=figures)
        return Trial(
            t - t0,
            lost=figures["lost_all"],
            extra={"victim": victim, **figures},
            timeline=None,  # no plot for these: keeps the JSON small
        )

    def planned_stop(self, i: int) -> Trial:
        """The speaker's SIGTERM path, then the node stops serving."""
        bl = self.bl
        assert bl.frr is not None and bl.echo is not None
        victim = self.victim(i)
        d = bl.frr.dir(victim)
        state = build_state(self.objects()).state
        prober = bl.probe(str(SERVICE[0]), WARMUP + 4.0, flows=FLOWS, interval=INTERVAL)
        time.sleep(WARMUP)
        mark = self.watch.mark()

        async def withdraw() -> tuple[float, float, float]:
            reloader = FrrReloader(d, d)
            poller = FrrStatePoller(d, config_dir=d)
            options = FrrOptions(hostname=None, log_level=None)
            announcer = BgpAnnouncer(victim, reloader, frr_options=options)
            announcer.replan(state)  # what the speaker announced until now
            try:
                t0 = time.monotonic()
                outcome = await announcer.withdraw(5.0, prefixes_sent=poller.prefixes_sent)
                return t0, time.monotonic(), outcome.seconds
            finally:
                await reloader.close()

        t0, drained, reload_s = asyncio.run(withdraw())
        gone = self.watch.wait_for(self.v4, self._without(victim), mark, 5.0)
        bl.lab.stop(bl.echo.echoes.pop(victim))
        bl.frr.stop(victim)
        probes = self._probes(prober)
        self._restart(victim)
        trial = self._trial(gone, t0, probes, victim)
        trial.extra.update({"withdraw_reload_s": reload_s, "drained_s": drained - t0})
        return trial

    def frr_sigterm(self, i: int) -> Trial:
        """FRR stops (Cease) and the node stops serving at once: no withdraw first."""
        bl = self.bl
        assert bl.frr is not None and bl.echo is not None
        victim = self.victim(i)
        prober = bl.probe(str(SERVICE[0]), WARMUP + 3.0, flows=FLOWS, interval=INTERVAL)
        time.sleep(WARMUP)
        mark = self.watch.mark()
        t0 = time.monotonic()
        bl.lab.stop(bl.echo.echoes.pop(victim))
        pid = bl.frr.pid(victim, "bgpd")
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
        gone = self.watch.wait_for(self.v4, self._without(victim), mark, 10.0)
        bl.frr.stop(victim)
        probes = self._probes(prober)
        self._restart(victim)
        return self._trial(gone, t0, probes, victim)

    def _restart(self, victim: str) -> None:
        assert self.bl.frr is not None and self.bl.echo is not None
        self.bl.echo.start_echo(victim)
        self.bl.frr.start(victim)
        self.bl.apply(self.objects(), [victim])
        self.converge()

    def service_add(self) -> Trial:
        """A new Service on every node at once, through the speaker's reloader."""
        bl = self.bl
        assert bl.frr is not None
        new = [*self.services, LabService("new", NEW_SERVICE)]
        texts = {n: frr_conf(self.objects(new), n) for n in bl.lab.node_names}
        target = prefix(NEW_SERVICE[0])
        every = bl.node_nexthops(bl.lab.node_names, 4)
        prober = bl.probe(str(NEW_SERVICE[0]), WARMUP + 8.0, interval=INTERVAL)
        time.sleep(WARMUP)
        mark = self.watch.mark()

        dirs = {n: bl.frr.dir(n) for n in texts}

        async def apply_all() -> tuple[float, float]:
            # A fresh reloader does what a running speaker's does for a changed text.
            reloaders = {n: FrrReloader(d, d) for n, d in dirs.items()}
            t0 = time.monotonic()
            outcomes = await asyncio.gather(*(r.apply(texts[n]) for n, r in reloaders.items()))
            for r in reloaders.values():
                await r.close()
            return t0, max(o.seconds for o in outcomes)

        t0, reload_s = asyncio.run(apply_all())
        first = self.watch.wait_for(target, bool, mark, 10.0)
        full = self.watch.wait_for(target, lambda hops: hops == every, mark, 10.0)
        probes = self._probes(prober)
        replies = [p.replied for p in probes if p.replied is not None and p.replied >= t0]
        bl.apply(self.objects())  # remove it again
        wait_until(lambda: not bl.nexthops(target), 10)
        if full is None:
            return Trial(None, error="the route never had every node")
        return Trial(
            full - t0,
            lost=None,
            extra={
                "first_nexthop_s": None if first is None else first - t0,
                "first_reply_s": min(replies) - t0 if replies else None,
                "reload_s": reload_s,
            },
        )

    def close(self) -> None:
        self.watch.close()


class SpeakerBench:
    """``l2agent speaker`` processes in BGP mode (static mode) on the same lab and YAML."""

    def __init__(self, bench: BgpBench, workdir: Path) -> None:
        bl = bench.bl
        assert bl.frr is not None and bl.echo is not None
        self.bench = bench
        self.config = workdir / "cluster.yaml"
        self.base = to_yaml(bench.objects())
        self.config.write_text(self.base)
        self.sp = LabSpeakers(bl.lab, self.config, gossip=False, frr_dir=bl.frr.dir,
                              workdir=workdir)  # fmt: skip
        self.sp.echoes = bl.echo.echoes

    def start(self) -> None:
        for node in self.bench.bl.lab.node_names:
            self.sp.start(node)
        self.bench.converge()
        self.settle()

    def settle(self, timeout: float = 60.0) -> None:
        """Every speaker has applied its first frr.conf (its reload counter says so)."""
        for node in self.bench.bl.lab.node_names:
            if not wait_until(lambda n=node: self._applied(n), timeout, interval=0.5):
                raise TimeoutError(f"the speaker on {node} never applied frr.conf")

    def _applied(self, node: str) -> bool:
        text = self.sp.fetch(node, "/metrics") or ""
        ok = ("applied", "applied_after_reset", "unchanged")
        for line in text.splitlines():
            if (
                line.startswith("l2agent_frr_reloads_total{")
                and any(f'result="{r}"' in line for r in ok)
                and float(line.rsplit(" ", 1)[1]) >= 1
            ):
                return True
        return False

    def sigterm(self, i: int) -> Trial:
        bench, sp = self.bench, self.sp
        victim = bench.victim(i)
        prober = bench.bl.probe(str(SERVICE[0]), WARMUP + 4.0, flows=FLOWS, interval=INTERVAL)
        time.sleep(WARMUP)
        mark = bench.watch.mark()
        t0 = time.monotonic()
        proc = sp.speakers.pop(victim)
        proc.terminate()
        rc = proc.wait(timeout=30)
        exited = time.monotonic()
        gone = bench.watch.wait_for(bench.v4, bench._without(victim), mark, 5.0)
        bench.bl.lab.stop(sp.echoes.pop(victim))  # only now the node stops serving
        probes = bench._probes(prober)
        sp.start_echo(victim)
        sp.start(victim)
        bench.converge()
        self.settle()
        trial = bench._trial(gone, t0, probes, victim)
        trial.extra.update({"speaker_exit_s": exited - t0, "speaker_rc": rc})
        return trial

    def service_add(self) -> Trial:
        bench, sp, bl = self.bench, self.sp, self.bench.bl
        new = [*bench.services, LabService("new", NEW_SERVICE)]
        target = prefix(NEW_SERVICE[0])
        every = bl.node_nexthops(bl.lab.node_names, 4)
        prober = bl.probe(str(NEW_SERVICE[0]), WARMUP + 6.0, interval=INTERVAL)
        time.sleep(WARMUP)
        mark = bench.watch.mark()
        self.config.write_text(to_yaml(bench.objects(new)))
        t0 = time.monotonic()
        for proc in sp.speakers.values():
            proc.send_signal(signal.SIGHUP)
        first = bench.watch.wait_for(target, bool, mark, 10.0)
        full = bench.watch.wait_for(target, lambda hops: hops == every, mark, 10.0)
        probes = bench._probes(prober)
        replies = [p.replied for p in probes if p.replied is not None and p.replied >= t0]
        self.config.write_text(self.base)
        for proc in sp.speakers.values():
            proc.send_signal(signal.SIGHUP)
        wait_until(lambda: not bl.nexthops(target), 15)
        if full is None:
            return Trial(None, error="the route never had every node")
        return Trial(
            full - t0,
            extra={
                "first_nexthop_s": None if first is None else first - t0,
                "first_reply_s": min(replies) - t0 if replies else None,
            },
        )

    def close(self) -> None:
        for proc in self.sp.speakers.values():
            self.bench.bl.lab.stop(proc)
        self.sp.speakers.clear()


# -- layer 2 beside it -------------------------------------------------------------------


def l2_service_add(l2: L2agentBench, config: Path, base: str) -> Trial:
    """Add a Service to the speakers' file, SIGHUP them: time to the client's first reply."""
    sp = l2.sp
    prober = sp.probe(str(L2_NEW_VIP), WARMUP + 6.0, interval=INTERVAL)
    time.sleep(WARMUP)
    config.write_text(base + L2_NEW_SERVICE)
    t0 = time.monotonic()
    for proc in sp.speakers.values():
        proc.send_signal(signal.SIGHUP)
    probes = sp.probes(prober)
    replies = [p.replied for p in probes if p.replied is not None and p.replied >= t0]
    config.write_text(base)
    for proc in sp.speakers.values():
        proc.send_signal(signal.SIGHUP)
    time.sleep(1.0)
    l2.lab.flush_neighbours()
    if not replies:
        return Trial(None, error="the new service never answered")
    return Trial(min(replies) - t0, lost=None)


L2_NEW_SERVICE = f"""
---
apiVersion: v1
kind: Service
metadata:
  name: bench-new
  namespace: demo
  annotations:
    metallb.io/loadBalancerIPs: {L2_NEW_VIP}
spec:
  type: LoadBalancer
  ipFamilyPolicy: SingleStack
  ipFamilies: [IPv4]
  ports:
  - name: echo
    protocol: UDP
    port: 7777
"""


# -- the run -------------------------------------------------------------------------------


def skip_reason() -> str | None:
    if tools_missing("ip"):
        return "iproute2 missing"
    return frr_missing() or bird_missing() or gobgp_missing()


def run(trials: int, cases: Sequence[str], workdir: Path) -> dict[str, Any]:
    results: dict[str, dict[str, Any]] = {}
    vips = [*LAB_VIPS, L2_NEW_VIP, *SERVICE, *NEW_SERVICE]
    with BgpLab(3, vips=vips, gobgp=True, workdir=workdir / "bgp") as bl:
        bgp = [c for c in cases if c in BGP_CASES]
        if bgp:
            bl.start_bird(bfd=True)
            bl.start_gobgp()
            bl.start_frr()
            bench = BgpBench(bl)
            try:
                _bgp_cases(bench, bgp, trials, workdir, results)
            finally:
                bench.close()
                assert bl.frr is not None
                for node in bl.lab.node_names:
                    bl.frr.stop(node)
        l2 = [c for c in cases if c in L2_CASES]
        if l2:
            _l2_cases(bl, l2, trials, workdir, results)
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {"kernel": platform.release(), "python": platform.python_version()},
        "source": source_version(),
        "trials_requested": trials,
        "probe": {"flows": FLOWS, "interval_s": INTERVAL},
        "cases": results,
    }


def _bgp_cases(
    bench: BgpBench, cases: Sequence[str], n: int, workdir: Path, out: dict[str, Any]
) -> None:
    profiles = {"bgp-bfd-seed": "default-bfd", "bgp-bfd-50ms": "fast-50ms", "bgp-hold-3s": None}
    for case, profile in profiles.items():
        if case not in cases:
            continue
        print(f"== {case}", flush=True)
        bench.configure(profile)
        budget = 1.5 if profile else 5.0
        out[case] = case_result(case, _trials(case, n, lambda i, b=budget: bench.pull(i, b)))
    bench.configure("fast-50ms")
    for case, fn in (
        ("bgp-planned-stop", bench.planned_stop),
        ("bgp-frr-sigterm", bench.frr_sigterm),
        ("bgp-service-add", lambda _i: bench.service_add()),
    ):
        if case in cases:
            print(f"== {case}", flush=True)
            out[case] = case_result(case, _trials(case, n, fn))
    speaker_cases = [c for c in cases if c.startswith("bgp-speaker-")]
    if not speaker_cases:
        return
    (workdir / "speakers").mkdir(parents=True, exist_ok=True)
    speakers = SpeakerBench(bench, workdir / "speakers")
    try:
        speakers.start()
        runs: dict[str, Callable[[int], Trial]] = {
            "bgp-speaker-sigterm": speakers.sigterm,
            "bgp-speaker-service-add": lambda _i: speakers.service_add(),
        }
        for case in speaker_cases:
            print(f"== {case}", flush=True)
            out[case] = case_result(case, _trials(case, n, runs[case]))
    finally:
        speakers.close()


def _l2_cases(bl: BgpLab, cases: Sequence[str], n: int, workdir: Path, out: dict[str, Any]) -> None:
    (workdir / "l2").mkdir(parents=True, exist_ok=True)
    l2 = L2agentBench(bl.lab, workdir / "l2")
    config = workdir / "l2" / "cluster.yaml"
    base = Path(l2.sp.config).read_text()
    config.write_text(base)
    l2.sp.config = config
    try:
        l2.start()
        l2.settle()
        runs: dict[str, Callable[[int], Trial]] = {
            "l2-link-down": _each(l2.link_down),
            "l2-sigterm": _each(l2.sigterm),
            "l2-service-add": lambda _i: l2_service_add(l2, config, base),
        }
        for case in cases:
            print(f"== {case}", flush=True)
            out[case] = case_result(case, _trials(case, n, runs[case]))
    finally:
        l2.close()


NOTES = {
    "bgp-bfd-seed": "client: longest outage of a flow the node served (see JSON)",
    "bgp-planned-stop": "from the start of the withdraw (includes one frr-reload.py run)",
    "bgp-service-add": "from FrrReloader.apply on every node (frr-reload.py takes ~1 s)",
    "bgp-speaker-sigterm": "the speaker withdraws, then exits; then the node stops serving",
    "bgp-speaker-service-add": "from SIGHUP of the speakers",
    "l2-service-add": "from SIGHUP of the speakers",
}


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` plus the cases only ``old`` has, each stamped with when and what it measured."""
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
    return {**new, "cases": cases}


def markdown(doc: dict[str, Any]) -> str:
    rows = []
    ref = None
    for case in CASES:
        res = doc["cases"].get(case)
        if res is None:
            continue
        s = Summary(**res["summary"]) if res["summary"] else None
        if case == "l2-link-down":
            ref = s
        system, what = LABELS[case]
        note = res["skipped"] or NOTES.get(case, "")
        outages = [t.get("client_outage_max") for t in res["trials"]]
        measured = [o for o in outages if o is not None]
        if measured:
            note = (note + "; " if note else "") + (
                f"client outage median {sorted(measured)[len(measured) // 2] * 1e3:.0f} ms, "
                f"max {max(measured) * 1e3:.0f} ms"
            )
        if res["failed_trials"]:
            note = (note + "; " if note else "") + f"{len(res['failed_trials'])} trials failed"
        rows.append(Row(system, what, s, res["lost_max"], note))
    title = (
        f"BGP mode convergence beside layer 2 mode ({doc['when']}, kernel "
        f"{doc['host']['kernel']}; {FLOWS} UDP flows, one probe every {INTERVAL * 1e3:.0f} ms; "
        "`python -m bench.bgp_convergence`)\n\n"
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
    ap.add_argument("--trials", type=int, default=10, help="trials per case (default 10)")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated subset")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    ap.add_argument(
        "--merge",
        action="store_true",
        help="keep the cases of the existing bgp_convergence.json that this run does not measure",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cases = [c for c in args.cases.split(",") if c]
    unknown = set(cases) - set(CASES)
    if unknown:
        ap.error(f"unknown cases {sorted(unknown)}; known: {', '.join(CASES)}")
    reason = skip_reason()
    if reason:
        print(f"bgp_convergence: skipped: {reason}", file=sys.stderr)
        return 0
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="l2bench-bgp-"))
    os.chmod(tmp, 0o755)  # FRR's user must reach the per-node directories inside
    try:
        doc = run(args.trials, cases, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    doc["wall_seconds"] = round(time.monotonic() - started, 1)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    previous = args.out_dir / "bgp_convergence.json"
    if args.merge and previous.exists():
        doc = merge(json.loads(previous.read_text()), doc)
    previous.write_text(json.dumps(doc, indent=1) + "\n")
    table = markdown(doc)
    (args.out_dir / "bgp_convergence.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
