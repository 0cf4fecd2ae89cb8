"""NetlinkInventory against the real kernel: the dump and every kind of event, in a lab node.

The inventory runs in a child process inside the node's namespace and prints one JSON
snapshot per change; the test changes links with `ip` and waits for the snapshot that shows it.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from l2agent.lab.netns import Lab

pytestmark = pytest.mark.e2e

_WATCH = r"""
import asyncio, json, sys
from l2agent.interfaces.netlink import NetlinkInventory
from l2agent.interfaces.inventory import responder_interfaces

def dump(inv):
    out = {n: {"index": i.index, "mac": i.mac.hex(), "up": i.up, "carrier": i.carrier,
               "broadcast": i.broadcast, "noarp": i.noarp, "master": i.master,
               "link_local": str(i.link_local) if i.link_local else None, "kind": i.kind}
           for n, i in inv.items()}
    print(json.dumps({"ifaces": out, "responders": sorted(responder_interfaces(inv))}),
          flush=True)

async def main():
    inv = NetlinkInventory(on_change=lambda before, after: dump(after))
    dump(await inv.start())
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    inv.close()

asyncio.run(main())
"""


class Watcher:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict:
        """The first snapshot satisfying ``pred`` (generous bound: e2e only)."""
        seen = []
        while True:
            try:
                snap = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no matching snapshot; last: {seen[-1:]}") from None
            seen.append(snap)
            if pred(snap):
                return snap


@pytest.fixture
def node() -> Iterator[tuple[Lab, Watcher]]:
    with Lab(nodes=1, vips=()) as lab:
        proc = lab.spawn(
            "node1",
            [sys.executable, "-c", _WATCH],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        yield lab, Watcher(proc)
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=5)


def test_initial_dump_matches_the_kernel(node: tuple[Lab, Watcher]) -> None:
    lab, watch = node
    snap = watch.wait_for(lambda s: True)
    eth0 = snap["ifaces"]["eth0"]
    assert eth0["mac"] == lab.node_mac("node1").hex()
    assert eth0["up"] and eth0["carrier"] and eth0["broadcast"] and not eth0["noarp"]
    assert eth0["link_local"].startswith("fe80::")
    assert eth0["kind"] == "veth"
    assert not snap["ifaces"]["kube-ipvs0"]["up"]
    # lo and kube-ipvs0 are excluded by name; eth0 is eligible although it is a veth.
    assert snap["responders"] == ["eth0"]


def test_link_and_address_events_arrive_without_polling(node: tuple[Lab, Watcher]) -> None:
    lab, watch = node
    watch.wait_for(lambda s: True)
    lab.ip("node1", "link", "add", "br7", "type", "bridge")
    lab.ip("node1", "link", "set", "br7", "up")
    watch.wait_for(lambda s: "br7" in s["ifaces"] and s["ifaces"]["br7"]["up"])
    # A port enslaved to br7 is not eligible; br7 itself is.
    lab.ip("node1", "link", "add", "eth5", "type", "veth", "peer", "name", "eth6")
    lab.ip("node1", "link", "set", "eth5", "master", "br7", "up")
    snap = watch.wait_for(lambda s: s["ifaces"].get("eth5", {}).get("master") is not None)
    assert snap["ifaces"]["eth5"]["master"] == snap["ifaces"]["br7"]["index"]
    assert "eth5" not in snap["responders"]
    # NOARP takes an interface out.
    lab.ip("node1", "link", "set", "eth6", "up", "arp", "off")
    snap = watch.wait_for(lambda s: s["ifaces"].get("eth6", {}).get("noarp") is True)
    assert "eth6" not in snap["responders"]
    # Link-local address removal and re-adding.
    ll = snap["ifaces"]["eth0"]["link_local"]
    lab.ip("node1", "addr", "del", f"{ll}/64", "dev", "eth0")
    snap = watch.wait_for(lambda s: s["ifaces"]["eth0"]["link_local"] is None)
    lab.ip("node1", "addr", "add", "fe80::abcd/64", "dev", "eth0", "nodad")
    watch.wait_for(lambda s: s["ifaces"]["eth0"]["link_local"] == "fe80::abcd")
    # Deletion.
    lab.ip("node1", "link", "del", "br7")
    watch.wait_for(lambda s: "br7" not in s["ifaces"])


def test_carrier_loss_and_mac_change_are_seen(node: tuple[Lab, Watcher]) -> None:
    lab, watch = node
    watch.wait_for(lambda s: True)
    lab.cut_link("node1")
    snap = watch.wait_for(lambda s: not s["ifaces"]["eth0"]["carrier"])
    assert snap["ifaces"]["eth0"]["up"]  # still administratively up
    lab.restore_link("node1")
    watch.wait_for(lambda s: s["ifaces"]["eth0"]["carrier"])
    lab.ip("node1", "link", "set", "eth0", "address", "02:1a:b0:00:00:99")
    watch.wait_for(lambda s: s["ifaces"]["eth0"]["mac"] == "021ab0000099")
