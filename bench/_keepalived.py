"""keepalived VRRP in the lab's node namespaces: the peer the failover benchmark compares to.

Each node runs Debian's keepalived (VRRP subsystem only, no fork, logging to the console)
with its own config, pid files and log in a temp dir. One VRRP instance on ``eth0`` holds a
VIP that is *not* on ``kube-ipvs0`` (keepalived adds it to ``eth0`` itself, so the node's
kernel answers ARP for it, and keepalived sends its own gratuitous ARPs on becoming MASTER).
node1 has the highest priority, so it is MASTER in steady state and takes the VIP back
(preemption, keepalived's default) after its link returns.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from l2agent.lab.netns import LAN_IF, Lab

KEEPALIVED_VIP = "192.0.2.240"
"""Outside the speakers' VIPs and off ``kube-ipvs0`` (documentation range)."""


def config_text(node: str, priority: int, advert_int: float, version: int, vrid: int) -> str:
    """A keepalived.conf with one VRRP instance (``version`` 2 allows whole seconds only)."""
    advert = f"{advert_int:g}"
    return (
        "global_defs {\n"
        f"    router_id {node}\n"
        f"    vrrp_version {version}\n"
        "    script_user root\n"
        "}\n"
        "vrrp_instance bench {\n"
        "    state BACKUP\n"
        f"    interface {LAN_IF}\n"
        f"    virtual_router_id {vrid}\n"
        f"    priority {priority}\n"
        f"    advert_int {advert}\n"
        "    virtual_ipaddress {\n"
        f"        {KEEPALIVED_VIP}/32 dev {LAN_IF}\n"
        "    }\n"
        "}\n"
    )


class Keepalived:
    """One keepalived per lab node; ``master()`` reads who holds the VIP on eth0."""

    def __init__(self, lab: Lab, workdir: Path, advert_int: float, version: int, vrid: int) -> None:
        self.lab = lab
        self.workdir = workdir
        self.advert_int = advert_int
        self.version = version
        self.vrid = vrid
        self.procs: dict[str, subprocess.Popen[Any]] = {}

    def start(self, node: str) -> None:
        index = self.lab.node_names.index(node)
        priority = 200 - 10 * index  # node1 highest
        d = self.workdir / f"keepalived-{self.vrid}-{node}"
        d.mkdir(parents=True, exist_ok=True)
        conf = d / "keepalived.conf"
        conf.write_text(config_text(node, priority, self.advert_int, self.version, self.vrid))
        argv = [
            "keepalived", "--vrrp", "--dont-fork", "--log-console", "--log-detail",
            "--use-file", str(conf),
            "--pid", str(d / "keepalived.pid"), "--vrrp_pid", str(d / "vrrp.pid"),
            "--checkers_pid", str(d / "checkers.pid"),
        ]  # fmt: skip
        log = open(d / "log", "ab")  # noqa: SIM115 - closed with the process at teardown
        self.procs[node] = self.lab.spawn(node, argv, stdout=log, stderr=log)

    def start_all(self) -> None:
        for node in self.lab.node_names:
            self.start(node)

    def holders(self) -> list[str]:
        """Nodes that have the VIP on eth0 right now."""
        out = []
        for node in self.lab.node_names:
            text = self.lab.ip(node, "-4", "addr", "show", "dev", LAN_IF)
            if f" {KEEPALIVED_VIP}/" in text:
                out.append(node)
        return out

    def wait_master(self, node: str, timeout: float = 30.0) -> bool:
        """Wait until ``node`` alone holds the VIP."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.holders() == [node]:
                return True
            time.sleep(0.1)
        return False

    def close(self) -> None:
        for proc in self.procs.values():
            self.lab.stop(proc)
        self.procs.clear()
