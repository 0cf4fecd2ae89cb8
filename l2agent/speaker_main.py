"""`l2agent speaker`: turn command-line arguments into a running Speaker."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import sys
from pathlib import Path

from l2agent import logs
from l2agent.announce.schedule import AnnounceConfig
from l2agent.interfaces.inventory import DEFAULT_EXCLUDE
from l2agent.speaker import Membership, Speaker, SpeakerOptions, StaticMembership

GOSSIP_PORT = 7946

log = logging.getLogger(__name__)


def _addr(text: str) -> tuple[str, int]:
    """IP, IP:PORT, [v6]:PORT -> (ip, port)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest.lstrip(":") or GOSSIP_PORT)
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, GOSSIP_PORT


def build_membership(args: argparse.Namespace, node: str) -> Membership:
    """Static members (the Node objects) without --bind-addr; gossip with it."""
    if not args.bind_addr:
        return StaticMembership()
    from gossip import config as presets
    from gossip.keyring import Keyring, metallb_key
    from l2agent.gossip_membership import GossipMembership

    bind_ip, bind_port = _addr(args.bind_addr)
    adv_ip, adv_port = _addr(args.advertise_addr) if args.advertise_addr else (bind_ip, bind_port)
    config = presets.PRESETS[args.gossip_preset](
        node, bind_addr=bind_ip, bind_port=bind_port, advertise_addr=adv_ip, advertise_port=adv_port
    )
    config = presets.with_settings(config, args.gossip_set)
    keyring = None
    if args.secret_key_file:
        keyring = Keyring((metallb_key(Path(args.secret_key_file).read_bytes()),))
    return GossipMembership(config, [_addr(j) for j in args.join], keyring=keyring)


def options_from(args: argparse.Namespace) -> SpeakerOptions:
    announce = AnnounceConfig(refresh_interval=args.gratuitous_interval)
    return SpeakerOptions(
        node=args.node_name,
        config_paths=tuple(Path(p) for p in args.config),
        exclude=tuple(args.interface_exclude) if args.interface_exclude else DEFAULT_EXCLUDE,
        ignore_exclude_lb=args.ignore_exclude_lb,
        lb_class=args.lb_class,
        announce=announce,
        handover_drain=args.handover_drain,
        metrics_addr=args.metrics_addr or None,
        static_inputs=not args.kubeconfig,
    )


def raise_priority(priority: int) -> None:
    """Ask for SCHED_RR at ``priority`` (keepalived's ``vrrp_rt_priority`` idea).

    The speaker needs a few percent of a CPU, but it needs it within milliseconds: a probe
    answered 100 ms late under a CPU-bound neighbour looks like a dead node. The kernel's RT
    throttling (95% by default) still keeps a runaway speaker from locking a CPU.
    """
    if priority <= 0:
        return
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
    except (OSError, AttributeError) as exc:
        log.warning(
            "cannot run at realtime priority %d (%s); a busy CPU may delay "
            "failure detection (grant CAP_SYS_NICE)",
            priority,
            exc,
        )
        return
    log.info("running at SCHED_RR priority %d", priority)


def run_speaker(args: argparse.Namespace) -> int:
    logs.setup(args.log_level)
    if not args.node_name:
        print("l2agent speaker: --node-name (or $NODE_NAME) is required", file=sys.stderr)
        return 2
    if not args.config and not args.kubeconfig:
        print("l2agent speaker: give --config FILE (static) or --kubeconfig", file=sys.stderr)
        return 2

    async def main() -> int:
        speaker = Speaker(options_from(args), build_membership(args, args.node_name))
        speaker.on_started.append(functools.partial(raise_priority, args.realtime_priority))
        if args.kubeconfig:
            from l2agent.kube_speaker import attach_kube_source

            link = await attach_kube_source(speaker, args)
            if link.task is not None:
                link.task.cancel()  # the plan listener below replaces its polling
            speaker.plan_listeners.append(lambda _plan: link.check_plan())
            speaker.ready_checks.append(lambda: bool(link.source.synced))
            speaker.on_shutdown.append(link.source.stop)
        return await speaker.run()

    return asyncio.run(main())
