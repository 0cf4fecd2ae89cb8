"""`l2agent lab demo` (`make demo`): the lab, three speakers, a failover shown and measured.

Everything runs in network namespaces this process makes and removes (documentation
addresses only); the client is a plain Linux host whose kernel neighbour cache decides where
its packets go, so what it sees is what a real client on the LAN would see.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

from l2agent import logs
from l2agent.lab.netns import CLIENT, Lab, tools_missing, wait_until
from l2agent.lab.prober import Probe, outage
from l2agent.lab.speakers import METRICS_PORT, LabSpeakers
from l2agent.model.snapshot import build_state
from l2agent.model.types import IPAddress, format_mac
from l2agent.plan import explain
from l2agent.static import demo_config_path, load_yaml_files


def _say(text: str = "") -> None:
    print(text, flush=True)


def _vips(config: Path, nodes: tuple[str, ...]) -> list[IPAddress]:
    state = build_state(load_yaml_files([config])).state
    return sorted({ip for s in explain(state, nodes) for ip in s.ips}, key=lambda i: (i.version, i))


def _neighbours(lab: Lab, vips: list[IPAddress]) -> str:
    table = lab.neighbours(CLIENT)
    macs = {format_mac(lab.nodes[n].mac): n for n in lab.node_names}
    rows = []
    for ip in vips:
        mac, state = table.get(str(ip), (None, ""))
        who = macs.get(format_mac(mac), "?") if mac else "-"
        rows.append(f"    {ip!s:<16} {format_mac(mac) if mac else '-':<18} {who:<6} {state}")
    return "\n".join(rows)


def _summary(probes: list[Probe], old: str) -> str:
    lost = sum(1 for p in probes if p.replied is None)
    news = sorted({p.node for p in probes if p.node and p.node != old})
    parts = [f"{len(probes)} probes, {lost} lost"]
    for new in news:
        o = outage(probes, old, new)
        if o is not None:
            parts.append(f"outage {old}->{new}: {o.seconds * 1e3:.1f} ms")
    return "; ".join(parts)


def run_demo(nodes: int = 3) -> int:
    missing = tools_missing("ip")
    if missing:
        _say(f"the lab needs {', '.join(missing)} (run `make demo`, which installs it)")
        return 2
    config = demo_config_path()
    names = tuple(f"node{i}" for i in range(1, nodes + 1))
    vips = _vips(config, names)
    _say(f"== l2agent demo: {nodes} nodes, VIPs {', '.join(map(str, vips))}")
    with Lab(nodes, vips=vips) as lab, tempfile.TemporaryDirectory(prefix="l2demo-") as tmp:
        speakers = LabSpeakers(lab, config, workdir=Path(tmp))
        try:
            return _script(lab, speakers, vips)
        finally:
            speakers.close()
            _say(f"== cleaning up (namespaces {lab.prefix}-*)")


def _script(lab: Lab, speakers: LabSpeakers, vips: list[IPAddress]) -> int:
    speakers.start_all()
    texts = [str(v) for v in vips]
    owners = speakers.wait_owners(texts, timeout=30)
    _say("\n== who announces what (`l2agent status`, from the client namespace)")
    urls = [f"--speaker=http://{speakers.address(n)}:{METRICS_PORT}" for n in lab.node_names]
    _say(lab.exec(CLIENT, [sys.executable, "-m", "l2agent.cli", "status", *urls], check=False))

    v4 = next(v for v in vips if v.version == 4)
    victim = owners[str(v4)]
    _say(f"== client traffic: UDP probes every 2 ms to {', '.join(texts)}")
    probers = {ip: speakers.probe(ip, duration=4.0) for ip in texts}
    time.sleep(1.0)
    _say("   client neighbour table:")
    _say(_neighbours(lab, vips))
    _say(f"\n== failure: pulling the cable of {victim} (owner of {v4})")
    lab.cut_link(victim)
    results = {ip: speakers.probes(p) for ip, p in probers.items()}
    for ip, probes in results.items():
        old = owners[ip]
        _say(f"   {ip:<16} was on {old}: {_summary(probes, old)}")
    _say("   client neighbour table, moved by gratuitous ARP / unsolicited NA alone:")
    _say(_neighbours(lab, vips))

    _say(f"\n== repair: {victim}'s cable back in; the cluster heals to one owner per IP")
    lab.restore_link(victim)
    time.sleep(1.0)
    owners = speakers.wait_owners(texts, timeout=30)
    for ip in texts:
        _say(f"   {ip:<16} -> {owners[ip]}")

    leaving = owners[str(v4)]
    _say(f"\n== planned handover: SIGTERM to the speaker on {leaving} (a rolling update)")
    prober = speakers.probe(str(v4), duration=3.0)
    time.sleep(1.0)
    speakers.terminate(leaving)
    probes = speakers.probes(prober)
    _say(f"   {v4}: {_summary(probes, leaving)}")
    speakers.start(leaving)
    wait_until(lambda: len(_alive(speakers, leaving)) == len(lab.node_names), 30, interval=0.2)
    owners = speakers.wait_owners(texts, timeout=30)
    _say(
        f"   {leaving}'s speaker restarted; owners now: "
        + ", ".join(f"{ip} -> {n}" for ip, n in owners.items())
    )
    _say("\n== done")
    return 0


def _alive(speakers: LabSpeakers, node: str) -> list[str]:
    doc = speakers.status(node) or {}
    return [m["name"] for m in doc.get("members", []) if m.get("state") == "alive"]


def run_lab(args: argparse.Namespace) -> int:
    logs.setup(args.log_level)
    if args.action == "demo":
        return run_demo(args.nodes)
    with Lab(args.nodes) as lab:
        _say(
            f"lab {lab.prefix} is up: namespaces "
            + ", ".join(lab.netns(r) for r in (*lab.node_names, CLIENT))
        )
        _say("Ctrl-C to tear it down")
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    return 0
