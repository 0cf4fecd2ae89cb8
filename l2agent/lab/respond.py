"""A minimal data-plane driver for the lab: responder + announcer on one interface.

Run inside a node namespace: ``python -m l2agent.lab.respond --iface eth0 [--own IP ...]``.
It runs the speaker's data plane (``l2agent.speaker.dataplane.DataPlane``: netlink inventory,
responders, announce schedule and sender) for one interface, without any election: the test
(or a person) says which IPs this node owns, on stdin, one command a line:

- ``own IP [IP ...]``: this node now owns exactly these IPs (``own`` alone: none); gains are
  announced at once (then per the schedule), losses stop being answered at once;
- ``counters``: print the counters as JSON; ``groups``: print the joined multicast MACs;
- ``quit`` (or end of input): exit.

Every answer is one JSON line on stdout; the first is ``{"ready": true, ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import sys
from collections.abc import Mapping

from l2agent.announce.schedule import AnnounceConfig
from l2agent.interfaces.inventory import Interface
from l2agent.model.crds import InterfaceSelection
from l2agent.model.types import IPAddress, format_mac
from l2agent.responder.budget import DataPathBudget
from l2agent.responder.loop import MemoryCounters, Responder
from l2agent.speaker.dataplane import DataPlane

log = logging.getLogger(__name__)


def _emit(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Driver:
    """The speaker's own data plane (:class:`l2agent.speaker.dataplane.DataPlane`) told to announce
    ``own``'s IPs on one interface: what a speaker does once its plan is made."""

    def __init__(
        self, ifname: str, config: AnnounceConfig, budget: DataPathBudget | None = None
    ) -> None:
        self.ifname = ifname
        self.counters = MemoryCounters()
        self.plane = DataPlane(self.counters, config, budget=budget)
        self.owned: frozenset[IPAddress] = frozenset()
        self._loop = asyncio.get_running_loop()

    @property
    def responders(self) -> Mapping[str, Responder]:
        return self.plane.responders

    async def start(self) -> Interface:
        await self.plane.start()
        iface = self.plane.inventory.get(self.ifname)
        if iface is None or self.ifname not in self.plane.responders:
            raise SystemExit(f"no eligible interface {self.ifname!r} in this namespace")
        return iface

    def own(self, ips: frozenset[IPAddress]) -> None:
        self.owned = ips
        here = InterfaceSelection(False, frozenset({self.ifname}))
        self.plane.apply(dict.fromkeys(ips, here))

    def close(self) -> None:
        self.plane.close()


def _parse_ips(words: list[str]) -> frozenset[IPAddress]:
    return frozenset(ipaddress.ip_address(w) for w in words)


async def run(
    ifname: str, own: list[str], config: AnnounceConfig, budget: DataPathBudget | None = None
) -> None:
    driver = Driver(ifname, config, budget)
    iface = await driver.start()
    driver.own(_parse_ips(own))
    _emit({"ready": True, "iface": ifname, "mac": format_mac(iface.mac)})
    reader = asyncio.StreamReader()
    await driver._loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := (await reader.readline()).decode():
            words = line.split()
            if not words:
                continue
            try:
                if words[0] == "own":
                    driver.own(_parse_ips(words[1:]))
                    _emit({"owned": sorted(str(ip) for ip in driver.owned)})
                elif words[0] == "counters":
                    _emit(driver.counters.as_dict())
                elif words[0] == "groups":
                    responder = driver.responders.get(ifname)
                    groups = responder.joined_groups() if responder else frozenset()
                    _emit({"groups": sorted(format_mac(g) for g in groups)})
                elif words[0] == "quit":
                    break
                else:
                    _emit({"error": f"unknown command {words[0]!r}"})
            except ValueError as exc:
                _emit({"error": str(exc)})
    finally:
        driver.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iface", default="eth0")
    parser.add_argument("--own", nargs="*", default=[], help="IPs owned from the start")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--interval", type=float, default=1.1)
    parser.add_argument(
        "--realtime-priority",
        type=int,
        default=0,
        metavar="N",
        help="run at SCHED_RR priority N, as the speaker does by default (benchmarks)",
    )
    parser.add_argument(
        "--share", type=float, default=None, help="DataPathBudget.share (default: its own)"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.realtime_priority > 0:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(args.realtime_priority))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    budget = DataPathBudget(share=args.share) if args.share is not None else None
    asyncio.run(run(args.iface, args.own, AnnounceConfig(args.rounds, args.interval), budget))
    return 0


if __name__ == "__main__":
    sys.exit(main())
