"""`l2agent status` shows each speaker's BGP sessions as FRR reports them.

A real FRR in a namespace of its own gets node1's frr.conf through the speaker's own BGP link
and reloader: two BGPPeers (router-b with a BFD profile) towards routers that do not exist,
so neither session comes up. The speaker's poller reads FRR, /status serves the sessions,
and `l2agent status` merges them: FRR's own `show bgp neighbors json` and `show bfd peers
json` are the judges of what each row says.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
from typing import Any

import pytest
from helpers.frr_netns import Frr, frr_in_netns
from prometheus_client import CollectorRegistry

from l2agent.bgp.frr_poll import FrrStatePoller
from l2agent.bgp.reload import FrrReloader
from l2agent.cli.status_view import run_status
from l2agent.health import HealthServer, speaker_status
from l2agent.model import build_state
from l2agent.speaker.bgp import BgpLink
from l2agent.static import load_yaml_text

pytestmark = pytest.mark.e2e

CONFIG = """
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
spec: {myASN: 64512, peerASN: 64514, peerAddress: 192.0.2.2, bfdProfile: fast}
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: fast, namespace: metallb-system}
spec: {receiveInterval: 50, transmitInterval: 50}
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


def _vtysh_json(frr: Frr, command: str) -> Any:
    out = frr.run("vtysh", "--vty_socket", str(frr.dir), "-c", command)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


async def _serve_and_ask(frr: Frr) -> tuple[int, dict[str, Any], int, str]:
    result = build_state(load_yaml_text(CONFIG))
    assert result.ok
    reloader = FrrReloader(frr.dir, frr.dir, debounce=0.0, retry_base=60.0)
    link = BgpLink("node1", reloader, lambda: result.state)
    assert link.report(await FrrStatePoller(frr.dir).poll()) is None  # not engaged yet
    link.plan_changed()
    for _ in range(300):
        if reloader.last_outcome is not None:
            break
        await asyncio.sleep(0.05)
    assert reloader.last_outcome is not None and reloader.last_outcome.result.ok
    await reloader.close()
    state = await FrrStatePoller(frr.dir, config_dir=frr.dir, interval=0.0).poll()
    assert state.error is None, state.error
    status = speaker_status("node1", list, list, lambda: link.report(state))
    server = HealthServer(CollectorRegistry(), host="127.0.0.1", port=0, status=status)
    await server.start()
    try:
        url = f"127.0.0.1:{server.address[1]}"
        out_json, out_table = io.StringIO(), io.StringIO()
        as_json = argparse.Namespace(speaker=[url], output="json")
        code_json = await asyncio.to_thread(run_status, as_json, out_json)
        as_table = argparse.Namespace(speaker=[url], output="table")
        code_table = await asyncio.to_thread(run_status, as_table, out_table)
    finally:
        await server.close()
    return code_json, json.loads(out_json.getvalue()), code_table, out_table.getvalue()


def test_status_shows_each_bgp_session_as_frr_has_it() -> None:
    with frr_in_netns() as frr:
        code, doc, table_code, table = asyncio.run(_serve_and_ask(frr))
        neighbors = _vtysh_json(frr, "show bgp neighbors json")
        bfd = {p["peer"]: p["status"] for p in _vtysh_json(frr, "show bfd peers json")}
    sessions = {s["peer"]: s for s in doc["bgp_sessions"]}
    assert sorted(sessions) == ["router-a", "router-b"]
    for name, address in (("router-a", "192.0.2.1"), ("router-b", "192.0.2.2")):
        row = sessions[name]
        assert (row["node"], row["address"], row["vrf"]) == ("node1", address, "default")
        assert row["state"] == neighbors[address]["bgpState"] != "Established"
        assert row["established"] is False and row["prefixes_sent"] == 0
    assert sessions["router-a"]["bfd"] is None  # no BFD profile
    assert sessions["router-b"]["bfd"] == bfd["192.0.2.2"] == "down"
    assert doc["speakers"][0]["bgp_error"] is None
    # sessions that are not Established need care: exit 1, as for an IP without an owner
    assert code == table_code == 1
    header = next(line for line in table.splitlines() if line.startswith("NODE"))
    assert header.split() == ["NODE", "PEER", "ADDRESS", "VRF", "STATE", "PREFIXES", "BFD"]
    row_b = next(line for line in table.splitlines() if "router-b" in line).split()
    assert row_b == ["node1", "router-b", "192.0.2.2", "default", sessions["router-b"]["state"],
                     "0", "down"]  # fmt: skip
