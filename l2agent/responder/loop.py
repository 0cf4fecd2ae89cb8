"""The responder's I/O: one AF_PACKET socket per interface, read -> answer -> send -> count.

No policy lives here: :func:`l2agent.responder.decide.decide` says whether and how to answer
(``templates.py`` answers its plain cases byte for byte, faster), the speaker says which IPs
this interface owns (``set_owned``), and the counters object (``ResponderCounters``, e.g.
``l2agent.metrics.SpeakerMetrics``) is injected.

Socket set-up, in this order so no unfiltered frame is ever queued:
``socket(AF_PACKET, SOCK_RAW, 0)`` (protocol 0 receives nothing yet), the kernel BPF program
generated from the owned set (``filter.py``: only requests for owned IPs and conflicting
claims reach Python), PACKET_IGNORE_OUTGOING (our own gratuitous requests are not looped
back), the TPACKET_V2 receive and send rings (``ring.py``; PACKET_AUXDATA instead when there
is no ring), then ``bind((ifname, ETH_P_ALL))``, non-blocking, ``loop.add_reader``.

The data path shares the event loop with the gossip, so its work is bounded twice: each
wake-up reads at most ``DataPathBudget.frames_per_wakeup`` frames (about a millisecond) and
sends all their answers with one system call, after which the loop runs whatever else is
ready (timers, gossip packets); and a ``DutyCycle`` keeps the data path to ``share`` of wall
time: when it is spent, the reader is removed until the allowance is back, and a flood
beyond that is dropped by the kernel (counted as ``overrun``), never queued without bound.

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
from typing import Any, Protocol

from l2agent.model.types import IPAddress, format_mac
from l2agent.packets.ndp import solicited_node_address, solicited_node_mac
from l2agent.responder.bpf import PROGRAM, attach_filter
from l2agent.responder.budget import DataPathBudget, DutyCycle
from l2agent.responder.decide import Drop, DropReason, InterfaceView, Owned, Reply, decide
from l2agent.responder.filter import Coverage, OwnedFilter, owned_filter
from l2agent.responder.ring import RingConfig, RingSocket
from l2agent.responder.templates import ReplyTemplates

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

    def overrun(self, ifname: str, frames: int) -> None:
        """The kernel dropped ``frames`` for ``ifname``: we did not read them in time (a
        flood beyond the data path's budget)."""


class MemoryCounters:
    """``ResponderCounters`` (and the sender's ``gratuitous_sent``) kept in plain Counters,
    for the lab runner, tests and benchmarks."""

    def __init__(self) -> None:
        self.requests: Counter[IPAddress] = Counter()
        self.responses: Counter[IPAddress] = Counter()
        self.gratuitous: Counter[IPAddress] = Counter()
        self.drops: Counter[str] = Counter()
        self.filters: dict[str, str] = {}
        self.overruns: Counter[str] = Counter()

    def request_received(self, ip: IPAddress, count: int = 1) -> None:
        self.requests[ip] += count

    def response_sent(self, ip: IPAddress, count: int = 1) -> None:
        self.responses[ip] += count

    def filter_coverage(self, ifname: str, coverage: Coverage) -> None:
        self.filters[ifname] = coverage.value

    def overrun(self, ifname: str, frames: int) -> None:
        self.overruns[ifname] += frames

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
            "overruns": dict(self.overruns),
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
    ``budget``: frames per wake-up and the share of the loop the data path may take.
    ``ring``: sizes of the packet rings; ``None`` reads and sends a frame per system call
    (also the fallback when the kernel refuses a ring).
    """

    def __init__(
        self,
        iface: InterfaceView,
        ifindex: int,
        counters: ResponderCounters,
        owned: Owned = frozenset(),
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        budget: DataPathBudget | None = None,
        ring: RingConfig | None = RingConfig(),  # noqa: B008 (frozen, shared on purpose)
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
        self._decide_errors = 0
        self._filter: OwnedFilter | None = None
        self._filter_key: tuple[bytes, frozenset[IPAddress]] | None = None
        self._templates = ReplyTemplates(iface.mac, ())
        self._budget = budget or DataPathBudget()
        self._ring_config = ring
        self._ring: RingSocket | None = None
        self._cycle: DutyCycle | None = None
        self._resting: asyncio.TimerHandle | None = None
        self._drops_read = 0.0
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
        ring: RingSocket | None = None
        try:
            self._attach(sock)
            try:
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            except OSError:  # kernel < 4.20: outgoing frames are skipped by pkttype
                pass
            ring = self._open_ring(sock)
            if ring is None:
                sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            sock.bind((self.iface.name, ETH_P_ALL))
            sock.setblocking(False)
        except BaseException:
            if ring is not None:
                ring.close()
            sock.close()
            raise
        self._sock, self._ring = sock, ring
        self._cycle = DutyCycle(self._budget, loop.time())
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
        ring, self._ring = self._ring, None
        if self._resting is not None:
            self._resting.cancel()
            self._resting = None
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
        if ring is not None:
            ring.close()
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
    def rests(self) -> int:
        """How many times the data path used up its budget and rested."""
        return self._cycle.rests if self._cycle is not None else 0

    @property
    def kernel_filter(self) -> OwnedFilter | None:
        """The program attached now and its coverage (None before ``open``)."""
        return self._filter

    def _attach(self, sock: socket.socket) -> None:
        """Attach the program for the current MAC and owned set (if either changed)."""
        key = (self.iface.mac, answered_here(self._owned, self.iface.name))
        if key == self._filter_key:
            return
        self._templates = ReplyTemplates(*key)
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

    def _open_ring(self, sock: socket.socket) -> RingSocket | None:
        if self._ring_config is None:
            return None
        try:
            return RingSocket(sock, self._ring_config)
        except OSError as exc:  # no memory for the ring, or an old kernel: a frame a call
            log.warning("%s: no packet ring (%s): one system call per frame", self.iface.name, exc)
            return None

    def _readable(self) -> None:
        sock, loop, cycle = self._sock, self._loop, self._cycle
        if sock is None or loop is None or cycle is None:
            return
        start = loop.time()
        if self._ring is not None:
            self._serve_ring(self._ring)
        else:
            self._serve_socket(sock)
        end = loop.time()
        resume = cycle.spent(start, end)
        if resume is not None:  # the budget is spent: rest, let timers and gossip run
            loop.remove_reader(sock.fileno())
            self._resting = loop.call_at(resume, self._wake)
        if self._ring is not None and (resume is not None or end >= self._drops_read + 1.0):
            self._drops_read = end
            overrun = self._ring.drops()
            if overrun:
                self._counters.overrun(self.iface.name, overrun)

    def _wake(self) -> None:
        self._resting = None
        if self._sock is not None and self._loop is not None:
            self._loop.add_reader(self._sock.fileno(), self._readable)

    def _serve_ring(self, ring: RingSocket) -> None:
        """One wake-up: read a bounded batch, answer it, send the answers in one call."""
        answer = self._templates.answer
        judge = self._judge
        tally: dict[int, list[Any]] = {}  # id(ip) -> [ip, count]: IP objects hash slowly

        def respond(frame: bytes, vlan: int | None) -> bytes | None:
            fast = answer(frame, vlan)
            if fast is None:
                outcome = judge(frame, vlan)
                if isinstance(outcome, Drop):
                    return None
                fast = outcome.frame, outcome.ip
            reply, ip = fast
            seen = tally.get(id(ip))
            if seen is None:
                tally[id(ip)] = [ip, 1]
            else:
                seen[1] += 1
            return reply

        unsent = ring.exchange(self._budget.frames_per_wakeup, respond)
        if not tally:
            return
        sent = self._flush(ring)
        per_ip: dict[IPAddress, int] = {}
        for ip, n in tally.values():
            per_ip[ip] = per_ip.get(ip, 0) + n
        for ip, n in per_ip.items():
            self._counters.request_received(ip, n)
        if not sent:
            return
        if unsent:  # no free send slot (never seen in practice): charge the busiest IP
            busiest = max(per_ip, key=per_ip.__getitem__)
            per_ip[busiest] -= unsent
            self._send_failed(OSError(f"{unsent} replies found the send ring full"))
        for ip, n in per_ip.items():
            if n > 0:
                self._counters.response_sent(ip, n)

    def _serve_socket(self, sock: socket.socket) -> None:
        for _ in range(self._budget.frames_per_wakeup):
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

    def _judge(self, frame: bytes, vlan: int | None) -> Reply | Drop:
        """``decide`` for a frame the templates did not answer; counts drops and reports
        conflicts. Never raises."""
        try:
            outcome = decide(frame, self._view, self._owned, vlan)
        except Exception:  # decide promises not to raise; a bug must not stop the data path
            self._decide_errors += 1
            if self._decide_errors == 1 or self._decide_errors % 1000 == 0:
                log.exception(
                    "%s: decide failed on a %d-byte frame (%d so far)",
                    self.iface.name,
                    len(frame),
                    self._decide_errors,
                )
            outcome = Drop(DropReason.MALFORMED)
        if isinstance(outcome, Drop):
            self._counters.dropped(outcome.reason)
            if outcome.reason == DropReason.ADDRESS_CONFLICT and self.on_conflict is not None:
                assert outcome.ip is not None and outcome.sender_mac is not None
                self.on_conflict(outcome.ip, outcome.sender_mac)
        return outcome

    def handle_frame(self, frame: bytes, vlan: int | None = None) -> Reply | Drop:
        """Decide on one received frame, send the answer, count. Never raises."""
        outcome = self._judge(frame, vlan)
        if isinstance(outcome, Reply):
            self._counters.request_received(outcome.ip)
            if self.send(outcome.frame):
                self._counters.response_sent(outcome.ip)
        return outcome

    def _flush(self, ring: RingSocket) -> bool:
        try:
            ring.flush()
        except OSError as exc:
            self._send_failed(exc)
            return False
        return True

    def send(self, frame: bytes) -> bool:
        """Send one full Ethernet frame on this interface; False (and a log line) on error."""
        sock = self._sock
        if sock is None:
            return False
        ring = self._ring
        if ring is not None:
            return ring.queue(frame) and self._flush(ring)
        try:
            sock.send(frame)
        except OSError as exc:
            self._send_failed(exc)
            return False
        return True

    def _send_failed(self, exc: OSError) -> None:
        self._send_errors += 1
        # Rate-limit: the first error, then every 100th (a cut cable fails every send).
        if self._send_errors == 1 or self._send_errors % 100 == 0:
            log.warning("%s: send failed (%d so far): %s", self.iface.name, self._send_errors, exc)


def _vlan_from(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancdata:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= _AUXDATA.size:
            status, _len, _snap, _mac, _net, tci, _tpid = _AUXDATA.unpack_from(data)
            if status & TP_STATUS_VLAN_VALID:
                return int(tci & 0x0FFF)
    return None
