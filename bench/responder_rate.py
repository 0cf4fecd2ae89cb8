"""ARP/NS answering: our data plane against the Linux kernel, same lab, same generators, same
offered rates, same run.

One-node lab. node1's kernel answers for 64 addresses of its own on eth0 (198.18.1.0-63,
2001:db8:1::0-3f); our data plane (``l2agent.lab.respond``: the speaker's ``DataPlane``)
answers for 64 VIPs (198.18.2.0-63, 2001:db8:2::0-3f) on the same eth0. From the client:

- **rate sweep**: each generator (``python``: ``bench._l2gen``, one core, bursts every
  millisecond; ``trafgen`` from netsniff-ng, one core; both at SCHED_RR 20, so neither the
  data plane nor other work on the machine slows them) floods requests for one address at
  each offered rate (0 = the generator's maximum), for the kernel's address and for ours
  in turn. ``offered`` is what reached node1's eth0 (its receive counter), ``answered``
  the replies the client's kernel counted (a filtered packet socket's statistics), and for
  our data plane the CPU it used per 10,000 requests;
- **latency** at 10,000 requests/s: the Python generator rotating over the 64 targets,
  times taken by the client's kernel as the request left and the reply arrived;
- **unowned flood**: trafgen at full rate for an address nobody owns: our CPU;
- **cluster** (``--cluster``): three real speakers (gossip, fast preset, SCHED_RR as
  shipped), both CPUs kept busy by two spinning processes, a full-rate trafgen flood for an
  owned VIP and one for an unowned address: members suspected, member failures and
  ownership changes counted from every speaker's /metrics before and after.

The data plane and the speakers run with exactly the DaemonSet's privileges
(``bench/_privileges.py``: NET_RAW and SYS_NICE, no_new_privs; SCHED_RR 10 as shipped)
unless ``--privileges root``; what they held is in the results.

Usage (root): ``flock /work/.cpu.lock python -m bench.responder_rate [--seconds 2]
[--cluster] [--privileges daemonset|root] [--out FILE]``. Writes
``bench/results/responder_rate.json`` and a summary beside it (``.md``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

from bench._privileges import PRIVILEGES, daemonset_wrapper, process_privileges
from bench._responder_report import render
from bench._stats import percentile
from bench.failover import source_version
from l2agent.lab.load import busy_cpus, trafgen
from l2agent.lab.netns import Lab
from l2agent.lab.netns_thread import NetnsThread
from l2agent.lab.topology import client_address, client_mac

RESULTS = Path(__file__).resolve().parent / "results"
WORKDIR = Path(tempfile.mkdtemp(prefix="l2bench-"))
N_TARGETS = 64
KERNEL4, OURS4, NOBODY4 = (
    IPv4Address("198.18.1.0"),
    IPv4Address("198.18.2.0"),
    IPv4Address("198.18.3.1"),
)
KERNEL6, OURS6 = IPv6Address("2001:db8:1::"), IPv6Address("2001:db8:2::")
PY_RATES = (10_000, 30_000, 60_000, 100_000, 130_000, 0)
GENERATOR_PRIORITY = 20
"""SCHED_RR priority of both generators (above the data plane's 10): on a shared 2-core
machine the responder (SCHED_RR 10) would otherwise squeeze the generator, and the offered
rate would depend on who answers. The kernel's own answering runs in softirq context."""
TRAFGEN_RATES = (10_000, 60_000, 130_000, 250_000, 0)


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def arp_request(target: IPv4Address) -> bytes:
    from scapy.layers.l2 import ARP, Ether

    me = _mac(client_mac())
    pkt = Ether(dst="ff:ff:ff:ff:ff:ff", src=me) / ARP(
        op=1, hwsrc=me, psrc=str(client_address(4)), pdst=str(target)
    )
    return bytes(pkt).ljust(60, b"\0")


def ns_request(target: IPv6Address) -> bytes:
    from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
    from scapy.layers.l2 import Ether

    from l2agent.packets.ndp import solicited_node_address, solicited_node_mac

    me = _mac(client_mac())
    pkt = (
        Ether(dst=_mac(solicited_node_mac(target)), src=me)
        / IPv6(src=str(client_address(6)), dst=str(solicited_node_address(target)), hlim=255)
        / ICMPv6ND_NS(tgt=str(target))
        / ICMPv6NDOptSrcLLAddr(lladdr=me)
    )
    return bytes(pkt)


def request(proto: str, target: IPv4Address | IPv6Address) -> bytes:
    return arp_request(target) if proto == "arp" else ns_request(target)  # type: ignore[arg-type]


# -- counting replies in the client's kernel ----------------------------------------------


def _reply_program(proto: str, target: IPv4Address | IPv6Address) -> tuple:
    """Classic BPF accepting replies for ``target``: ARP op 2 from it, or an NA for it."""
    from l2agent.responder.bpf import (
        ACCEPT_BYTES,
        JEQ_K,
        LD_W_ABS,
        LDB_ABS,
        LDH_ABS,
        RET_K,
        Assembler,
    )

    asm = Assembler()
    asm.op(LDH_ABS, 12)
    if proto == "arp":
        asm.jump(JEQ_K, 0x0806, None, "no")
        asm.op(LDH_ABS, 20)
        asm.jump(JEQ_K, 2, None, "no")
        asm.op(LD_W_ABS, 28)
        asm.jump(JEQ_K, int(target), None, "no")
    else:
        asm.jump(JEQ_K, 0x86DD, None, "no")
        asm.op(LDB_ABS, 20)
        asm.jump(JEQ_K, 58, None, "no")
        asm.op(LDB_ABS, 54)
        asm.jump(JEQ_K, 136, None, "no")
        for i in range(4):
            asm.op(LD_W_ABS, 62 + 4 * i)
            asm.jump(JEQ_K, (int(target) >> (96 - 32 * i)) & 0xFFFFFFFF, None, "no")
    asm.op(RET_K, ACCEPT_BYTES)
    asm.label("no")
    asm.op(RET_K, 0)
    return asm.assemble()


class ReplyCounter:
    """A packet socket in the client namespace that only counts: it is never read, its
    buffer is one frame, and the kernel's PACKET_STATISTICS (received + dropped) say how
    many replies matched. No per-reply work in Python, whatever the rate."""

    def __init__(self, thread: NetnsThread, proto: str, target: IPv4Address | IPv6Address) -> None:
        import socket

        from l2agent.responder.bpf import attach_filter

        def open_() -> socket.socket:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            attach_filter(sock, _reply_program(proto, target))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
            sock.bind(("eth0", 0x0003))
            return sock

        self._thread = thread
        self._sock = thread.call(open_)
        self.take()

    def take(self) -> int:
        """Replies since the last call."""
        import struct

        raw = self._thread.call(self._sock.getsockopt, 263, 6, 8)  # PACKET_STATISTICS
        return int(struct.unpack("=II", raw)[0])

    def close(self) -> None:
        self._thread.call(self._sock.close)


# -- lab plumbing -------------------------------------------------------------------------


def _rx_packets(lab: Lab, role: str) -> int:
    link = json.loads(lab.ip(role, "-s", "-j", "link", "show", "dev", "eth0"))[0]
    return int(link["stats64"]["rx"]["packets"])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _trafgen(lab: Lab, frame: bytes, rate: int, seconds: float) -> dict[str, Any]:
    return {"seconds": trafgen(lab, "client", frame, rate, seconds, WORKDIR, GENERATOR_PRIORITY)}


def _python_gen(lab: Lab, frame: bytes, rate: int, seconds: float) -> dict[str, Any]:
    argv = ["chrt", "-r", str(GENERATOR_PRIORITY), sys.executable, "-m", "bench._l2gen"]
    argv += ["send", frame.hex(), str(rate), str(seconds)]
    out: dict[str, Any] = json.loads(lab.exec("client", argv, timeout=seconds * 3 + 30))
    return out


def _point(
    lab: Lab,
    counter: ReplyCounter,
    flood: Callable[[], dict[str, Any]],
    agent_pid: int,
) -> dict[str, Any]:
    rx0, cpu0 = _rx_packets(lab, "node1"), _cpu_seconds(agent_pid)
    counter.take()
    gen = flood()
    time.sleep(0.3)  # replies still in flight
    offered = _rx_packets(lab, "node1") - rx0
    answered = counter.take()
    cpu = _cpu_seconds(agent_pid) - cpu0
    seconds = gen["seconds"]
    return {
        "offered_per_s": round(offered / seconds),
        "answered_per_s": round(answered / seconds),
        "answered_over_offered": round(answered / max(1, offered), 4),
        "generator_sent_per_s": round(gen["sent"] / seconds) if "sent" in gen else None,
        "responder_cpu_per_10k": round(cpu / max(1, offered) * 10_000, 5),
        "responder_cpu_share": round(cpu / seconds, 4),
    }


def _start_agent(lab: Lab, wrapper: list[str]) -> Any:
    owned = [str(OURS4 + i) for i in range(N_TARGETS)] + [str(OURS6 + i) for i in range(N_TARGETS)]
    agent = lab.spawn(
        "node1",
        [*wrapper, sys.executable, "-m", "l2agent.lab.respond", "--iface", "eth0", "--rounds", "1",
         "--realtime-priority", "10", "--own", *owned],  # SCHED_RR 10: the speaker's default
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert agent.stdout is not None
    ready = json.loads(agent.stdout.readline())
    if not ready.get("ready"):
        raise SystemExit(f"responder did not start: {ready}")
    return agent


def _kernel_addresses(lab: Lab) -> None:
    for i in range(N_TARGETS):
        lab.ip("node1", "addr", "add", f"{KERNEL4 + i}/32", "dev", "eth0")
        lab.ip("node1", "addr", "add", f"{KERNEL6 + i}/128", "dev", "eth0", "nodad")


def _latency_point(
    lab: Lab, proto: str, base: IPv4Address | IPv6Address, seconds: float, agent_pid: int
) -> dict[str, Any]:
    """The Python generator at 10,000 requests/s rotating over N_TARGETS addresses from
    ``base``: reply latency as the client's kernel timed it."""
    frames = [request(proto, base + i).hex() for i in range(N_TARGETS)]
    cpu0 = _cpu_seconds(agent_pid)
    lat = json.loads(lab.exec("client", [
        sys.executable, "-m", "bench._l2gen", "latency", "10000",
        str(max(seconds, 3.0)), *frames], timeout=120))  # fmt: skip
    values = lat["latencies_us"]
    return {
        "sent": lat["sent"],
        "answered": len(values),
        "unanswered": lat["unanswered"],
        "p50_us": round(percentile(values, 50), 1) if values else None,
        "p99_us": round(percentile(values, 99), 1) if values else None,
        "max_us": round(max(values), 1) if values else None,
        "responder_cpu_per_10k": round(
            (_cpu_seconds(agent_pid) - cpu0) / max(1, lat["sent"]) * 10_000, 5
        ),
    }


def sweep(
    seconds: float,
    py_rates: tuple[int, ...],
    tg_rates: tuple[int, ...],
    protos: tuple[str, ...] = ("arp", "ns"),
    latency: bool = True,
    wrapper: list[str] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"rate": [], "latency_10k": {}, "unowned_flood": {}}
    with Lab(nodes=1, vips=()) as lab:
        _kernel_addresses(lab)
        agent = _start_agent(lab, wrapper or [])
        out["responder_privileges"] = process_privileges(agent.pid)
        client = NetnsThread(lab.netns("client"))
        try:
            targets = {
                ("arp", "kernel"): KERNEL4, ("arp", "l2agent"): OURS4,
                ("ns", "kernel"): KERNEL6, ("ns", "l2agent"): OURS6,
            }  # fmt: skip
            counters = {k: ReplyCounter(client, k[0], t) for k, t in targets.items()}
            for proto in protos:
                for gen, rates in (("python", py_rates), ("trafgen", tg_rates)):
                    for rate in rates:
                        for who in ("kernel", "l2agent"):
                            frame = request(proto, targets[(proto, who)])
                            flood = functools.partial(
                                _python_gen if gen == "python" else _trafgen,
                                lab, frame, rate, seconds,
                            )  # fmt: skip
                            point = _point(lab, counters[(proto, who)], flood, agent.pid)
                            row = {"proto": proto, "generator": gen, "rate": rate or "max",
                                   "answerer": who, **point}  # fmt: skip
                            out["rate"].append(row)
                            print(json.dumps(row), flush=True)
                if latency:
                    for who in ("kernel", "l2agent"):
                        row = _latency_point(lab, proto, targets[(proto, who)], seconds, agent.pid)
                        out["latency_10k"][f"{proto}/{who}"] = row
                        print(f"latency {proto}/{who}", json.dumps(row), flush=True)
            # Nobody owns this address: the kernel filter must keep the flood out of Python.
            cpu0, t0 = _cpu_seconds(agent.pid), time.perf_counter()
            rx0 = _rx_packets(lab, "node1")
            _trafgen(lab, request("arp", NOBODY4), 0, seconds)
            elapsed = time.perf_counter() - t0
            offered, cpu = _rx_packets(lab, "node1") - rx0, _cpu_seconds(agent.pid) - cpu0
            out["unowned_flood"] = {
                "offered_per_s": round(offered / elapsed),
                "responder_cpu_share": round(cpu / elapsed, 4),
                "responder_cpu_per_10k": round(cpu / max(1, offered) * 10_000, 5),
            }
            print("unowned flood", json.dumps(out["unowned_flood"]), flush=True)
            assert agent.stdin is not None and agent.stdout is not None
            agent.stdin.write("counters\n")
            agent.stdin.flush()
            out["l2agent_counters"] = json.loads(agent.stdout.readline())
            for c in counters.values():
                c.close()
        finally:
            client.close()
    return out


def cluster_flood(seconds: float, wrapper: list[str] | None = None) -> dict[str, Any]:
    """Three real speakers, both CPUs busy, full-rate floods for an owned VIP and for an
    address nobody owns: what each speaker's own counters say changed meanwhile."""
    from l2agent.lab.speakers import LabSpeakers
    from l2agent.lab.topology import UNOWNED_VIP4, vip
    from l2agent.static import demo_config_path

    gossip = (
        "l2agent_gossip_suspicions_raised_total",
        "l2agent_gossip_suspicions_refuted_total",
        "l2agent_gossip_member_failures_total",
        "l2agent_ownership_changes_total",
        "metallb_layer2_responses_sent",
        "l2agent_responder_overruns_total",
    )
    v4 = vip(0, 4)
    out: dict[str, Any] = {"seconds_per_flood": seconds, "floods": {}}
    with Lab(3, vips=[v4, vip(0, 6)]) as lab:
        speakers = LabSpeakers(lab, demo_config_path(), workdir=WORKDIR, wrapper=wrapper or [])
        try:
            speakers.start_all()
            speakers.wait_members(timeout=30)
            owner = speakers.wait_owners([str(v4)], timeout=30)[str(v4)]
            out["owner"] = owner
            time.sleep(1.0)
            pids = {n: p.pid for n, p in speakers.speakers.items()}
            out["speaker_privileges"] = process_privileges(pids[owner])
            with busy_cpus(2):
                for name, target in (("idle", None), ("owned", v4), ("unowned", UNOWNED_VIP4)):
                    before = {n: speakers.samples(n, *gossip) for n in lab.node_names}
                    cpu0 = {n: _cpu_seconds(p) for n, p in pids.items()}
                    tx0 = _tx_packets(lab, "client")
                    if target is None:  # the baseline: busy CPUs, gossip, no flood
                        time.sleep(seconds)
                        took = seconds
                    else:
                        frame = arp_request(target)  # type: ignore[arg-type]
                        took = trafgen(lab, "client", frame, 0, seconds, WORKDIR)
                    time.sleep(0.5)
                    after = {n: speakers.samples(n, *gossip) for n in lab.node_names}
                    out["floods"][name] = {
                        "target": str(target) if target is not None else None,
                        "offered_per_s": round((_tx_packets(lab, "client") - tx0) / took),
                        "speaker_cpu_share": {
                            n: round((_cpu_seconds(p) - cpu0[n]) / took, 4) for n, p in pids.items()
                        },
                        "changed": {n: _delta(before[n], after[n]) for n in lab.node_names},
                    }
                    print(f"cluster flood {name}", json.dumps(out["floods"][name]), flush=True)
        finally:
            speakers.close()
    return out


def _tx_packets(lab: Lab, role: str) -> int:
    link = json.loads(lab.ip(role, "-s", "-j", "link", "show", "dev", "eth0"))[0]
    return int(link["stats64"]["tx"]["packets"])


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    keys = set(before) | set(after)
    return {
        k: after.get(k, 0.0) - before.get(k, 0.0)
        for k in sorted(keys)
        if after.get(k, 0.0) != before.get(k, 0.0)
    }


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """Ratios of our answered/offered to the kernel's at each (proto, generator, rate)."""
    rows = {(r["proto"], r["generator"], r["rate"], r["answerer"]): r for r in result["rate"]}
    ratios = []
    for (proto, gen, rate, who), row in rows.items():
        if who != "l2agent":
            continue
        kernel = rows[(proto, gen, rate, "kernel")]
        ratios.append({
            "proto": proto, "generator": gen, "rate": rate,
            "offered_per_s": row["offered_per_s"],
            "kernel_offered_per_s": kernel["offered_per_s"],
            "ours": row["answered_over_offered"],
            "kernel": kernel["answered_over_offered"],
            "ratio": round(
                row["answered_over_offered"] / max(1e-9, kernel["answered_over_offered"]), 4
            ),
            "cpu_per_10k": row["responder_cpu_per_10k"],
        })  # fmt: skip
    return {"vs_kernel": ratios}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="flood length per point")
    parser.add_argument("--cluster", action="store_true", help="also the 3-speaker flood")
    parser.add_argument("--quick", action="store_true", help="fewer rates (a smoke run)")
    parser.add_argument("--protos", default="arp,ns", help="comma-separated: arp, ns")
    parser.add_argument("--py-rates", default=None, help="comma-separated (0 = max)")
    parser.add_argument("--trafgen-rates", default=None, help="comma-separated (0 = max)")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument(
        "--privileges",
        choices=PRIVILEGES,
        default="daemonset",
        help="daemonset (default): exactly deploy/speaker.yaml's capabilities; root: all",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "responder_rate.json")
    args = parser.parse_args(argv)
    py_rates, tg_rates = (PY_RATES, TRAFGEN_RATES) if not args.quick else ((10_000, 0), (0,))
    if args.py_rates is not None:
        py_rates = tuple(int(r) for r in args.py_rates.split(",") if r)
    if args.trafgen_rates is not None:
        tg_rates = tuple(int(r) for r in args.trafgen_rates.split(",") if r)
    results: dict[str, Any] = {
        "bench": "responder_rate",
        "command": "python -m bench.responder_rate "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": source_version(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg_at_start": os.getloadavg(),
        "seconds": args.seconds,
        "privileges": args.privileges,
    }
    wrapper = daemonset_wrapper() if args.privileges == "daemonset" else []
    protos = tuple(args.protos.split(","))
    results.update(sweep(args.seconds, py_rates, tg_rates, protos, not args.no_latency, wrapper))
    results.update(summarize(results))
    if args.cluster:
        results["cluster"] = cluster_flood(max(5.0, args.seconds * 2.5), wrapper)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(render(results))
    for row in results["vs_kernel"]:
        print(json.dumps(row))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
