"""A minimal data-plane driver for the lab: responder + announcer on one interface.

Run inside a node namespace: ``python -m l2agent.lab.respond --iface eth0 [--own IP ...]``.
It wires the real pieces together exactly as a speaker does for one interface
(``NetlinkInventory`` -> ``Responder`` + ``AnnounceSchedule`` + ``Sender``), without any
election: the test (or a person) says which IPs this node owns, on stdin, one command a line:

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
import sys
from collections.abc import Mapping

from l2agent.announce.schedule import AnnounceConfig, AnnounceSchedule
from l2agent.announce.sender import Sender
from l2agent.interfaces.inventory import Interface, reannounce_needed
from l2agent.interfaces.netlink import NetlinkInventory
from l2agent.model.types import IPAddress, format_mac
from l2agent.responder.decide import InterfaceView
from l2agent.responder.loop import MemoryCounters, Responder

log = logging.getLogger(__name__)


def _emit(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Driver:
    """Owns the responder, schedule and sender for one interface, on one event loop."""

    def __init__(self, ifname: str, config: AnnounceConfig) -> None:
        self.ifname = ifname
        self.counters = MemoryCounters()
        self.schedule = AnnounceSchedule(config)
        self.responders: dict[str, Responder] = {}
        self.sender = Sender(self.responders, self.counters)
        self.inventory = NetlinkInventory(on_change=self._inventory_changed)
        self.owned: frozenset[IPAddress] = frozenset()
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None

    async def start(self) -> Interface:
        inv = await self.inventory.start()
        iface = inv.get(self.ifname)
        if iface is None:
            raise SystemExit(f"no interface {self.ifname!r} in this namespace")
        self._open(iface)
        return iface

    def _open(self, iface: Interface) -> None:
        view = InterfaceView(iface.name, iface.mac, iface.link_local)
        responder = Responder(view, iface.index, self.counters, self.owned)
        responder.open()
        self.responders[iface.name] = responder

    def _inventory_changed(
        self, before: Mapping[str, Interface], after: Mapping[str, Interface]
    ) -> None:
        new = after.get(self.ifname)
        old = before.get(self.ifname)
        responder = self.responders.get(self.ifname)
        if new is None:
            if responder is not None:
                responder.close()
                del self.responders[self.ifname]
            return
        if responder is None or (old is not None and old.index != new.index):
            if responder is not None:
                responder.close()
            self._open(new)
        else:
            responder.update_interface(InterfaceView(new.name, new.mac, new.link_local))
        if reannounce_needed(old, new):
            self.schedule.interface_changed(self.ifname, self._loop.time())
            self._rearm()

    def own(self, ips: frozenset[IPAddress]) -> None:
        self.owned = ips
        responder = self.responders.get(self.ifname)
        if responder is not None:
            responder.set_owned(ips)
        self.schedule.set_desired({self.ifname: ips}, self._loop.time())
        self._rearm()

    def _tick(self) -> None:
        self._timer = None
        self.sender.send(self.schedule.tick(self._loop.time()))
        self._rearm()

    def _rearm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.schedule.next_deadline()
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._tick)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for responder in self.responders.values():
            responder.close()
        self.inventory.close()


def _parse_ips(words: list[str]) -> frozenset[IPAddress]:
    return frozenset(ipaddress.ip_address(w) for w in words)


async def run(ifname: str, own: list[str], config: AnnounceConfig) -> None:
    driver = Driver(ifname, config)
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
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    asyncio.run(run(args.iface, args.own, AnnounceConfig(args.rounds, args.interval)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
