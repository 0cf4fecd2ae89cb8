"""`l2agent speaker --config FILE` without gossip: arping/ndisc6 and the client kernel judge.

Static mode (issue 2): the members are the Node objects of the files, the election is
MetalLB's hash, a changed file reloads and a bad one keeps the last good config.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from l2agent.lab.netns import CLIENT, LAN_IF, Lab, wait_until
from l2agent.lab.speakers import LabSpeakers
from l2agent.lab.topology import vip
from l2agent.model.types import format_mac
from l2agent.static import demo_config_path

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

V4, V6 = vip(0, 4), vip(0, 6)
V4B = vip(1, 4)  # demo/echo-v4
MOVED = vip(7, 4)  # not in the demo config; echo-v4 moves there in an edit


@pytest.fixture
def static(tmp_path: Path) -> Iterator[LabSpeakers]:
    config = tmp_path / "config.yaml"
    shutil.copy(demo_config_path(), config)
    with Lab(3, vips=[V4, V6, V4B, MOVED]) as lab:
        speakers = LabSpeakers(lab, config, workdir=tmp_path, gossip=False)
        try:
            speakers.start_all()
            speakers.wait_owners([str(V4), str(V6)], timeout=30)
            yield speakers
        finally:
            speakers.close()
            for node in lab.node_names:
                print(f"--- {node} ---\n{speakers.log_text(node)[-2000:]}")


def _arping_macs(lab: Lab, ip: object) -> set[str]:
    out = lab.exec(CLIENT, ["arping", "-c", "3", "-w", "3", "-I", LAN_IF, str(ip)], check=False)
    return {m.lower() for m in re.findall(r"\[([0-9A-Fa-f:]{17})\]", out)}


@pytest.mark.skipif(shutil.which("arping") is None, reason="needs arping (iputils-arping)")
def test_arping_gets_the_owner_mac_only_and_nothing_for_an_unowned_ip(
    static: LabSpeakers,
) -> None:
    owner = static.wait_owners([str(V4)])[str(V4)]
    assert _arping_macs(static.lab, V4) == {format_mac(static.lab.nodes[owner].mac)}
    assert _arping_macs(static.lab, vip(9, 4)) == set()


@pytest.mark.skipif(shutil.which("ndisc6") is None, reason="needs ndisc6")
def test_ndisc6_gets_an_na_from_the_owner(static: LabSpeakers) -> None:
    owner = static.wait_owners([str(V6)])[str(V6)]
    out = static.lab.exec(CLIENT, ["ndisc6", "-r", "3", str(V6), LAN_IF], check=False)
    assert format_mac(static.lab.nodes[owner].mac) in out.lower()


def test_changed_file_reloads_and_a_bad_file_keeps_the_last_good_config(
    static: LabSpeakers,
) -> None:
    config = static.config
    good = config.read_text()
    assert f"loadBalancerIPs: {V4B}" in good
    config.write_text(good.replace(f"loadBalancerIPs: {V4B}", f"loadBalancerIPs: {MOVED}"))
    assert wait_until(lambda: str(MOVED) in static.owners(), 15, interval=0.3)
    assert str(V4B) not in static.owners()
    time.sleep(1.1)  # a new mtime second, for filesystems with coarse timestamps
    config.write_text("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: x\n")
    time.sleep(2.5)
    assert str(MOVED) in static.owners()  # still announced from the last good config
    assert any("config rejected" in static.log_text(n) for n in static.lab.node_names)


def test_another_station_claiming_an_owned_ip_is_counted_as_a_conflict(
    static: LabSpeakers,
) -> None:
    owner = static.wait_owners([str(V4)])[str(V4)]
    claim = (  # a gratuitous ARP reply from the client: "192.0.2.200 is at my MAC"
        "from scapy.all import ARP, Ether, sendp\n"
        "mac = open('/sys/class/net/eth0/address').read().strip()\n"
        f"sendp(Ether(dst='ff:ff:ff:ff:ff:ff', src=mac) / ARP(op=2, hwsrc=mac, psrc='{V4}',"
        f" hwdst='ff:ff:ff:ff:ff:ff', pdst='{V4}'), iface='{LAN_IF}', count=2, verbose=False)\n"
    )
    static.lab.exec(CLIENT, [sys.executable, "-c", claim])

    def counted() -> bool:
        text = static.fetch(owner, "/metrics") or ""
        return f'l2agent_address_conflicts_total{{ip="{V4}"}} 2.0' in text

    assert wait_until(counted, 10, interval=0.3)
