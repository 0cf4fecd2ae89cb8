"""ARP/NS answering: our responder against the Linux kernel, same lab, same interface, same run.

In a one-node lab, the node's kernel answers for the node's own addresses on eth0
(192.0.2.11, 2001:db8::11) while our responder (``l2agent.lab.respond``) answers for VIPs
on the same eth0 (192.0.2.200, 2001:db8::200). A load generator in the client namespace
(request templates built by scapy, sent on an AF_PACKET socket) measures, per
(protocol, answerer):

- latency: one request at a time, the time from send to the matching reply seen by the
  client (p50/p99 over ``--samples`` requests), which includes the client's own overhead,
  the same for both answerers;
- rate: requests sent back to back for ``--seconds``, replies counted; ``sent_per_s`` shows
  whether the generator (Python) rather than the answerer was the limit.

Usage: ``python -m bench.responder_rate [--samples 2000] [--seconds 3] [--out FILE]``
(root, iproute2). Writes JSON to ``bench/results/responder_rate.json`` by default.
Numbers are measured, not asserted; on a shared 2-core machine they are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from l2agent.lab.netns import Lab
from l2agent.lab.topology import client_address, client_mac, node_address, vip

RESULTS = Path(__file__).resolve().parent / "results"

# Runs inside the client namespace: argv = mode, proto, target, samples|seconds.
_GENERATOR = r"""
import json, select, socket, struct, sys, time
from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.utils6 import in6_getnsma, in6_getnsmac
from socket import inet_pton, AF_INET6

mode, proto, target, amount, me_mac, me4, me6 = sys.argv[1:8]
amount = float(amount)
if proto == "arp":
    tmpl = bytes(Ether(src=me_mac, dst="ff:ff:ff:ff:ff:ff")
                 / ARP(op=1, hwsrc=me_mac, psrc=me4, pdst=target))
    want_type = b"\x08\x06"
    tgt = socket.inet_aton(target)
    def is_reply(f):
        # ARP reply (op 2) whose sender protocol address is the target
        return f[12:14] == want_type and f[20:22] == b"\x00\x02" and f[28:32] == tgt
else:
    group = in6_getnsma(inet_pton(AF_INET6, target))
    tmpl = bytes(Ether(src=me_mac, dst=in6_getnsmac(group))
                 / IPv6(src=me6, dst=socket.inet_ntop(AF_INET6, group), hlim=255)
                 / ICMPv6ND_NS(tgt=target) / ICMPv6NDOptSrcLLAddr(lladdr=me_mac))
    tgt = inet_pton(AF_INET6, target)
    def is_reply(f):
        # ICMPv6 (58) Neighbor Advertisement (136) for the target
        return f[12:14] == b"\x86\xdd" and f[20] == 58 and f[54] == 136 and f[62:78] == tgt

sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
sock.bind(("eth0", 0))
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
sock.setblocking(False)

def drain():
    n = 0
    while True:
        try:
            f = sock.recv(2048)
        except BlockingIOError:
            return n
        if is_reply(f):
            n += 1

if mode == "latency":
    rtts, lost = [], 0
    for _ in range(int(amount)):
        drain()
        t0 = time.perf_counter()
        sock.send(tmpl)
        got = False
        deadline = t0 + 0.2
        while not got:
            left = deadline - time.perf_counter()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                break
            while True:
                try:
                    f = sock.recv(2048)
                except BlockingIOError:
                    break
                if is_reply(f):
                    rtts.append(time.perf_counter() - t0)
                    got = True
                    break
        lost += not got
    print(json.dumps({"rtts": rtts, "lost": lost}))
else:
    sent = replies = 0
    start = time.perf_counter()
    end = start + amount
    while time.perf_counter() < end:
        for _ in range(32):
            try:
                sock.send(tmpl)
                sent += 1
            except BlockingIOError:
                break
            except OSError:
                break
        replies += drain()
    t_send = time.perf_counter() - start
    settle = time.perf_counter() + 0.3
    while time.perf_counter() < settle:
        replies += drain()
        time.sleep(0.01)
    print(json.dumps({"sent": sent, "replies": replies, "seconds": t_send}))
