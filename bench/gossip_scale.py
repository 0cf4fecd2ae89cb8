"""Failure detection time and load per member as the cluster grows, simulated.

For each preset (memberlist's lan() and our fast()) and size (10, 100, 1000 members) this
starts a converged simulated cluster (seeded, virtual time, 0.5-1 ms links), measures the
steady-state packets and bytes each member sends per second (and the CPU the engines use for
it), then crashes members one at a time and records how long until the first / median / last
survivor declares each dead.

    .venv/bin/python bench/gossip_scale.py [--sizes 10,100,1000] [--presets lan,fast]
        [--crashes 3] [--seed 1] [--real 3] [--out bench/results/gossip_scale.json]

With `--real N` it also runs N real members (asyncio runtime, UDP+TCP on 127.0.0.1) per
preset, in this process: CPU per member per second and the time from closing one member
until each survivor emits MemberFailed, over `--crashes` fresh clusters.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import statistics
import time
from functools import partial
from pathlib import Path
from typing import Any

from gossip.aio.runtime import GossipRuntime
from gossip.config import fast, lan
from gossip.engine import Engine
from gossip.events import MemberFailed
from gossip.messages import NodeState
from gossip.sim import LinkSpec, SimCluster

PRESETS = {"lan": lan, "fast": fast}
# (warm-up, load window, detection limit) in virtual seconds
TIMING = {"lan": (5.0, 20.0, 90.0), "fast": (0.5, 2.0, 3.0)}


def _bytes_out(engine: Engine) -> int:
    """UDP and TCP bytes sent (push/pull streams included)."""
    return engine.counters.bytes_out + engine.counters.stream_bytes_out


def measure(preset: str, n: int, crashes: int, seed: int) -> dict[str, Any]:
    wall = time.perf_counter()
    factory = partial(PRESETS[preset], enable_compression=False)
    c = SimCluster(
        n, factory, seed, link=LinkSpec(latency=0.0005, jitter=0.0005), record_trace=False
    )
    c.prefill()
    warm, window, limit = TIMING[preset]
    c.run_for(warm)
    before = [(x.engine.counters.packets_out, _bytes_out(x.engine)) for x in c.nodes]
    cpu = time.process_time()
    c.run_for(window)
    cpu = time.process_time() - cpu
    sent = sum(x.engine.counters.packets_out - b[0] for x, b in zip(c.nodes, before, strict=True))
    sent_bytes = sum(_bytes_out(x.engine) - b[1] for x, b in zip(c.nodes, before, strict=True))
    rng = random.Random(seed)
    detections: list[dict[str, float]] = []
    for _ in range(crashes):
        victim = rng.choice(c.live_nodes())
        c.crash(victim.index)
        t0 = c.now

        def all_see(name: str = victim.name) -> bool:
            for x in c.live_nodes():
                m = x.engine.member(name)
                if m is not None and m.state not in (NodeState.DEAD, NodeState.LEFT):
                    return False
            return True

        c.run_until(all_see, limit, check_every=min(0.01, limit / 100))
        times = c.observer.detection_times(victim.name, t0)
        if times:
            detections.append(
                {
                    "first": times[0],
                    "median": times[len(times) // 2],
                    "last": times[-1],
                    "observers": len(times),
                }
            )
        c.run_for(warm)
    false_dead = c.observer.false_failures(c.dead)
    return {
        "preset": preset,
        "members": n,
        "packets_per_member_per_s": sent / n / window,
        "bytes_per_member_per_s": sent_bytes / n / window,
        # CPU the engines (plus the simulator's delivery) spend per member per second: an
        # upper bound on one real member's protocol CPU, sockets excluded
        "engine_cpu_ms_per_member_per_s": 1000 * cpu / n / window,
        "detections": detections,
        "median_detection_s": statistics.median(d["median"] for d in detections)
        if detections
        else None,
        "false_failures": len(false_dead),
        "wall_seconds": time.perf_counter() - wall,
    }


def _free_ports(n: int) -> list[int]:
    """Ports free for both UDP and TCP on 127.0.0.1 (bench helper, not a core)."""
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
        ports.append(port)
    return ports


async def _real_cluster(preset: str, n: int) -> list[GossipRuntime]:
    ports = _free_ports(n)
    runtimes = [
        await GossipRuntime.start(
            PRESETS[preset](
                f"real{i}", bind_addr="127.0.0.1", bind_port=p, enable_compression=False
            )
        )
        for i, p in enumerate(ports)
    ]
    for r in runtimes[1:]:
        await r.join([("127.0.0.1", ports[0])], timeout=5.0)
    for _ in range(500):
        if all(len(r.alive_members()) == n for r in runtimes):
            break
        await asyncio.sleep(0.01)
    return runtimes


async def _failed_at(runtime: GossipRuntime, name: str) -> float:
    while True:
        ev = await runtime.events.get()
        if isinstance(ev, MemberFailed) and ev.member.name == name:
            return ev.at


async def measure_real(preset: str, n: int, crashes: int, seconds: float) -> dict[str, Any]:
    """Real members on loopback: CPU per member-second, and crash detection times."""
    loop = asyncio.get_running_loop()
    runtimes = await _real_cluster(preset, n)
    cpu = time.process_time()
    await asyncio.sleep(seconds)
    cpu = time.process_time() - cpu
    for r in runtimes:
        await r.close()
    detections = []
    for _ in range(crashes):
        runtimes = await _real_cluster(preset, n)
        victim, survivors = runtimes[-1], runtimes[:-1]
        await asyncio.sleep(0.5 if preset == "fast" else 3.0)
        await victim.close()
        t0 = loop.time()
        waits = [_failed_at(r, victim.name) for r in survivors]
        try:
            at = await asyncio.wait_for(asyncio.gather(*waits), 60.0)
            times = sorted(a - t0 for a in at)
            detections.append(
                {"first": times[0], "median": times[len(times) // 2], "last": times[-1]}
            )
        except TimeoutError:
            pass
        for r in survivors:
            await r.close()
    return {
        "preset": preset,
        "members": n,
        "real": True,
        "cpu_ms_per_member_per_s": 1000 * cpu / n / seconds,
        "detections": detections,
        "median_detection_s": statistics.median(d["median"] for d in detections)
        if detections
        else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--presets", default="lan,fast")
    ap.add_argument("--crashes", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--real", type=int, default=0, help="also run N real members per preset")
    ap.add_argument("--real-seconds", type=float, default=10.0)
    ap.add_argument("--out", default="bench/results/gossip_scale.json")
    args = ap.parse_args()
    results = []
    for preset in args.presets.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            r = measure(preset, n, args.crashes, args.seed)
            results.append(r)
            med = r["median_detection_s"]
            print(
                f"{preset:5s} n={n:5d}  {r['packets_per_member_per_s']:8.1f} pkt/member/s  "
                f"{r['bytes_per_member_per_s']:9.0f} B/member/s  "
                f"{r['engine_cpu_ms_per_member_per_s']:6.3f} ms CPU/member/s  detection median "
                f"{'-' if med is None else f'{med:.3f}'} s  "
                + " ".join(
                    f"[{d['first']:.3f}/{d['median']:.3f}/{d['last']:.3f}]" for d in r["detections"]
                )
                + f"  false={r['false_failures']}  ({r['wall_seconds']:.1f} s wall)",
                flush=True,
            )
    for preset in args.presets.split(",") if args.real else ():
        r = asyncio.run(measure_real(preset, args.real, args.crashes, args.real_seconds))
        results.append(r)
        med = r["median_detection_s"]
        print(
            f"{preset:5s} real n={args.real}  {r['cpu_ms_per_member_per_s']:6.2f} ms CPU/member/s  "
            f"detection median {'-' if med is None else f'{med:.3f}'} s  "
            + " ".join(f"[{d['first']:.3f}/{d['last']:.3f}]" for d in r["detections"]),
            flush=True,
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"seed": args.seed, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
