"""The sender turns schedule Dues into MetalLB's gratuitous frames; scapy judges them."""

from __future__ import annotations

from ipaddress import IPv6Address, ip_address

from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether

from l2agent.announce.schedule import Due
from l2agent.announce.sender import Sender
from l2agent.responder.decide import InterfaceView
from l2agent.responder.loop import MemoryCounters

MAC = bytes.fromhex("021ab0000001")
LL = IPv6Address("fe80::1ab0:ff:fe00:1")


class FakePort:
    def __init__(self, ok: bool = True) -> None:
        self.iface = InterfaceView("eth0", MAC, LL)
        self.sent: list[bytes] = []
        self.ok = ok

    def send(self, frame: bytes) -> bool:
        self.sent.append(frame)
        return self.ok


def test_ipv4_round_is_a_broadcast_request_then_reply_with_sender_equal_target() -> None:
    port, counters = FakePort(), MemoryCounters()
    vip = ip_address("192.0.2.200")
    result = Sender({"eth0": port}, counters).send([Due("eth0", vip)])
    assert result.frames == 2
    ops = []
    for frame in port.sent:
        pkt = Ether(frame)
        assert pkt.dst == "ff:ff:ff:ff:ff:ff" and pkt.src == "02:1a:b0:00:00:01"
        arp = pkt[ARP]
        assert arp.psrc == arp.pdst == "192.0.2.200"
        assert arp.hwsrc == "02:1a:b0:00:00:01" and arp.hwdst == "ff:ff:ff:ff:ff:ff"
        ops.append(arp.op)
    assert ops == [1, 2]
    assert counters.gratuitous == {vip: 2}


def test_ipv6_round_is_one_unsolicited_override_na_from_the_link_local() -> None:
    port, counters = FakePort(), MemoryCounters()
    vip = ip_address("2001:db8::200")
    Sender({"eth0": port}, counters).send([Due("eth0", vip)])
    (frame,) = port.sent
    pkt = Ether(frame)
    assert pkt.dst == "33:33:00:00:00:01"
    assert pkt[IPv6].src == str(LL) and pkt[IPv6].dst == "ff02::1" and pkt[IPv6].hlim == 255
    na = pkt[ICMPv6ND_NA]
    assert (na.R, na.S, na.O) == (0, 0, 1) and na.tgt == str(vip)
    assert pkt[ICMPv6NDOptDstLLAddr].lladdr == "02:1a:b0:00:00:01"
    assert counters.gratuitous == {vip: 1}


def test_missing_port_and_failed_sends_are_reported_not_counted() -> None:
    counters = MemoryCounters()
    vip = ip_address("192.0.2.200")
    ports = {"eth0": FakePort(ok=False)}
    result = Sender(ports, counters).send([Due("eth0", vip), Due("eth9", vip)])
    assert result.frames == 0 and result.failed == 2
    assert result.no_port == (Due("eth9", vip),)
    assert counters.gratuitous == {}


def test_ports_mapping_is_read_live() -> None:
    ports: dict[str, FakePort] = {}
    sender = Sender(ports, MemoryCounters())
    vip = ip_address("192.0.2.200")
    assert sender.send([Due("eth0", vip)]).frames == 0
    ports["eth0"] = FakePort()
    assert sender.send([Due("eth0", vip)]).frames == 2
