"""The rendered frr.conf against a running FRR 8.4 (zebra + bfdd + bgpd in a namespace of our
own): `frr-reload.py --reload` applies it, and `frr-reload.py --test` then finds nothing to
change. So the text is FRR's own normal form, and a speaker that reloads an unchanged plan
changes nothing in FRR. Also: the node's forwarding as `read_forwarding` sees it, judged by
`sysctl` in the same namespace; and the speaker's reloader getting past a change that
frr-reload.py itself crashes on.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.frr_netns import Frr, frr_in_netns

from l2agent.bgp.frr_config import FrrOptions, render
from l2agent.bgp.plan import plan_bgp
from l2agent.bgp.reload import FrrReloader
from l2agent.bgp.reload_outcome import ReloadOutcome, ReloadResult, is_crash
from l2agent.model import build_state
from l2agent.static import load_yaml_files, load_yaml_text

pytestmark = pytest.mark.e2e

DATA = Path(__file__).resolve().parents[1] / "data" / "bgp"
#: Cases that between them use every line the renderer writes.
CASES = [
    ("communities", "node1"),
    ("bfd-profiles", "node1"),
    ("session-options", "node1"),
    ("dual-stack", "node1"),
    ("passwords", "node1"),
    ("dynamic-asn", "node1"),
    ("graceful-restart", "node1"),
    ("vrf", "node1"),
    ("seed-bgp-advanced", "worker-1"),
]


@pytest.fixture
def frr() -> Iterator[Frr]:
    with frr_in_netns() as box:
        yield box


def _text(case: str, node: str) -> str:
    result = build_state(load_yaml_files([DATA / f"{case}.yaml"]))
    assert result.ok
    # as the speaker renders it: the host's name, FRR's log lines left to the daemons
    return render(plan_bgp(result.state, node), FrrOptions(hostname=socket.gethostname()))


def _changes(test_output: str) -> list[str]:
    """The lines frr-reload.py --test would delete or add (its stdout holds only the
    "Lines To Delete" / "Lines To Add" sections, each present only when not empty)."""
    out = []
    for line in test_output.splitlines():
        if line.startswith(("Lines To", "=")) or not line.strip():
            continue
        out.append(line)
    return out


def test_rendered_configs_are_fixed_points_of_frr_reload(frr: Frr) -> None:
    """Each case is applied to an FRR emptied by a reload first (frr-reload.py 8.4 crashes
    on some transitions, e.g. a `neighbor X route-map` line to delete while a whole new
    `router bgp` context is added: UnboundLocalError in ignore_delete_re_add_lines). Two FRR
    artefacts are tolerated, each fixed by the next reload: the graceful-restart quirk
    (applied, exit 1) and an empty `bfd` node left when the last profile goes. Three
    reloads must reach a text FRR has nothing to change in."""
    path = frr.dir / "frr.conf"
    for case, node in CASES:
        path.write_text("ip nht resolve-via-default\n")
        shutil.chown(path, "frr", "frr")
        frr.reload("--reload", path)
        path.write_text(_text(case, node))
        changes: list[str] = ["(not applied yet)"]
        for _ in range(3):
            frr.reload("--reload", path)
            test = frr.reload("--test", path)
            assert test.returncode == 0, f"{case}: {test.stderr}"
            changes = _changes(test.stdout)
            if not changes:
                break
        assert changes == [], f"{case}: FRR would still change {changes}"


def test_read_forwarding_sees_what_sysctl_set(frr: Frr) -> None:
    for v4, v6 in ((0, 0), (1, 0), (0, 1)):
        frr.run("sysctl", "-qw", f"net.ipv4.ip_forward={v4}", f"net.ipv6.conf.all.forwarding={v6}")
        got = frr.run(
            sys.executable,
            "-c",
            "from l2agent.bgp.forwarding import read_forwarding; f = read_forwarding();"
            " print(int(f.ipv4), int(f.ipv6))",
        )
        assert got.stdout.split() == [str(v4), str(v6)], got.stderr


_TWO_PEERS = """
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: pool, namespace: metallb-system}
spec: {addresses: [198.51.100.0/24]}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: router-a, namespace: metallb-system}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 192.0.2.1}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: router-b, namespace: metallb-system}
spec: {myASN: 64512, peerASN: 64514, peerAddress: 192.0.2.2%s}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: all, namespace: metallb-system}
---
apiVersion: v1
kind: Node
metadata: {name: node1}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {type: LoadBalancer, ports: [{port: 80, protocol: TCP}]}
status: {loadBalancer: {ingress: [{ip: 198.51.100.10}]}}
"""


def _rendered(yaml_text: str) -> str:
    result = build_state(load_yaml_text(yaml_text))
    assert result.ok
    return render(plan_bgp(result.state, "node1"), FrrOptions(hostname=socket.gethostname()))


def test_a_change_frr_reload_crashes_on_is_applied_in_two_steps(frr: Frr) -> None:
    """router-b moves into VRF red: one change deletes its `neighbor ... route-map` lines
    and adds a whole new `router bgp 64512 vrf red`, which frr-reload.py 8.4 crashes on
    (UnboundLocalError: rm_match), in --test and --reload alike. The reloader must tell the
    crash from a refusal and get FRR to the new text anyway; FRR judges the result."""
    before, after = _rendered(_TWO_PEERS % ""), _rendered(_TWO_PEERS % ", vrf: red")
    reloader = FrrReloader(frr.dir, frr.dir, debounce=0.0, retry_base=60.0)
    probe = frr.dir / "probe.conf"

    async def scenario() -> tuple[ReloadOutcome, str, ReloadOutcome]:
        first = await reloader.apply(before)
        probe.write_text(after)
        crash = await asyncio.to_thread(frr.reload, "--test", probe)
        second = await reloader.apply(after)
        await reloader.close()
        return first, crash.stdout + crash.stderr, second

    first, crash, second = asyncio.run(scenario())
    assert first.result.ok, first
    if not is_crash(crash):
        pytest.skip("this frr-reload.py does not crash on the transition any more")
    assert second.result is ReloadResult.APPLIED_IN_STEPS, second
    assert "rm_match" in second.detail
    # FRR runs exactly the new text: frr-reload.py finds nothing to change (and no crash).
    test = frr.reload("--test", frr.dir / "frr.conf")
    assert test.returncode == 0 and _changes(test.stdout) == [], test.stdout + test.stderr
    running = frr.run("vtysh", "--vty_socket", str(frr.dir), "-c", "show running-config").stdout
    assert "router bgp 64512 vrf red" in running
    assert "route-map 192.0.2.2-in" not in running and "route-map 192.0.2.2-red-in" in running
    assert (frr.dir / "frr.conf").read_text() == after and reloader.last_good == after
    assert not (frr.dir / "frr.conf.step").exists()
