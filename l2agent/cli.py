"""`l2agent` command line: argument parsing only; each subcommand hands off to its module."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from gossip.config import PRESETS


def _speaker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--node-name",
        default=os.environ.get("NODE_NAME"),
        required=False,
        help="this node's name (default: $NODE_NAME)",
    )
    p.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help="static mode: multi-document YAML of Kubernetes objects (repeatable)",
    )
    p.add_argument(
        "--kubeconfig", default=None, help="Kubernetes mode: kubeconfig path; '-' means in-cluster"
    )
    p.add_argument(
        "--namespace",
        default=os.environ.get("METALLB_NAMESPACE", "metallb-system"),
        help="namespace holding the metallb.io resources",
    )
    p.add_argument(
        "--bind-addr",
        default=None,
        metavar="IP[:PORT]",
        help="gossip bind address (port 7946 by default); without it, members come "
        "from the Node objects in the config",
    )
    p.add_argument("--advertise-addr", default=None, metavar="IP[:PORT]")
    p.add_argument(
        "--join",
        action="append",
        default=[],
        metavar="IP[:PORT]",
        help="gossip peer to join (repeatable)",
    )
    p.add_argument(
        "--secret-key-file",
        default=None,
        help="memberlist key: a MetalLB `memberlist` secret (derived as MetalLB does)",
    )
    p.add_argument(
        "--gossip-preset",
        default="fast",
        choices=sorted(PRESETS),
        help="gossip timings; `fast` is the sub-second failover preset (README)",
    )
    p.add_argument(
        "--realtime-priority",
        type=int,
        default=10,
        metavar="N",
        help="run at SCHED_RR priority N when allowed (CAP_SYS_NICE), as keepalived does, "
        "so a busy CPU cannot delay failure detection; 0 disables",
    )
    p.add_argument(
        "--gossip-set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override any gossip.config.GossipConfig field (repeatable)",
    )
    p.add_argument(
        "--interface-exclude",
        action="append",
        default=None,
        metavar="REGEX",
        help="replace MetalLB's default interface exclusion list (repeatable)",
    )
    p.add_argument(
        "--ignore-exclude-lb",
        action="store_true",
        help="announce from nodes labelled exclude-from-external-load-balancers",
    )
    p.add_argument("--lb-class", default=None, help="only services of this loadBalancerClass")
    p.add_argument(
        "--gratuitous-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="re-announce every owned IP at this interval (switch FDB ageing)",
    )
    p.add_argument(
        "--handover-drain",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="on SIGTERM, keep answering this long after telling the cluster",
    )
    p.add_argument("--metrics-addr", default=":7472", help="HTTP address for /metrics etc.")
    p.add_argument("--log-level", default="info")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="l2agent", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("speaker", help="announce the service IPs this node owns")
    _speaker_args(sp)

    cp = sub.add_parser("controller", help="allocate IPs to LoadBalancer Services")
    cp.add_argument("--kubeconfig", default=None)
    cp.add_argument("--namespace", default=os.environ.get("METALLB_NAMESPACE", "metallb-system"))
    cp.add_argument("--lb-class", default=None)
    cp.add_argument("--metrics-addr", default=":7472")
    cp.add_argument("--identity", default=os.environ.get("POD_NAME"))
    cp.add_argument("--log-level", default="info")

    pp = sub.add_parser("plan", help="explain, offline, who announces what and why")
    pp.add_argument("--config", action="append", required=True, metavar="FILE")
    pp.add_argument("--members", default=None, help="comma-separated live members")
    pp.add_argument("--output", choices=["table", "json"], default="table")
    pp.add_argument("--ignore-exclude-lb", action="store_true")
    pp.add_argument("--lb-class", default=None)
    pp.add_argument("--node", default=None, help="with --frr: the node whose frr.conf to print")
    pp.add_argument(
        "--frr", action="store_true", help="print the frr.conf --node would get (BGP mode)"
    )
    pp.add_argument("--hostname", default=None, help="with --frr: the `hostname` line")
    pp.add_argument(
        "--show-passwords", action="store_true", help="with --frr: print peer passwords"
    )

    st = sub.add_parser("status", help="ownership table and members from running speakers")
    st.add_argument("--speaker", action="append", default=[], metavar="URL")
    st.add_argument("--output", choices=["table", "json"], default="table")

    lp = sub.add_parser("lab", help="the network-namespace lab")
    lp.add_argument(
        "action",
        choices=["demo", "up"],
        help="demo: scripted failover; up: build the lab and keep it until Ctrl-C",
    )
    lp.add_argument("--nodes", type=int, default=3)
    lp.add_argument("--log-level", default="warning")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "speaker":
        from l2agent.speaker_main import run_speaker

        return run_speaker(args)
    if args.command == "controller":
        from l2agent.controller import run_controller

        return run_controller(args)
    if args.command == "plan":
        from l2agent.plan_report import run_plan

        return run_plan(args)
    if args.command == "status":
        from l2agent.status_view import run_status

        return run_status(args)
    if args.command == "lab":
        from l2agent.demo import run_lab

        return run_lab(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
