"""`l2agent`'s argument parser: one function per group of flags, parsing only."""

from __future__ import annotations

import argparse
import os

from gossip.addresses import GOSSIP_PORT
from gossip.config import PRESETS
from l2agent.health import METRICS_PORT

__all__ = ["build_parser"]

_NAMESPACE = os.environ.get("METALLB_NAMESPACE", "metallb-system")


def _config_arg(p: argparse.ArgumentParser, help_text: str, *, required: bool = False) -> None:
    p.add_argument(
        "--config",
        nargs="+",
        action="extend",
        default=[],
        required=required,
        metavar="FILE|DIR",
        help=help_text + "; files or directories (their *.yaml, *.yml, *.json, sorted), "
        "several after one flag or the flag repeated",
    )


def _source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--node-name",
        default=os.environ.get("NODE_NAME"),
        required=False,
        help="this node's name (default: $NODE_NAME)",
    )
    _config_arg(p, "static mode: multi-document YAML of Kubernetes objects")
    p.add_argument(
        "--kubeconfig", default=None, help="Kubernetes mode: kubeconfig path; '-' means in-cluster"
    )
    p.add_argument(
        "--namespace", default=_NAMESPACE, help="namespace holding the metallb.io resources"
    )


def _gossip_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bind-addr",
        default=None,
        metavar="IP[:PORT]",
        help="gossip bind address (IPv6 bare or in brackets; port --gossip-port unless "
        "given); without it, members come from the Node objects in the config. Without "
        "--secret-key-file the gossip is plaintext and unauthenticated: anyone on the node "
        "network can forge membership",
    )
    p.add_argument(
        "--gossip-port",
        type=int,
        default=GOSSIP_PORT,
        metavar="PORT",
        help=f"gossip port (TCP and UDP) where an address gives none (default {GOSSIP_PORT}; "
        "change it to run beside MetalLB's speakers)",
    )
    p.add_argument("--advertise-addr", default=None, metavar="IP[:PORT]")
    p.add_argument(
        "--join",
        action="append",
        default=[],
        metavar="HOST[:PORT][,...]",
        help="gossip peers to join (repeatable, or a comma-separated list)",
    )
    p.add_argument(
        "--secret-key-file",
        default=None,
        help="memberlist key: a MetalLB `memberlist` secret (derived as MetalLB does). "
        "Strongly recommended: plaintext gossip is unauthenticated. Every speaker needs the "
        "same key; one with another key stays unready and says so",
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


def _announce_args(p: argparse.ArgumentParser) -> None:
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
    _metrics_args(p, "/metrics, /healthz, /readyz, /status; an empty value turns it off")
    p.add_argument("--log-level", default="info")


def _metrics_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--metrics-addr",
        default=None,
        metavar="HOST[:PORT]",
        help=f"HTTP address for {what} (default: every address; an IPv6 host bare or in "
        "brackets, so `--metrics-addr=$(HOST_IP)` works on any node)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=METRICS_PORT,
        metavar="PORT",
        help=f"HTTP port where --metrics-addr gives none (default {METRICS_PORT}, MetalLB's; "
        "change it to run beside MetalLB)",
    )


def _bgp_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--frr-config-dir",
        default="/etc/frr",
        metavar="DIR",
        help="BGP mode: where frr.conf is written (shared with the FRR sidecar)",
    )
    p.add_argument(
        "--frr-run-dir",
        default="/var/run/frr",
        metavar="DIR",
        help="BGP mode: where FRR's daemons keep their vty sockets",
    )
    p.add_argument(
        "--bgp-drain",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="on SIGTERM, wait at most this long for FRR to withdraw every prefix",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="l2agent",
        description="A MetalLB-compatible load-balancer agent for bare-metal Kubernetes.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("speaker", help="announce the service IPs this node owns")
    _source_args(sp)
    _gossip_args(sp)
    _announce_args(sp)
    _bgp_args(sp)

    cp = sub.add_parser("controller", help="allocate IPs to LoadBalancer Services")
    cp.add_argument("--kubeconfig", default=None)
    cp.add_argument("--namespace", default=_NAMESPACE)
    cp.add_argument("--lb-class", default=None)
    _metrics_args(cp, "/metrics, /healthz, /readyz")
    cp.add_argument("--identity", default=os.environ.get("POD_NAME"))
    cp.add_argument("--log-level", default="info")

    pp = sub.add_parser("plan", help="explain, offline, who announces what and why")
    _config_arg(pp, "the objects to plan for (e.g. a `kubectl get -o yaml` dump)", required=True)
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
