"""`l2agent speaker`: turn command-line arguments into a running Speaker (composition root)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import logging
import os
import sys
from pathlib import Path

from gossip.actions import Address
from gossip.addresses import GOSSIP_PORT, format_address, parse_address, split_list
from gossip.errors import LocalError as GossipLocalError
from l2agent import logs
from l2agent.announce.schedule import AnnounceConfig
from l2agent.health import parse_metrics_addr
from l2agent.interfaces.inventory import DEFAULT_EXCLUDE
from l2agent.metrics import SpeakerMetrics
from l2agent.plan import InputSource
from l2agent.speaker.bgp import attach_bgp
from l2agent.speaker.files import ConfigFiles
from l2agent.speaker.gossip import GossipMembership
from l2agent.speaker.keys import GossipKeys
from l2agent.speaker.membership import Membership, StaticMembership
from l2agent.speaker.run import Speaker, SpeakerOptions

__all__ = [
    "build_gossip",
    "build_membership",
    "metrics_address",
    "options_from",
    "raise_priority",
    "run_speaker",
]

log = logging.getLogger(__name__)


def join_targets(values: list[str], port: int) -> list[Address]:
    """`--join` values (repeatable, each may be a comma list) as (host, port) targets."""
    return [parse_address(item, port) for item in split_list(values)]


def build_membership(args: argparse.Namespace, node: str) -> Membership | GossipMembership:
    """Static members (the Node objects) without --bind-addr; gossip with it. Raises the
    gossip package's `LocalError` for an address or a `--gossip-set` that does not parse,
    OSError for a key file that cannot be read."""
    return build_gossip(args, node)[0]


def build_gossip(
    args: argparse.Namespace, node: str
) -> tuple[Membership | GossipMembership, GossipKeys | None]:
    """`build_membership`, and the gossip keys when a --secret-key-file is given (watched
    once attached: a changed secret rotates the key without a split)."""
    if not args.bind_addr:
        return StaticMembership(), None
    from gossip import config as presets
    from gossip.rotation import rotation_settle

    bind_ip, bind_port = parse_address(args.bind_addr, args.gossip_port)
    adv_ip, adv_port = (
        parse_address(args.advertise_addr, bind_port)
        if args.advertise_addr
        else (bind_ip, bind_port)
    )
    config = presets.PRESETS[args.gossip_preset](
        node, bind_addr=bind_ip, bind_port=bind_port, advertise_addr=adv_ip, advertise_port=adv_port
    )
    config = presets.with_settings(config, args.gossip_set)
    join = join_targets(args.join, bind_port)
    if not args.secret_key_file:
        return GossipMembership(config, join), None
    keys = GossipKeys(Path(args.secret_key_file), settle=rotation_settle(config))
    return GossipMembership(config, join, keyring=keys.keyring(), meta=keys.meta()), keys


def metrics_address(args: argparse.Namespace) -> str | None:
    """`--metrics-addr` and `--metrics-port` as one `HOST:PORT` text (None: turned off by
    an empty `--metrics-addr`). Raises `BadAddress` for a text that does not parse."""
    if args.metrics_addr == "":
        return None
    host, port = parse_metrics_addr(args.metrics_addr or "", args.metrics_port)
    return format_address(host, port) if host else f":{port}"


def options_from(args: argparse.Namespace) -> SpeakerOptions:
    return SpeakerOptions(
        node=args.node_name,
        exclude=tuple(args.interface_exclude) if args.interface_exclude else DEFAULT_EXCLUDE,
        ignore_exclude_lb=args.ignore_exclude_lb,
        lb_class=args.lb_class or None,  # the manifests pass an empty --lb-class for "none"
        announce=AnnounceConfig(refresh_interval=args.gratuitous_interval),
        handover_drain=args.handover_drain,
        metrics_addr=metrics_address(args),
        source=InputSource.CLUSTER if args.kubeconfig else InputSource.STATIC,
    )


def raise_priority(priority: int) -> None:
    """Ask for SCHED_RR at `priority` (keepalived's `vrrp_rt_priority` idea).

    The speaker needs a few percent of a CPU, but it needs it within milliseconds: a probe
    answered 100 ms late under a CPU-bound neighbour looks like a dead node. The kernel's RT
    throttling (95% by default) still keeps a runaway speaker from locking a CPU.
    """
    if priority <= 0:
        return
    try:
        # SCHED_RESET_ON_FORK: children (frr-reload.py, vtysh) start as normal processes,
        # so a reload can never starve FRR's own daemons (bfdd) of the CPU.
        os.sched_setscheduler(0, os.SCHED_RR | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
    except (OSError, AttributeError) as exc:
        if _has_sys_nice():
            why = (
                "the kernel's realtime group scheduling (CONFIG_RT_GROUP_SCHED) gives this "
                "cgroup no realtime budget (cpu.rt_runtime_us); see deploy/README.md"
            )
        else:
            why = "grant CAP_SYS_NICE, as the shipped DaemonSet does"
        log.warning(
            "cannot run at realtime priority %d (%s): %s; a busy CPU may delay failure "
            "detection (--realtime-priority=0 turns this off)",
            priority,
            exc,
            why,
        )
        return
    log.info("running at SCHED_RR priority %d", priority)


_CAP_SYS_NICE = 23


def _has_sys_nice() -> bool:
    """Is CAP_SYS_NICE in this process's effective set (/proc/self/status CapEff)?"""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> _CAP_SYS_NICE & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def steady_loop() -> None:
    """Keep the event loop's turns short whatever else runs in the process.

    Configuration files are parsed in a worker thread; under the GIL the loop then waits
    up to the switch interval (5 ms by default) for every turn: 1 ms keeps a probe answer
    prompt. And the start-up heap (imports, the first plan) is frozen out of the cyclic
    collector, so a full collection later scans only what was made since.
    """
    sys.setswitchinterval(0.001)
    gc.freeze()


def _usage_error(message: str) -> int:
    print(f"l2agent speaker: {message}", file=sys.stderr)
    return 2


def run_speaker(args: argparse.Namespace) -> int:
    logs.setup(args.log_level)
    if not args.node_name:
        return _usage_error("--node-name (or $NODE_NAME) is required")
    if not args.config and not args.kubeconfig:
        return _usage_error("give --config FILE|DIR (static) or --kubeconfig")
    try:
        membership, keys = build_gossip(args, args.node_name)
        options = options_from(args)
    except (GossipLocalError, OSError) as exc:  # bad address, setting, or key file
        return _usage_error(str(exc))

    async def main() -> int:
        speaker = Speaker(options, membership)
        speaker.on_started.append(functools.partial(raise_priority, args.realtime_priority))
        speaker.on_started.append(steady_loop)
        bgp = attach_bgp(
            speaker,
            config_dir=Path(args.frr_config_dir),
            run_dir=Path(args.frr_run_dir),
            drain=args.bgp_drain,
        )
        if keys is not None and isinstance(membership, GossipMembership):
            keys.attach(membership)
            speaker.background.append(keys.watch)
            speaker.status_sections["gossip_keys"] = keys.status_document
            speaker.metrics.watch_gossip_keys(keys.report)
        if args.config and not _attach_files(speaker, args.config, speaker.metrics):
            return 2
        if args.kubeconfig:
            from l2agent.speaker.kube import attach_kube_source

            link = attach_kube_source(
                speaker,
                kubeconfig=args.kubeconfig,
                namespace=args.namespace,
                set_peers=(
                    membership.set_peers if isinstance(membership, GossipMembership) else None
                ),
                gossip_port=(
                    membership.config.bind_port
                    if isinstance(membership, GossipMembership)
                    else GOSSIP_PORT
                ),
                bgp=bgp,
            )
            if isinstance(membership, GossipMembership):
                membership.on_key_mismatch.append(link.source.key_mismatch)
        return await speaker.run()

    return asyncio.run(main())


def _attach_files(speaker: Speaker, paths: list[str], metrics: SpeakerMetrics) -> bool:
    """Static mode: load the files (False: unusable, and nothing good to fall back on)."""
    files = ConfigFiles(
        [Path(p) for p in paths], speaker.offer, on_unreadable=metrics.config_rejected
    )
    if not files.load() and speaker.state is None:
        return False
    speaker.on_reload.append(files.reload)
    speaker.background.append(files.watch)
    return True
