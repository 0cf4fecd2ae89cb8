"""Turns the schedule's ``Due(ifname, ip)`` items into gratuitous frames on the wire.

One round for an IPv4 VIP is a broadcast ARP request then a broadcast ARP reply (sender IP =
target IP = VIP, target MAC ff:ff:ff:ff:ff:ff: MetalLB's pair, which both old and new Linux
clients accept); for an IPv6 VIP it is one unsolicited NA (S=0, O=1) to ff02::1 from the
interface's link-local address. Frames leave through the interface's responder socket
(any object with ``iface`` and ``send(frame) -> bool``: a :class:`Port`). The counter
follows MetalLB: +1 per frame sent (2 per IPv4 round, 1 per IPv6 round).

What to send and when is the schedule's business; this module only builds and sends.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Protocol

from l2agent.announce.schedule import Due
from l2agent.model.types import IPAddress
from l2agent.packets.arp import build_gratuitous_arp
from l2agent.packets.ndp import build_unsolicited_na
from l2agent.responder.decide import InterfaceView

__all__ = ["GratuitousCounters", "Port", "SendResult", "Sender"]

log = logging.getLogger(__name__)


class Port(Protocol):
    """Where frames for one interface go: ``l2agent.responder.loop.Responder`` is one."""

    @property
    def iface(self) -> InterfaceView: ...

    def send(self, frame: bytes) -> bool: ...


class GratuitousCounters(Protocol):
    """``l2agent.metrics.SpeakerMetrics`` implements it (``metallb_layer2_gratuitous_sent``)."""

    def gratuitous_sent(self, ip: IPAddress, count: int = 1) -> None: ...


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one ``send`` call did: frames sent, and Dues that had no open port."""

    frames: int
    no_port: tuple[Due, ...]
    failed: int


def round_frames(iface: InterfaceView, ip: IPAddress, vlan: int | None = None) -> list[bytes]:
    """The frames of one announcement round for ``ip`` on ``iface`` (pure)."""
    if isinstance(ip, IPv4Address):
        return list(build_gratuitous_arp(iface.mac, ip, vlan))
    return [build_unsolicited_na(iface.mac, iface.link_local, ip, vlan)]


class Sender:
    """Sends announcement rounds.

    ``ports``: a live mapping ``ifname -> Port`` (the speaker's dict of open responders; it
    is read at each ``send``, so responders opened later are used). ``counters``: a
    :class:`GratuitousCounters`.
    """

    def __init__(self, ports: Mapping[str, Port], counters: GratuitousCounters) -> None:
        self._ports = ports
        self._counters = counters

    def send(self, due: Iterable[Due]) -> SendResult:
        """Send one round per ``Due``; a Due for an interface without a port is skipped and
        logged (the interface vanished between plan and tick)."""
        frames = failed = 0
        missing: list[Due] = []
        for item in due:
            port = self._ports.get(item.ifname)
            if port is None:
                missing.append(item)
                log.info("no open interface %s for announcing %s; skipped", item.ifname, item.ip)
                continue
            sent = 0
            for frame in round_frames(port.iface, item.ip):
                if port.send(frame):
                    sent += 1
                else:
                    failed += 1
            if sent:
                self._counters.gratuitous_sent(item.ip, sent)
            frames += sent
        return SendResult(frames=frames, no_port=tuple(missing), failed=failed)