"""


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _generate(lab: Lab, mode: str, proto: str, target: str, amount: float) -> dict[str, Any]:
    argv = [
        sys.executable,
        "-c",
        _GENERATOR,
        mode,
        proto,
        target,
        str(amount),
        ":".join(f"{b:02x}" for b in client_mac()),
        str(client_address(4)),
        str(client_address(6)),
    ]
    out: dict[str, Any] = json.loads(lab.exec("client", argv, timeout=600))
    return out


def run(samples: int, seconds: float) -> dict[str, Any]:
    v4, v6 = vip(0, 4), vip(0, 6)
    results: dict[str, Any] = {
        "bench": "responder_rate",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg_at_start": os.getloadavg(),
        "samples": samples,
        "seconds": seconds,
        "cases": {},
    }
    with Lab(nodes=1, vips=(v4, v6)) as lab:
        agent = lab.spawn(
            "node1",
            [
                sys.executable,
                "-m",
                "l2agent.lab.respond",
                "--iface",
                "eth0",
                "--own",
                str(v4),
                str(v6),
                "--rounds",
                "1",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert agent.stdout is not None and agent.stdin is not None
        ready = json.loads(agent.stdout.readline())
        if not ready.get("ready"):
            raise SystemExit(f"responder did not start: {ready}")
        targets = {
            ("arp", "kernel"): str(node_address(1, 4)),
            ("arp", "l2agent"): str(v4),
            ("ns", "kernel"): str(node_address(1, 6)),
            ("ns", "l2agent"): str(v6),
        }
        for (proto, who), target in targets.items():
            lat = _generate(lab, "latency", proto, target, samples)
            rate = _generate(lab, "rate", proto, target, seconds)
            rtts_us = [r * 1e6 for r in lat["rtts"]]
            case = {
                "target": target,
                "latency_us": {
                    "p50": round(_percentile(rtts_us, 0.50), 1),
                    "p99": round(_percentile(rtts_us, 0.99), 1),
                    "mean": round(statistics.fmean(rtts_us), 1) if rtts_us else None,
                    "answered": len(rtts_us),
                    "lost": lat["lost"],
                },
                "rate": {
                    "sent_per_s": round(rate["sent"] / rate["seconds"]),
                    "replies_per_s": round(rate["replies"] / rate["seconds"]),
                    "reply_ratio": round(rate["replies"] / max(1, rate["sent"]), 3),
                    # All requests answered: the Python generator, not the answerer, was the
                    # limit, so replies_per_s is a lower bound for this answerer.
                    "limited_by": "generator"
                    if rate["replies"] >= 0.99 * rate["sent"]
                    else "answerer",
                },
            }
            results["cases"][f"{proto}/{who}"] = case
            print(f"{proto:3} {who:7} {json.dumps(case)}", flush=True)
        agent.stdin.write("counters\n")
        agent.stdin.flush()
        results["l2agent_counters"] = json.loads(agent.stdout.readline())
    for proto in ("arp", "ns"):
        ours, kernel = results["cases"][f"{proto}/l2agent"], results["cases"][f"{proto}/kernel"]
        results[f"{proto}_ratio_vs_kernel"] = {
            "replies_per_s": round(
                ours["rate"]["replies_per_s"] / max(1, kernel["rate"]["replies_per_s"]), 3
            ),
            "latency_p50": round(ours["latency_us"]["p50"] / kernel["latency_us"]["p50"], 3),
            "latency_p99": round(ours["latency_us"]["p99"] / kernel["latency_us"]["p99"], 3),
        }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=2000, help="latency requests per case")
    parser.add_argument("--seconds", type=float, default=3.0, help="rate test length per case")
    parser.add_argument("--out", type=Path, default=RESULTS / "responder_rate.json")
    args = parser.parse_args(argv)
    results = run(args.samples, args.seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
