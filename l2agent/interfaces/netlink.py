"""Live interface inventory from rtnetlink: one dump, then link/address events (no polling).

Usage inside the speaker's event loop::

    inv = NetlinkInventory(on_change=lambda before, after: ...)
    first = await inv.start()        # subscribe, dump, start reading events
    ...
    inv.close()

``on_change(before, after)`` receives two ``name -> Interface`` snapshots each time a batch
of netlink messages changed anything; the pure rules in ``inventory.py`` turn them into
decisions (``responder_interfaces``, ``reannounce_needed``...). The event socket is
subscribed *before* the dump, so nothing is missed; events that raced the dump are applied
again, which is harmless because each message carries the full link state or one address.
If the kernel overflows our receive buffer (ENOBUFS: events were lost), the adapter
re-subscribes and re-dumps.

Runs in the calling process's network namespace (the lab starts the speaker inside the
node's namespace).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Any

from pyroute2 import AsyncIPRoute, IPRSocket
from pyroute2.netlink.rtnl import RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR, RTMGRP_LINK

from l2agent.interfaces.inventory import Interface

log = logging.getLogger(__name__)

__all__ = ["InventoryCallback", "NetlinkInventory"]

InventoryCallback = Callable[[Mapping[str, Interface], Mapping[str, Interface]], None]

_IFF_UP = 0x1
_IFF_BROADCAST = 0x2
_IFF_NOARP = 0x80
_IFF_LOWER_UP = 0x10000
_IFA_F_DADFAILED = 0x08
_AF_INET6 = 10
_GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR


@dataclass(frozen=True, slots=True)
class _Link:
    index: int
    name: str
    mac: bytes
    flags: int
    master: int | None
    kind: str


def _link_from_msg(msg: Any) -> _Link | None:
    name = msg.get("ifname")
    if not name:
        return None
    mac_text = msg.get("address") or "00:00:00:00:00:00"
    try:
        mac = bytes.fromhex(mac_text.replace(":", ""))
    except ValueError:
        mac = b""
    if len(mac) != 6:  # InfiniBand, tunnels: not Ethernet, keep a placeholder MAC
        mac = bytes(6)
    kind = msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") or ""
    return _Link(
        index=int(msg["index"]),
        name=str(name),
        mac=mac,
        flags=int(msg["flags"]),
        master=msg.get("master") or None,
        kind=str(kind),
    )


def _link_local_from_msg(msg: Any) -> IPv6Address | None:
    if msg["family"] != _AF_INET6 or msg["flags"] & _IFA_F_DADFAILED:
        return None
    text = msg.get("address")
    if not text:
        return None
    ip = IPv6Address(text.split("%")[0])
    return ip if ip.is_link_local else None


class NetlinkInventory:
    """The interfaces of this network namespace, kept current from rtnetlink events.

    ``on_change(before, after)`` is called (in the event loop) after every batch of events
    that changed the snapshot. It must not raise; if it does, the error is logged.
    """

    def __init__(self, on_change: InventoryCallback | None = None) -> None:
        self._on_change = on_change
        self._links: dict[int, _Link] = {}
        self._link_locals: dict[int, set[IPv6Address]] = {}
        self._snapshot: dict[str, Interface] = {}
        self._sock: IPRSocket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._resync_task: asyncio.Task[None] | None = None

    @property
    def inventory(self) -> Mapping[str, Interface]:
        """The current ``name -> Interface`` snapshot (a fresh dict after each change)."""
        return self._snapshot

    async def start(self) -> Mapping[str, Interface]:
        """Subscribe to link/address events, dump the current state, start reading events.

        Returns the first snapshot; ``on_change`` is not called for it.
        """
        self._loop = asyncio.get_running_loop()
        await self._subscribe_and_dump()
        return self._snapshot

    async def _subscribe_and_dump(self) -> None:
        sock = IPRSocket()
        sock.bind(groups=_GROUPS)
        sock.socket.setblocking(False)
        self._sock = sock
        links: dict[int, _Link] = {}
        lls: dict[int, set[IPv6Address]] = {}
        async with AsyncIPRoute() as ipr:
            async for msg in await ipr.get_links():
                link = _link_from_msg(msg)
                if link is not None:
                    links[link.index] = link
            async for msg in await ipr.get_addr(family=_AF_INET6):
                ll = _link_local_from_msg(msg)
                if ll is not None:
                    lls.setdefault(int(msg["index"]), set()).add(ll)
        self._links, self._link_locals = links, lls
        self._snapshot = self._build()
        assert self._loop is not None
        self._loop.add_reader(sock.fileno(), self._readable)
        log.info("interface inventory: %s", ", ".join(sorted(self._snapshot)) or "(none)")

    def close(self) -> None:
        """Stop reading events and close the netlink socket."""
        if self._resync_task is not None:
            self._resync_task.cancel()
            self._resync_task = None
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(Exception):
                self._loop.remove_reader(sock.fileno())
        sock.close()

    # -- events -----------------------------------------------------------------------------

    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        changed = False
        while True:
            try:
                messages = sock.get()
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    log.warning("netlink events overflowed; re-dumping interfaces")
                    self._start_resync()
                    return
                raise
            if not messages:
                break
            for msg in messages:
                changed |= self._apply(msg)
        if changed:
            self._publish()

    def _apply(self, msg: Any) -> bool:
        event = msg.get("event")
        if event in ("RTM_NEWLINK", "RTM_DELLINK"):
            link = _link_from_msg(msg)
            if link is None:
                return False
            if event == "RTM_DELLINK":
                self._link_locals.pop(link.index, None)
                return self._links.pop(link.index, None) is not None
            old = self._links.get(link.index)
            self._links[link.index] = link
            return old != link
        if event in ("RTM_NEWADDR", "RTM_DELADDR"):
            if msg["family"] != _AF_INET6:
                return False  # IPv4 addresses do not decide eligibility
            text = msg.get("address")
            ip = IPv6Address(text.split("%")[0]) if text else None
            if ip is None or not ip.is_link_local:
                return False
            index = int(msg["index"])
            have = self._link_locals.setdefault(index, set())
            before = set(have)
            if event == "RTM_NEWADDR" and not msg["flags"] & _IFA_F_DADFAILED:
                have.add(ip)
            else:
                have.discard(ip)
            return have != before
        return False

    def _build(self) -> dict[str, Interface]:
        out: dict[str, Interface] = {}
        for link in self._links.values():
            lls = self._link_locals.get(link.index)
            out[link.name] = Interface(
                index=link.index,
                name=link.name,
                mac=link.mac,
                up=bool(link.flags & _IFF_UP),
                broadcast=bool(link.flags & _IFF_BROADCAST),
                noarp=bool(link.flags & _IFF_NOARP),
                master=link.master,
                link_local=min(lls) if lls else None,
                kind=link.kind,
                carrier=bool(link.flags & _IFF_LOWER_UP),
            )
        return out

    def _publish(self) -> None:
        before, after = self._snapshot, self._build()
        if before == after:
            return
        self._snapshot = after
        if self._on_change is not None:
            try:
                self._on_change(before, after)
            except Exception:
                log.exception("inventory change callback failed")

    def _start_resync(self) -> None:
        if self._resync_task is not None and not self._resync_task.done():
            return
        self.close()
        assert self._loop is not None
        self._resync_task = self._loop.create_task(self._resync())

    async def _resync(self) -> None:
        before = self._snapshot
        await self._subscribe_and_dump()
        after = self._snapshot
        if before != after and self._on_change is not None:
            try:
                self._on_change(before, after)
            except Exception:
                log.exception("inventory change callback failed")
