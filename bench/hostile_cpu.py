"""CPU time of one engine call under hostile input (issue 11): the typical and worst figure
behind the suite's generous 50 ms bound.

    python -m bench.hostile_cpu [--repeat 200] [--out bench/results/hostile_cpu.json]

Each case feeds one kind of input to a fresh fast-preset engine, call after call, and
records the CPU time of every call (the collector paused around it: its pauses belong to
the process's heap, not to the input). Compared against the same engine's cost for an
ordinary ping from a member, measured in the same run.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

from bench.hostile import compound, msg, ping_bomb
from gossip.config import fast
from gossip.engine import Engine

RESULTS = Path(__file__).resolve().parent / "results"
SRC = ("198.51.100.66", 7946)


def _engine() -> Engine:
    return Engine(fast("bench", bind_addr="192.0.2.1"), random.Random(1), now=0.0)


def _timed(call: Callable[[], None]) -> float:
    gc.disable()
    t = time.process_time()
    call()
    spent = time.process_time() - t
    gc.enable()
    return spent


def _udp_case(data: bytes, repeat: int) -> list[float]:
    eng = _engine()
    out = []
    for i in range(repeat):
        out.append(_timed(lambda: eng.handle_packet(data, SRC, i * 0.01)))  # noqa: B023
        eng.packets_to_send()
        while eng.next_event() is not None:
            pass
    return out


def _push_pull_case(states: int) -> list[float]:
    """A 20,000-state push/pull arriving whole: the first call and every continuation."""
    eng = Engine(
        fast("bench", bind_addr="192.0.2.1", max_members=100_000), random.Random(1), now=0.0
    )
    body = msgpack.packb({"Join": False, "Nodes": states, "UserStateLen": 0})
    body += b"".join(
        msgpack.packb(
            {"Name": f"m{i}", "Addr": bytes([10, 1, i >> 8 & 255, i & 255]), "Port": 7946,
             "Meta": b"", "Incarnation": 1, "State": 0, "Vsn": bytes([1, 5, 2, 0, 0, 0])},
            use_bin_type=False,
        )
        for i in range(states)
    )  # fmt: skip
    conn = eng.stream_accepted(SRC, 0.0)
    out = [_timed(lambda: eng.handle_stream(conn, b"\x06" + body, 0.0))]
    now = 0.0
    while eng.next_deadline() == eng._now and len(out) < 100_000:
        now += 0.0001
        out.append(_timed(lambda: eng.tick(now)))  # noqa: B023
        while eng.next_event() is not None:
            pass
    return out


def _summary(samples: list[float]) -> dict[str, Any]:
    ms = sorted(s * 1000 for s in samples)
    return {
        "calls": len(ms),
        "median_ms": round(statistics.median(ms), 4),
        "p99_ms": round(ms[int(0.99 * (len(ms) - 1))], 4),
        "max_ms": round(ms[-1], 4),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--out", type=Path, default=RESULTS / "hostile_cpu.json")
    args = ap.parse_args(argv)
    ping = msg(0, {"SeqNo": 1, "Node": "bench", "SourceAddr": bytes([198, 51, 100, 66]),
                   "SourcePort": 7946, "SourceNode": "peer"})  # fmt: skip
    cases = {
        "ordinary ping (reference)": _udp_case(ping, args.repeat),
        "255 garbage parts": _udp_case(compound([b"\x63junk"] * 255), args.repeat),
        "nested ping bomb (65,025 pings)": _udp_case(ping_bomb(), args.repeat),
        "255 pings": _udp_case(compound([ping] * 255), args.repeat),
        "20,000-state push/pull, per call": _push_pull_case(20_000),
    }
    report = {name: _summary(samples) for name, samples in cases.items()}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
