"""The node's layer 2 data plane: responders on every eligible interface, the announce
schedule and the sender, kept in step with the interface inventory.

The speaker hands it *what* this node announces (``apply``: IP -> interface selection from
the plan); this object works out *where* (the inventory and the exclusion list), answers
ARP/NS there at once, and sends gratuitous bursts for every gain. It owns the only timer of
the announcer, re-armed from the schedule's and the conflict guard's next deadlines.

Address conflicts (another MAC claiming one of our IPs) go to a ``ConflictGuard``: every
claim is counted (``on_conflict``), the IP is re-announced at most once a second while
claims go on (and once after the last), and they are logged (and reported through
``on_conflict_report``) once when they start, every 10 s while they last, and when they end.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from l2agent.announce.defense import AddressConflict, ConflictGuard, ConflictPhase, DefenseConfig
from l2agent.announce.schedule import AnnounceConfig, AnnounceSchedule, Due
from l2agent.announce.sender import GratuitousCounters, Sender
from l2agent.interfaces.inventory import (
    DEFAULT_EXCLUDE,
    Interface,
    InterfaceSelection,
    desired_by_interface,
    missing_names,
    reannounce_needed,
    responder_interfaces,
)
from l2agent.interfaces.netlink import NetlinkInventory
from l2agent.model.types import IPAddress, format_mac
from l2agent.responder.budget import DataPathBudget
from l2agent.responder.decide import InterfaceView
from l2agent.responder.loop import Responder, ResponderCounters

__all__ = ["Counters", "DataPlane"]

log = logging.getLogger(__name__)


class Counters(ResponderCounters, GratuitousCounters, Protocol):
    """What the data plane counts (``l2agent.metrics.SpeakerMetrics`` is one)."""


class DataPlane:
    """Responders + announcer for every eligible interface of this network namespace.

    ``counters``: responder and gratuitous counters. ``exclude``: interface name regexes
    (MetalLB's defaults). ``on_sent(due, now)``: called after each round that left, so the
    speaker can time failovers and ownership changes from the first packet on the wire.
    ``on_conflict(ip, mac)``: another MAC claimed an IP we announce. ``budget``: how much
    of the event loop the responders may take (``DataPathBudget``'s defaults when None).
    ``defense``: when to re-announce a claimed IP and report it. ``on_conflict_report``:
    an ``AddressConflict`` at a bounded rate (the speaker's Kubernetes Event).
    """

    def __init__(
        self,
        counters: Counters,
        announce: AnnounceConfig,
        *,
        exclude: Sequence[str] = DEFAULT_EXCLUDE,
        on_sent: Callable[[Sequence[Due], float], None] | None = None,
        on_conflict: Callable[[IPAddress, bytes], None] | None = None,
        budget: DataPathBudget | None = None,
        defense: DefenseConfig | None = None,
        on_conflict_report: Callable[[AddressConflict], None] | None = None,
    ) -> None:
        self._counters = counters
        self._budget = budget
        self._guard = ConflictGuard(defense)
        self._on_conflict_report = on_conflict_report
        self._exclude = tuple(exclude)
        self._schedule = AnnounceSchedule(announce)
        self.responders: dict[str, Responder] = {}
        self._sender = Sender(self.responders, counters)
        self._netlink = NetlinkInventory(on_change=self._inventory_changed)
        self._announcements: Mapping[IPAddress, InterfaceSelection] = {}
        self._desired: dict[str, frozenset[IPAddress]] = {}
        self._on_sent = on_sent
        self._on_conflict = on_conflict
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Read the interfaces and open a responder on each eligible one; what was applied
        before (a configuration loaded at start-up) is announced from now on."""
        self._loop = asyncio.get_running_loop()
        inventory = await self._netlink.start()
        self._sync_responders(inventory)
        self._reconcile(changed_interfaces=())

    def close(self) -> None:
        """Stop answering everywhere at once and release the sockets."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = None
        for responder in self.responders.values():
            responder.close()
        self.responders.clear()
        self._netlink.close()

    # -- what to announce ---------------------------------------------------------------------

    @property
    def inventory(self) -> Mapping[str, Interface]:
        return self._netlink.inventory

    @property
    def desired(self) -> Mapping[str, frozenset[IPAddress]]:
        """``ifname -> IPs`` answered there right now."""
        return self._desired

    def interfaces_for(self, ip: IPAddress) -> tuple[str, ...]:
        """The interfaces ``ip`` is announced on right now (sorted)."""
        return tuple(sorted(n for n, ips in self._desired.items() if ip in ips))

    def missing_interfaces(self, ip: IPAddress) -> frozenset[str]:
        """Requested interface names for ``ip`` that this node lacks (``announceFailed``)."""
        selection = self._announcements.get(ip)
        if selection is None:
            return frozenset()
        return missing_names(selection, self._netlink.inventory, self._exclude)

    def announce_failed(self, ip: IPAddress) -> bool:
        """MetalLB's `announceFailed`: `ip` names its interfaces and none of them is here
        (some missing is fine: the IP is announced on the others)."""
        selection = self._announcements.get(ip)
        if self._loop is None or selection is None or selection.all or not selection.names:
            return False  # before start the inventory is not read yet: nothing is missing
        return self.missing_interfaces(ip) >= selection.names

    def apply(self, announcements: Mapping[IPAddress, InterfaceSelection]) -> None:
        """Announce exactly ``announcements`` from now on: losses stop being answered before
        this returns; gains are answered at once and their first round goes out now
        (before `start`, they are kept until then)."""
        self._announcements = dict(announcements)
        if self._loop is not None:
            self._reconcile(changed_interfaces=())

    def _reconcile(self, changed_interfaces: Sequence[str]) -> None:
        inventory = self._netlink.inventory
        self._desired = desired_by_interface(self._announcements, inventory, self._exclude)
        for name, responder in self.responders.items():
            responder.set_owned(self._desired.get(name, frozenset()))
        loop = self._require_loop()
        now = loop.time()
        self._schedule.set_desired(self._desired, now)
        self._guard.keep(self._desired)
        for name in changed_interfaces:
            self._schedule.interface_changed(name, now)
        self._tick()

    # -- timers and inventory -----------------------------------------------------------------

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("DataPlane.start() was not awaited")
        return self._loop

    def _tick(self) -> None:
        loop = self._require_loop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = None
        now = loop.time()
        due = self._schedule.tick(now)
        defend, reports = self._guard.tick(now)
        for report in reports:
            self._report(report)
        due += [d for d in defend if d not in due]
        if due:
            self._sender.send(due)
            if self._on_sent is not None:
                self._on_sent(due, now)
        deadlines = (self._schedule.next_deadline(), self._guard.next_deadline())
        deadline = min((d for d in deadlines if d is not None), default=None)
        if deadline is not None:
            self._timer = loop.call_at(deadline, self._tick)
            self._timer_at = deadline

    # -- address conflicts --------------------------------------------------------------------

    def _claimed(self, ifname: str, ip: IPAddress, mac: bytes) -> None:
        """A responder saw ``mac`` claim ``ip`` on ``ifname`` (once per frame)."""
        if self._on_conflict is not None:
            self._on_conflict(ip, mac)
        loop = self._loop
        if loop is None:
            return
        report, defend_at = self._guard.claim(ifname, ip, mac, loop.time())
        if report is not None:
            self._report(report)
        if defend_at is not None and (self._timer_at is None or defend_at < self._timer_at):
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(defend_at, self._tick)
            self._timer_at = defend_at

    def _report(self, conflict: AddressConflict) -> None:
        who = format_mac(conflict.mac)
        if conflict.phase is ConflictPhase.STARTED:
            log.warning(
                "address conflict on %s: %s claims %s, which this node announces; "
                "re-announcing it at most once a second while the claims go on",
                conflict.ifname,
                who,
                conflict.ip,
            )
        else:
            log.warning(
                "address conflict on %s for %s (last claimed by %s) %s: %d claims, "
                "%d re-announcements since the last report",
                conflict.ifname,
                conflict.ip,
                who,
                conflict.phase.value,
                conflict.claims,
                conflict.defenses,
            )
        if self._on_conflict_report is not None:
            self._on_conflict_report(conflict)

    def _sync_responders(self, inventory: Mapping[str, Interface]) -> None:
        wanted = responder_interfaces(inventory, self._exclude)
        for name in list(self.responders):
            current = inventory.get(name)
            old = self.responders[name]
            if name not in wanted or current is None or current.index != old.ifindex:
                old.close()
                del self.responders[name]
        for name in sorted(wanted):
            iface = inventory[name]
            view = InterfaceView(iface.name, iface.mac, iface.link_local)
            responder = self.responders.get(name)
            if responder is None:
                owned = self._desired.get(name, frozenset())
                responder = Responder(view, iface.index, self._counters, owned, budget=self._budget)
                responder.on_conflict = functools.partial(self._claimed, name)
                try:
                    responder.open()
                except OSError as exc:
                    log.error("cannot open a responder on %s: %s", name, exc)
                    continue
                self.responders[name] = responder
            elif responder.iface != view:
                responder.update_interface(view)

    def _inventory_changed(
        self, before: Mapping[str, Interface], after: Mapping[str, Interface]
    ) -> None:
        self._sync_responders(after)
        changed = [n for n, i in after.items() if reannounce_needed(before.get(n), i)]
        if changed:
            log.info("re-announcing on %s (came up or changed MAC)", ", ".join(sorted(changed)))
        if self._loop is not None:
            self._reconcile(changed_interfaces=changed)
