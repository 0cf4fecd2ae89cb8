"""The data plane cannot starve the gossip: floods with both CPUs busy suspect nobody.

Three real speakers (fast gossip preset: 20 ms probes, 10 ms ack wait; SCHED_RR as shipped)
while two processes keep both CPUs busy. The client floods ARP requests with trafgen at its
full rate, first for a VIP one speaker owns (that speaker answers within its data-path
budget), then for an address nobody owns (every speaker's kernel filter drops it). Judged
from every speaker's own counters: no suspicion raised or refuted, no member failed, no
ownership change, and the owner did answer the flood.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from scapy.layers.l2 import ARP, Ether

from l2agent.lab.load import busy_cpus, trafgen
from l2agent.lab.netns import Lab, tools_missing
from l2agent.lab.speakers import LabSpeakers
from l2agent.lab.topology import UNOWNED_VIP4, client_address, client_mac, vip
from l2agent.static import demo_config_path

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(bool(tools_missing("trafgen")), reason="needs trafgen (netsniff-ng)"),
]

V4 = vip(0, 4)
SECONDS = 5.0
GOSSIP = (
    "l2agent_gossip_suspicions_raised_total",
    "l2agent_gossip_suspicions_refuted_total",
    "l2agent_gossip_member_failures_total",
    "l2agent_ownership_changes_total",
)
ANSWERS = "metallb_layer2_responses_sent"


def _request(target: object) -> bytes:
    me = client_mac().hex(":")
    pkt = Ether(dst="ff:ff:ff:ff:ff:ff", src=me) / ARP(
        op=1, hwsrc=me, psrc=str(client_address(4)), pdst=str(target)
    )
    return bytes(pkt).ljust(60, b"\0")


def _tx_packets(lab: Lab) -> int:
    link = json.loads(lab.ip("client", "-s", "-j", "link", "show", "dev", "eth0"))[0]
    return int(link["stats64"]["tx"]["packets"])


def test_full_rate_floods_with_busy_cpus_suspect_no_member(tmp_path: Path) -> None:
    with Lab(3, vips=[V4, vip(0, 6)]) as lab:
        speakers = LabSpeakers(lab, demo_config_path(), workdir=tmp_path)
        try:
            speakers.start_all()
            speakers.wait_members(timeout=30)
            owner = speakers.wait_owners([str(V4)], timeout=30)[str(V4)]
            time.sleep(1.0)  # let joins and the first announcements settle
            before = {n: speakers.samples(n, *GOSSIP, ANSWERS) for n in lab.node_names}
            rates = {}
            with busy_cpus(2):
                for name, target in (("owned", V4), ("unowned", UNOWNED_VIP4)):
                    sent = _tx_packets(lab)
                    took = trafgen(lab, "client", _request(target), 0, SECONDS, tmp_path)
                    rates[name] = (_tx_packets(lab) - sent) / took
                time.sleep(0.5)
            after = {n: speakers.samples(n, *GOSSIP, ANSWERS) for n in lab.node_names}
        finally:
            speakers.close()
    print(f"owner {owner}, offered: {rates}")
    for node in before:
        print(node, {k: v - before[node].get(k, 0) for k, v in after[node].items()})
    for node in before:
        changed = {
            k: after[node].get(k, 0) - v
            for k, v in before[node].items()
            if k.startswith(GOSSIP) and after[node].get(k, 0) != v
        }
        changed.update(
            {
                k: v
                for k, v in after[node].items()
                if k.startswith(GOSSIP) and k not in before[node] and v
            }
        )
        assert not changed, f"{node}: {changed}"
    answers = sum(
        v - before[owner].get(k, 0) for k, v in after[owner].items() if k.startswith(ANSWERS)
    )
    assert rates["owned"] > 20_000, "the flood was too weak to prove anything"
    assert answers > 10_000, f"the owner answered {answers} requests"
