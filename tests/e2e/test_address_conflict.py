"""Issue 11 item 9 replayed: a foreign MAC floods gratuitous ARPs for a VIP we own.

An attacker on the node LAN sends 3,000 gratuitous ARP requests/s claiming the VIP with its
own MAC (trafgen, 4 s). The client's kernel believes them (Linux lets a gratuitous ARP
override an entry at once), so during the flood its traffic goes to the attacker. Before,
the owner logged one WARNING per frame and never defended: the client stayed poisoned long
after the flood. Now every claim is counted, a handful of lines are logged, and the owner
re-announces at most once a second, so the client is back within about a second of the last
claim. Judges: the client's own neighbour table and a UDP prober in the client namespace.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.layers.l2 import ARP, Ether

from l2agent.lab.netns import Lab, tools_missing, wait_until
from l2agent.lab.speakers import LabSpeakers
from l2agent.lab.topology import ATTACKER, attacker_mac, vip
from l2agent.static import demo_config_path

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(bool(tools_missing("trafgen")), reason="needs trafgen (netsniff-ng)"),
]

V4 = vip(0, 4)
RATE, SECONDS = 3000, 4.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LabSpeakers]:
    with Lab(2, vips=[V4, vip(0, 6)], attacker=True) as lab:
        speakers = LabSpeakers(lab, demo_config_path(), workdir=tmp_path)
        try:
            speakers.start_all()
            speakers.wait_members(timeout=30)
            speakers.wait_owners([str(V4)], timeout=30)
            yield speakers
        finally:
            speakers.close()


def _claim_frame() -> bytes:
    them = attacker_mac().hex(":")
    garp = Ether(dst="ff:ff:ff:ff:ff:ff", src=them) / ARP(
        op=1, hwsrc=them, psrc=str(V4), hwdst="ff:ff:ff:ff:ff:ff", pdst=str(V4)
    )
    return bytes(garp).ljust(60, b"\0")


def _metric(text: str | None, name: str, ip: str) -> float:
    match = re.search(rf'^{name}\{{ip="{re.escape(ip)}"\}} (\S+)$', text or "", re.M)
    return float(match.group(1)) if match else 0.0


def test_a_gratuitous_arp_flood_is_counted_logged_briefly_and_defended(
    cluster: LabSpeakers, tmp_path: Path
) -> None:
    lab = cluster.lab
    owner = cluster.wait_owners([str(V4)])[str(V4)]
    owner_mac = lab.nodes[owner].mac
    prober = cluster.probe(str(V4), duration=SECONDS + 5.0, interval=0.01)
    time.sleep(1.0)
    assert lab.neighbour_mac(V4) == owner_mac
    cfg = tmp_path / "garp.cfg"
    cfg.write_text("{ " + ", ".join(f"0x{b:02x}" for b in _claim_frame()) + " }\n")
    attack = lab.spawn(
        ATTACKER,
        ["trafgen", "-o", "eth0", "-i", str(cfg), "-P", "1", "-b", f"{RATE}pps",
         "-n", str(int(RATE * SECONDS)), "--no-sock-mem", "--notouch-irq", "--no-cpu-stats"],
    )  # fmt: skip
    attack_start = time.monotonic()
    poisoned = wait_until(lambda: lab.neighbour_mac(V4) == attacker_mac(), timeout=2.0)
    time.sleep(SECONDS / 2)
    still = lab.neighbour_mac(V4) == attacker_mac()
    attack.wait(timeout=SECONDS * 3 + 10)
    attack_end = time.monotonic()
    print(f"attack ran {attack_end - attack_start:.2f} s")
    assert attack_end - attack_start > SECONDS * 0.8, "trafgen did not pace the attack"
    assert poisoned and still, "the attack did not poison the client: nothing was tested"
    # The owner's re-announcement brings the client back soon after the last claim.
    assert wait_until(lambda: lab.neighbour_mac(V4) == owner_mac, timeout=3.0), (
        f"client still holds {lab.neighbours().get(str(V4))}"
    )
    back = time.monotonic() - attack_end
    probes = cluster.probes(prober)
    answered_after = [p for p in probes if p.sent > attack_end and p.replied is not None]
    assert answered_after and answered_after[0].node == owner
    outage_after = answered_after[0].replied - attack_end  # type: ignore[operator]
    print(f"client back {back:.2f} s after the flood, traffic {outage_after:.2f} s")
    assert outage_after < 2.0
    # Every claim counted; a handful of log lines, not one per frame.
    metrics = cluster.fetch(owner, "/metrics")
    claims = _metric(metrics, "l2agent_address_conflicts_total", str(V4))
    # A claim the speaker did not read in time (a busy CI machine) is counted as an overrun.
    overruns = sum(
        float(v)
        for v in re.findall(
            r"^l2agent_responder_overruns_total\{[^}]*\} (\S+)$", metrics or "", re.M
        )
    )
    assert claims + overruns >= 0.9 * RATE * SECONDS, (claims, overruns)
    lines = [ln for ln in cluster.log_text(owner).splitlines() if "address conflict" in ln]
    print("\n".join(lines))
    assert 1 <= len(lines) <= 5, lines
