"""The responder's I/O: one AF_PACKET socket per interface, read -> decide -> send -> count.

No policy lives here: :func:`l2agent.responder.decide.decide` says whether and how to answer,
the speaker says which IPs this interface owns (``set_owned``), and the counters object
(``ResponderCounters``, e.g. ``l2agent.metrics.SpeakerMetrics``) is injected.

Socket set-up, in this order so no unfiltered frame is ever queued:
``socket(AF_PACKET, SOCK_RAW, 0)`` (protocol 0 receives nothing yet), the kernel BPF program
generated from the owned set (``filter.py``: only requests for owned IPs and conflicting
claims reach Python), PACKET_AUXDATA (the VLAN tag the kernel strips),
PACKET_IGNORE_OUTGOING (our own gratuitous requests are not looped back), then
``bind((ifname, ETH_P_ALL))``, non-blocking, ``loop.add_reader``.

Whenever the owned set (or the MAC) changes, the program is regenerated and attached again:
``SO_ATTACH_FILTER`` on a socket that has a filter replaces it in one step, so every frame
meets the old or the new program and none is lost in the swap. The owned set is updated
first, so frames the new program lets in are judged by the new set.

Solicited-node multicast: for every owned IPv6 address the interface joins the group's MAC
(``33:33:ff:xx:xx:xx``) with PACKET_ADD_MEMBERSHIP / PACKET_MR_MULTICAST, so a NIC with a
multicast filter passes the NS to us. Several VIPs can share one group (same low 24 bits):
membership is refcounted per group and left when the last VIP using it goes. A responder
created after an IP was announced joins at ``open()`` from the owned set it was given.
A packet-socket membership programs the NIC filter only and sends no MLD report, so the group
is also joined on an (unbound, receive-nothing) IPv6 UDP socket with IPV6_JOIN_GROUP: the
kernel then sends MLD reports and an MLD-snooping switch forwards the group's NS to us.

Solicited NAs are sent *from the requested VIP* (``decide`` gets the interface without its
link-local address, so the packet builder falls back to the target), as the Linux kernel
answers for its own addresses; MetalLB sends them from the link-local address, which hosts
accept but ``ndisc6`` (and other tools that match the answer's source to the target) ignore.
Unsolicited NAs (the sender) still come from the link-local address, as MetalLB's do.

The same socket sends the announcer's gratuitous frames (:meth:`Responder.send`), so the
``Sender`` needs no socket of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from ipaddress import IPv6Address
from typing import Protocol

from l2agent.model.types import IPAddress, format_mac
from l2agent.packets.ndp import solicited_node_address, solicited_node_mac
from l2agent.responder.bpf import PROGRAM, attach_filter
from l2agent.responder.decide import Drop, DropReason, InterfaceView, Owned, Reply, decide
from l2agent.responder.filter import Coverage, OwnedFilter, owned_filter

__all__ = ["MemoryCounters", "Responder", "ResponderCounters", "answered_here"]

log = logging.getLogger(__name__)

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_DROP_MEMBERSHIP = 2
PACKET_AUXDATA = 8
PACKET_IGNORE_OUTGOING = 23  # Linux >= 4.20
PACKET_MR_MULTICAST = 0
PACKET_OUTGOING = 4  # sll_pkttype of frames we (or the host) sent
TP_STATUS_VLAN_VALID = 0x10
_MREQ = struct.Struct("=iHH8s")  # struct packet_mreq
_IPV6_MREQ = struct.Struct("=16sI")  # struct ipv6_mreq
_AUXDATA = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata
_CMSG_SPACE = socket.CMSG_SPACE(_AUXDATA.size)
_MAX_FRAME = 2048
_BATCH = 64
"""Frames read per wake-up before yielding to the event loop (fairness vs. syscalls)."""


class ResponderCounters(Protocol):
    """What the responder counts; ``l2agent.metrics.SpeakerMetrics`` implements it."""

    def request_received(self, ip: IPAddress, count: int = 1) -> None:
        """ARP requests / NS for an IP this interface owns arrived (MetalLB's counter)."""

    def response_sent(self, ip: IPAddress, count: int = 1) -> None:
        """Answers left the socket."""

    def dropped(self, reason: DropReason) -> None:
        """A frame got no answer (malformed, not ours, ...)."""

    def filter_coverage(self, ifname: str, coverage: Coverage) -> None:
        """The kernel filter on ``ifname`` now has this coverage (PASS_ALL: unfiltered)."""


class MemoryCounters:
    """``ResponderCounters`` (and the sender's ``gratuitous_sent``) kept in plain Counters,
    for the lab runner, tests and benchmarks."""

    def __init__(self) -> None:
        self.requests: Counter[IPAddress] = Counter()
        self.responses: Counter[IPAddress] = Counter()
        self.gratuitous: Counter[IPAddress] = Counter()
        self.drops: Counter[str] = Counter()
        self.filters: dict[str, str] = {}

    def request_received(self, ip: IPAddress, count: int = 1) -> None:
        self.requests[ip] += count

    def response_sent(self, ip: IPAddress, count: int = 1) -> None:
        self.responses[ip] += count

    def filter_coverage(self, ifname: str, coverage: Coverage) -> None:
        self.filters[ifname] = coverage.value

    def gratuitous_sent(self, ip: IPAddress, count: int = 1) -> None:
        self.gratuitous[ip] += count

    def dropped(self, reason: DropReason) -> None:
        self.drops[reason.value] += 1

    def as_dict(self) -> dict[str, dict[str, int] | dict[str, str]]:
        return {
            "requests": {str(k): v for k, v in self.requests.items()},
            "responses": {str(k): v for k, v in self.responses.items()},
            "gratuitous": {str(k): v for k, v in self.gratuitous.items()},
            "drops": dict(self.drops),
            "filters": dict(self.filters),
        }


def answered_here(owned: Owned, ifname: str) -> frozenset[IPAddress]:
    """The IPs ``owned`` makes ``ifname`` answer for."""
    if isinstance(owned, Mapping):
        return frozenset(ip for ip, names in owned.items() if names is None or ifname in names)
    return frozenset(owned)


class Responder:
    """Answers ARP requests and Neighbor Solicitations on one interface.

    ``iface``: the interface's name, MAC and IPv6 link-local (the NA source address).
    ``ifindex``: its kernel index (for multicast membership).
    ``counters``: a :class:`ResponderCounters`.
    ``owned``: what this interface answers for at start (see :meth:`set_owned`).
    ``loop``: the event loop to read in; default: the running loop at :meth:`open`.
    """

    def __init__(
        self,
        iface: InterfaceView,
        ifindex: int,
        counters: ResponderCounters,
        owned: Owned = frozenset(),
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.iface = iface
        self._view = replace(iface, link_local=None)  # solicited NA source = the VIP
        self.ifindex = ifindex
        self._counters = counters
        self._owned: Owned = owned
        self._loop = loop
        self._sock: socket.socket | None = None
        self._groups: dict[bytes, set[IPv6Address]] = {}
        self._mld: socket.socket | None = None
        self._send_errors = 0
        self._filter: OwnedFilter | None = None
        self._filter_key: tuple[bytes, frozenset[IPAddress]] | None = None
        self.on_conflict: Callable[[IPAddress, bytes], None] | None = None
        """Called when another MAC claims an IP this interface announces."""

    # -- life cycle -------------------------------------------------------------------------

    def open(self) -> None:
        """Create the socket, attach the filter, join groups, start reading."""
        if self._sock is not None:
            return
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            self._attach(sock)
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            try:
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            except OSError:  # kernel < 4.20: outgoing frames are skipped by pkttype below
                pass
            sock.bind((self.iface.name, ETH_P_ALL))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        try:
            self._mld = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        except OSError as exc:  # IPv6 disabled in this kernel: NIC filter only
            log.warning("%s: no IPv6 socket for MLD joins: %s", self.iface.name, exc)
        self._sync_groups()
        loop.add_reader(sock.fileno(), self._readable)
        log.info(
            "responder on %s (%s) answering for %d IPs",
            self.iface.name,
            format_mac(self.iface.mac),
            len(answered_here(self._owned, self.iface.name)),
        )

    def close(self) -> None:
        """Stop reading and close the socket (the kernel drops its group memberships)."""
        sock, self._sock = self._sock, None
        self._groups.clear()
        self._filter_key = None
        mld, self._mld = self._mld, None
        if mld is not None:
            mld.close()  # leaves every group it joined (the kernel sends MLD done)
        if sock is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(Exception):
                self._loop.remove_reader(sock.fileno())
        sock.close()
        log.info("responder on %s closed", self.iface.name)

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    # -- what to answer ---------------------------------------------------------------------

    @property
    def owned(self) -> Owned:
        return self._owned

    def set_owned(self, owned: Owned) -> None:
        """Replace the IPs this interface answers for; takes effect for the next frame.

        A set means "owned on this interface"; a mapping ``ip -> interface names | None``
        lets ``decide`` tell ``notMatchInterface`` from ``announceIP`` drops.
        """
        self._owned = owned
        if self._sock is not None:
            self._attach(self._sock)
            self._sync_groups()

    def update_interface(self, iface: InterfaceView) -> None:
        """The MAC or link-local changed (the name must stay the same: a rename is a new
        responder)."""
        if iface.name != self.iface.name:
            raise ValueError(f"responder for {self.iface.name} cannot become {iface.name}")
        self.iface = iface
        self._view = replace(iface, link_local=None)
        if self._sock is not None:
            self._attach(self._sock)

    @property
    def kernel_filter(self) -> OwnedFilter | None:
        """The program attached now and its coverage (None before ``open``)."""
        return self._filter

    def _attach(self, sock: socket.socket) -> None:
        """Attach the program for the current MAC and owned set (if either changed)."""
        key = (self.iface.mac, answered_here(self._owned, self.iface.name))
        if key == self._filter_key:
            return
        new = owned_filter(*key)
        try:
            attach_filter(sock, new.program)
        except OSError as exc:  # e.g. optmem_max too small for a long program
            log.error("%s: cannot attach the owned-set filter: %s", self.iface.name, exc)
            new = OwnedFilter(PROGRAM, Coverage.PASS_ALL, new.exact_size)
            attach_filter(sock, new.program)
        old, self._filter, self._filter_key = self._filter, new, key
        if old is None or old.coverage is not new.coverage:
            self._counters.filter_coverage(self.iface.name, new.coverage)
            if new.coverage is not Coverage.EXACT:
                log.warning(
                    "%s: %d owned IPs need %d BPF instructions (limit 4096): kernel filter is %s",
                    self.iface.name,
                    len(key[1]),
                    new.exact_size,
                    new.coverage.value,
                )
        log.debug(
            "%s: kernel filter for %d IPs: %d instructions (%s)",
            self.iface.name,
            len(key[1]),
            len(new.program),
            new.coverage.value,
        )

    def joined_groups(self) -> frozenset[bytes]:
        """Solicited-node multicast MACs currently joined (for tests and status)."""
        return frozenset(self._groups)

    def _sync_groups(self) -> None:
        want: dict[bytes, set[IPv6Address]] = {}
        for ip in answered_here(self._owned, self.iface.name):
            if isinstance(ip, IPv6Address):
                want.setdefault(solicited_node_mac(ip), set()).add(ip)
        for mac in list(self._groups):
            if mac not in want:
                self._membership(PACKET_DROP_MEMBERSHIP, mac)
                self._mld_membership(socket.IPV6_LEAVE_GROUP, next(iter(self._groups[mac])))
                del self._groups[mac]
        for mac, ips in want.items():
            if mac not in self._groups:
                self._membership(PACKET_ADD_MEMBERSHIP, mac)
                self._mld_membership(socket.IPV6_JOIN_GROUP, next(iter(ips)))
            self._groups[mac] = ips

    def _membership(self, op: int, mac: bytes) -> None:
        assert self._sock is not None
        mreq = _MREQ.pack(self.ifindex, PACKET_MR_MULTICAST, len(mac), mac.ljust(8, b"\0"))
        try:
            self._sock.setsockopt(SOL_PACKET, op, mreq)
        except OSError as exc:  # logged, as MetalLB does; answering still works on most NICs
            verb = "join" if op == PACKET_ADD_MEMBERSHIP else "leave"
            log.warning("%s: cannot %s group %s: %s", self.iface.name, verb, format_mac(mac), exc)

    def _mld_membership(self, op: int, ip: IPv6Address) -> None:
        """Join/leave the solicited-node group at the IPv6 layer too, so the kernel sends
        MLD reports and MLD-snooping switches forward the group's NS to this port."""
        if self._mld is None:
            return
        group = solicited_node_address(ip)
        try:
            self._mld.setsockopt(
                socket.IPPROTO_IPV6, op, _IPV6_MREQ.pack(group.packed, self.ifindex)
            )
        except OSError as exc:
            verb = "join" if op == socket.IPV6_JOIN_GROUP else "leave"
            log.warning("%s: cannot %s MLD group %s: %s", self.iface.name, verb, group, exc)

    # -- the data path ----------------------------------------------------------------------

    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(_BATCH):
            try:
                frame, ancdata, _flags, addr = sock.recvmsg(_MAX_FRAME, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno == errno.ENETDOWN:  # interface went down: frames will resume
                    return
                log.warning("%s: receive failed: %s", self.iface.name, exc)
                return
            if len(addr) > 2 and addr[2] == PACKET_OUTGOING:
                continue
            self.handle_frame(frame, _vlan_from(ancdata))

    def handle_frame(self, frame: bytes, vlan: int | None = None) -> Reply | Drop:
        """Decide on one received frame, send the answer, count. Never raises."""
        try:
            outcome = decide(frame, self._view, self._owned, vlan)
        except Exception:  # decide promises not to raise; a bug must not stop the data path
            log.exception("%s: decide failed on a %d-byte frame", self.iface.name, len(frame))
            self._counters.dropped(DropReason.MALFORMED)
            return Drop(DropReason.MALFORMED)
        if isinstance(outcome, Drop):
            self._counters.dropped(outcome.reason)
            if outcome.reason == DropReason.ADDRESS_CONFLICT and self.on_conflict is not None:
                assert outcome.ip is not None and outcome.sender_mac is not None
                self.on_conflict(outcome.ip, outcome.sender_mac)
            if outcome.reason == DropReason.MALFORMED:
                log.debug("%s: malformed frame (%s)", self.iface.name, outcome.detail)
            return outcome
        self._counters.request_received(outcome.ip)
        if self.send(outcome.frame):
            self._counters.response_sent(outcome.ip)
        return outcome

    def send(self, frame: bytes) -> bool:
        """Send one full Ethernet frame on this interface; False (and a log line) on error."""
        sock = self._sock
        if sock is None:
            return False
        try:
            sock.send(frame)
        except OSError as exc:
            self._send_errors += 1
            # Rate-limit: the first error, then every 100th (a cut cable fails every send).
            if self._send_errors == 1 or self._send_errors % 100 == 0:
                log.warning(
                    "%s: send failed (%d so far): %s", self.iface.name, self._send_errors, exc
                )
            return False
        return True


def _vlan_from(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancdata:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= _AUXDATA.size:
            status, _len, _snap, _mac, _net, tci, _tpid = _AUXDATA.unpack_from(data)
            if status & TP_STATUS_VLAN_VALID:
                return int(tci & 0x0FFF)
    return None
