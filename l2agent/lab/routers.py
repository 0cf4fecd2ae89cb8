"""The BGP routers of the lab: BIRD 2 on router1 (its kernel FIB is the judge), GoBGP beside.

Both are independent implementations peering with the nodes' FRR; neither shares code with
l2agent. BIRD exports every BGP route into router1's kernel with ``merge paths on``, so one
kernel route carries every announcing node as a nexthop, and router1 forwards the remote
client's traffic by that route alone. GoBGP (3.10, no BFD and no FIB here) is judged by its
own RIB (``gobgp global rib -j``).

Settings the lab needs (measured): BIRD's ``error wait time 1, 2`` and ``connect retry time 1``
(the defaults 60/300 s and 120 s stall re-peering after a fault for minutes); BIRD's BFD
accepts 10 ms (``min rx interval``), so the nodes' BFD profile alone sets the detection time.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from l2agent.lab.netns import Lab, LabError, wait_until
from l2agent.lab.topology import IPAddress, router_address

log = logging.getLogger(__name__)

ROUTER_ASN = 64500


@dataclass(frozen=True, slots=True)
class RouterPeer:
    """One node as a router sees it: a BGP session from ``local`` (the router's address of
    the same family) to ``address``."""

    name: str
    address: IPAddress
    asn: int
    password: str | None = None
    bfd: bool = False

    @property
    def version(self) -> int:
        return self.address.version


def bird_missing() -> str | None:
    missing = [t for t in ("bird", "birdc") if shutil.which(t) is None]
    return f"BIRD 2 missing: {', '.join(missing)} (package bird2)" if missing else None


def gobgp_missing() -> str | None:
    missing = [t for t in ("gobgpd", "gobgp") if shutil.which(t) is None]
    return f"GoBGP missing: {', '.join(missing)} (package gobgpd)" if missing else None


def _quote(text: str) -> str:
    if '"' in text or "\\" in text or "\n" in text:
        raise ValueError("a lab password must not contain quotes, backslashes or newlines")
    return f'"{text}"'


def render_bird(
    index: int,
    asn: int,
    peers: Sequence[RouterPeer],
    log_path: Path,
    graceful_restart: str = "aware",
    bfd_min_rx_ms: int = 10,
) -> str:
    """BIRD 2 configuration: kernel export with ECMP merge, BFD, one BGP protocol per peer.

    ``index``: the router's number (its addresses come from ``topology.router_address``).
    ``graceful_restart``: BIRD's ``graceful restart`` value (``aware``, BIRD's default: it
    honours a peer's capability; ``off``).
    """
    lines = [
        f'log "{log_path}" all;',
        f"router id {router_address(index, 4)};",
        "protocol device { scan time 10; }",
        # One kernel route per prefix, every equal BGP route a nexthop of it.
        "protocol kernel kernel4 { ipv4 { import none; export all; }; merge paths on; }",
        "protocol kernel kernel6 { ipv6 { import none; export all; }; merge paths on; }",
        "protocol bfd {",
        f'  interface "*" {{ min rx interval {bfd_min_rx_ms} ms; min tx interval 100 ms;'
        " multiplier 3; };",
        "}",
    ]
    for peer in peers:
        family = f"ipv{peer.version}"
        lines += [
            f"protocol bgp {peer.name} {{",
            f"  local {router_address(index, peer.version)} as {asn};",
            f"  neighbor {peer.address} as {peer.asn};",
            "  direct;",  # one hop, also for iBGP (BFD single-hop, as FRR runs it)
            "  error wait time 1, 2;",
            "  connect retry time 1;",
            f"  graceful restart {graceful_restart};",
            f"  {family} {{ import all; export none; gateway direct; }};",
        ]
        if peer.password is not None:
            lines.append(f"  password {_quote(peer.password)};")
        if peer.bfd:
            lines.append("  bfd on;")
        lines.append("}")
    return "\n".join(lines) + "\n"


class LabBird:
    """BIRD 2 in ``role``'s namespace (default router1), in the foreground under ``Lab.spawn``."""

    def __init__(
        self,
        lab: Lab,
        peers: Sequence[RouterPeer],
        *,
        role: str = "router1",
        asn: int = ROUTER_ASN,
        graceful_restart: str = "aware",
        workdir: Path | None = None,
    ) -> None:
        self.lab = lab
        self.role = role
        self.asn = asn
        self.peers = tuple(peers)
        self.graceful_restart = graceful_restart
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="l2lab-bird-"))
        self.socket = self.workdir / "bird.ctl"
        self.config_path = self.workdir / "bird.conf"
        self.log_path = self.workdir / "bird.log"
        self.proc: subprocess.Popen[Any] | None = None
        self.index = int(role.removeprefix("router"))
        lab.on_close(self.close)

    def render(self) -> str:
        return render_bird(self.index, self.asn, self.peers, self.log_path, self.graceful_restart)

    def start(self) -> None:
        self.config_path.write_text(self.render())
        argv = ["bird", "-f", "-c", str(self.config_path), "-s", str(self.socket)]
        self.proc = self.lab.spawn(
            self.role, argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if not wait_until(lambda: self._answers(), 10.0, interval=0.05):
            raise LabError(f"BIRD did not start: {self.log_text()[-2000:]}")

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise LabError(f"BIRD exited ({self.proc.returncode}): {self.log_text()[-2000:]}")
        return self.socket.exists() and "BIRD" in self.birdc("show status", check=False)

    def reconfigure(self, peers: Sequence[RouterPeer]) -> None:
        """Replace the peers and ``birdc configure`` (sessions of unchanged peers stay up)."""
        self.peers = tuple(peers)
        self.config_path.write_text(self.render())
        out = self.birdc("configure")
        if "Reconfigured" not in out and "Reconfiguration in progress" not in out:
            raise LabError(f"birdc configure: {out}")

    def birdc(self, command: str, check: bool = True) -> str:
        argv = ["birdc", "-s", str(self.socket), *command.split()]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        if check and proc.returncode != 0:
            raise LabError(f"birdc {command}: {proc.stdout} {proc.stderr}")
        return proc.stdout

    def protocol_states(self) -> dict[str, str]:
        """BGP protocol name -> its BGP state (``Established``, ``Connect``, ``Active``...)."""
        states = {}
        for line in self.birdc("show protocols").splitlines():
            cols = line.split()
            if len(cols) >= 6 and cols[1] == "BGP":
                states[cols[0]] = cols[5]
        return states

    def wait_established(self, names: Sequence[str], timeout: float = 30.0) -> bool:
        def up() -> bool:
            states = self.protocol_states()
            return all(states.get(n) == "Established" for n in names)

        return wait_until(up, timeout, interval=0.2)

    def route_all(self, prefix: str) -> str:
        """``birdc show route for PREFIX all``: every path with its BGP attributes."""
        return self.birdc(f"show route {prefix} all", check=False)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        if self.proc is not None:
            self.lab.stop(self.proc)
            self.proc = None
        shutil.rmtree(self.workdir, ignore_errors=True)


def render_gobgp(router_id: IPAddress, asn: int, peers: Sequence[RouterPeer]) -> str:
    """gobgpd TOML: one neighbor per peer, 1 s connect retry, everything accepted."""
    lines = [
        "[global.config]",
        f"  as = {asn}",
        f'  router-id = "{router_id}"',
        "  port = 179",
    ]
    for peer in peers:
        family = "ipv4-unicast" if peer.version == 4 else "ipv6-unicast"
        lines += [
            "[[neighbors]]",
            "  [neighbors.config]",
            f'    neighbor-address = "{peer.address}"',
            f"    peer-as = {peer.asn}",
        ]
        if peer.password is not None:
            lines.append(f"    auth-password = {_quote(peer.password)}")
        lines += [
            "  [neighbors.timers.config]",
            "    connect-retry = 1",
            "  [[neighbors.afi-safis]]",
            "    [neighbors.afi-safis.config]",
            f'      afi-safi-name = "{family}"',
        ]
    return "\n".join(lines) + "\n"


_GOBGP_STATES = {
    0: "unknown", 1: "idle", 2: "connect", 3: "active",
    4: "opensent", 5: "openconfirm", 6: "established",
}  # fmt: skip
"""GoBGP's API ``PeerState.SessionState`` numbers (its JSON prints the number)."""


class LabGobgp:
    """gobgpd in ``role``'s namespace (default router2); its gRPC API stays inside it."""

    API = "127.0.0.1:50051"

    def __init__(
        self,
        lab: Lab,
        peers: Sequence[RouterPeer],
        *,
        role: str = "router2",
        asn: int = ROUTER_ASN,
        workdir: Path | None = None,
    ) -> None:
        self.lab = lab
        self.role = role
        self.asn = asn
        self.peers = tuple(peers)
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="l2lab-gobgp-"))
        self.config_path = self.workdir / "gobgpd.toml"
        self.log_path = self.workdir / "gobgpd.log"
        self.proc: subprocess.Popen[Any] | None = None
        self.router_id = router_address(int(role.removeprefix("router")), 4)
        lab.on_close(self.close)

    def start(self) -> None:
        self.config_path.write_text(render_gobgp(self.router_id, self.asn, self.peers))
        argv = [
            "gobgpd", "-f", str(self.config_path), "-p", "--pprof-disable",
            "--api-hosts", self.API,
        ]  # fmt: skip
        logf = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = self.lab.spawn(self.role, argv, stdout=logf, stderr=logf)
        logf.close()
        if not wait_until(self._answers, 10.0, interval=0.1):
            raise LabError(f"gobgpd did not start: {self.log_text()[-2000:]}")

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise LabError(f"gobgpd exited ({self.proc.returncode}): {self.log_text()[-2000:]}")
        try:
            self.gobgp("global")
        except (LabError, subprocess.TimeoutExpired):
            return False
        return True

    def gobgp(self, *args: str) -> str:
        host, port = self.API.split(":")
        return self.lab.exec(self.role, ["gobgp", "-u", host, "-p", port, *args], timeout=10)

    def neighbor_states(self) -> dict[str, str]:
        """Peer address -> session state (``established``, ``active``, ...)."""
        doc = json.loads(self.gobgp("neighbor", "-j") or "[]")
        out = {}
        for entry in doc:
            address = entry.get("conf", {}).get("neighbor_address", "")
            state = entry.get("state", {}).get("session_state", 0)
            out[address] = _GOBGP_STATES.get(state, str(state)).lower()
        return out

    def wait_established(self, addresses: Sequence[str], timeout: float = 30.0) -> bool:
        def up() -> bool:
            states = self.neighbor_states()
            return all(states.get(a) == "established" for a in addresses)

        return wait_until(up, timeout, interval=0.2)

    def rib(self, version: int = 4) -> dict[str, list[dict[str, Any]]]:
        """Prefix -> its paths (each with ``nexthop`` and ``attrs``) in GoBGP's global RIB."""
        family = "ipv4" if version == 4 else "ipv6"
        doc = json.loads(self.gobgp("global", "rib", "-a", family, "-j") or "{}")
        return {str(ipaddress.ip_network(k)): v for k, v in doc.items()}

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        if self.proc is not None:
            self.lab.stop(self.proc)
            self.proc = None
        shutil.rmtree(self.workdir, ignore_errors=True)
