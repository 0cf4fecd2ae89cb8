"""`make bench`: the failover benchmark, then the cheap companions.

``python -m bench [--trials 20] [--only-failover]``. Runs ``bench.failover`` (results in
``bench/results/failover.{json,md,png}``), then ``bench.responder_rate`` (ARP/NS answering
rate against the kernel). ``bench.gossip_scale`` (simulated clusters up to 1000 members)
is slow and runs on its own: ``python -m bench.gossip_scale``.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20, help="failover trials per case")
    ap.add_argument("--only-failover", action="store_true")
    args = ap.parse_args(argv)
    from bench import failover

    status = failover.main(["--trials", str(args.trials)])
    if args.only_failover:
        return status
    from bench import responder_rate

    print("== responder rate (bench/results/responder_rate.json)", flush=True)
    return status or responder_rate.main([])


if __name__ == "__main__":
    sys.exit(main())
