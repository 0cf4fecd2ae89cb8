"""Reply templates against ``decide``: whenever a template answers, the bytes are decide's."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.utils import rdpcap

from l2agent.model.types import IPAddress
from l2agent.packets.ndp import solicited_node_address, solicited_node_mac
from l2agent.responder.decide import InterfaceView, Reply, decide
from l2agent.responder.templates import ReplyTemplates
from tests.l2agent._l2frames import IFACE, OUR_MAC, delivered, frames, owned_sets

DATA = Path(__file__).resolve().parents[1] / "data"
_vlans = st.one_of(st.none(), st.sampled_from([0, 1, 100, 4094, 4095]))


@settings(max_examples=500, deadline=None)
@given(data=st.data(), owned=owned_sets, vlan=_vlans)
def test_a_template_answer_is_decides_answer(
    data: st.DataObject, owned: frozenset[IPAddress], vlan: int | None
) -> None:
    templates = ReplyTemplates(OUR_MAC, owned)
    for frame in data.draw(st.lists(frames(owned), min_size=1, max_size=6)):
        for seen, tci in ((frame, vlan), delivered(frame)):
            vid = vlan if tci is None else tci & 0x0FFF
            fast = templates.answer(seen, vid)
            if fast is None:
                continue
            outcome = decide(seen, IFACE, owned, vid)
            assert isinstance(outcome, Reply), (outcome, seen.hex())
            assert fast == (outcome.frame, outcome.ip), seen.hex()


CLIENT = "02:00:00:00:00:99"
V4, V6 = IPv4Address("192.0.2.10"), IPv6Address("2001:db8::10")


def _plain_requests() -> dict[str, bytes]:
    sn, snmac = str(solicited_node_address(V6)), solicited_node_mac(V6).hex(":")
    arp = ARP(op=1, hwsrc=CLIENT, psrc="192.0.2.99", pdst=str(V4))
    return {
        "arp broadcast": bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=CLIENT) / arp),
        "arp unicast": bytes(Ether(dst=OUR_MAC.hex(":"), src=CLIENT) / arp),
        "arp padded": bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=CLIENT) / arp).ljust(60, b"\0"),
        "arp probe": bytes(
            Ether(dst="ff:ff:ff:ff:ff:ff", src=CLIENT)
            / ARP(op=1, hwsrc=CLIENT, psrc="0.0.0.0", pdst=str(V4))
        ),
        "ns": bytes(
            Ether(dst=snmac, src=CLIENT)
            / IPv6(src="2001:db8::99", dst=sn, hlim=255)
            / ICMPv6ND_NS(tgt=str(V6))
            / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT)
        ),
        "ns without slla (unicast NUD)": bytes(
            Ether(dst=OUR_MAC.hex(":"), src=CLIENT)
            / IPv6(src="2001:db8::99", dst=str(V6), hlim=255)
            / ICMPv6ND_NS(tgt=str(V6))
        ),
        "dad": bytes(
            Ether(dst=snmac, src=CLIENT)
            / IPv6(src="::", dst=sn, hlim=255)
            / ICMPv6ND_NS(tgt=str(V6))
        ),
    }


@pytest.mark.parametrize("vlan", [None, 100])
@pytest.mark.parametrize("name", sorted(_plain_requests()))
def test_plain_requests_are_answered_from_templates(name: str, vlan: int | None) -> None:
    frame = _plain_requests()[name]
    templates = ReplyTemplates(OUR_MAC, {V4, V6})
    fast = templates.answer(frame, vlan)
    outcome = decide(frame, IFACE, {V4, V6}, vlan)
    assert isinstance(outcome, Reply)
    assert fast == (outcome.frame, outcome.ip)
    reply = Ether(fast[0])
    assert reply.src == OUR_MAC.hex(":")
    assert (reply[Dot1Q].vlan if Dot1Q in reply else None) == vlan
    assert ARP in reply or ICMPv6ND_NA in reply


def test_golden_untagged_requests_are_answered_from_templates() -> None:
    requests = [bytes(p) for p in rdpcap(str(DATA / "l2_requests.pcap"))]
    mac = bytes.fromhex("020000000001")  # the captures' interface, seen as the loop sees it
    view = InterfaceView("eth0", mac)
    templates = ReplyTemplates(mac, {V4, V6})
    answered = 0
    for request in requests:
        fast = templates.answer(request)
        if request[12:14] == b"\x81\x00":
            assert fast is None  # an in-band tag goes to decide
            continue
        outcome = decide(request, view, {V4, V6})
        assert isinstance(outcome, Reply)
        assert fast == (outcome.frame, outcome.ip)
        answered += 1
    assert answered >= 5


def test_conflicting_claims_and_unowned_targets_go_to_decide() -> None:
    templates = ReplyTemplates(OUR_MAC, {V4, V4 + 1})
    claim = Ether(dst="ff:ff:ff:ff:ff:ff", src=CLIENT) / ARP(
        op=1, hwsrc=CLIENT, psrc=str(V4 + 1), pdst=str(V4)
    )
    assert templates.answer(bytes(claim)) is None
    unowned = Ether(dst="ff:ff:ff:ff:ff:ff", src=CLIENT) / ARP(
        op=1, hwsrc=CLIENT, psrc="192.0.2.99", pdst=str(V4 + 2)
    )
    assert templates.answer(bytes(unowned)) is None
