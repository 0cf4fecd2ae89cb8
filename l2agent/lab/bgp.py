"""The BGP lab: nodes running FRR, BIRD on router1 (the kernel FIB that routes the remote
client's traffic), optionally GoBGP on router2, UDP echo servers on the nodes.

``BgpLab`` composes the pieces of ``l2agent.lab`` (``Lab(routers=N)``, ``LabFrr``,
``LabBird``, ``LabGobgp``, ``LabSpeakers`` for echo servers and probers) and knows the lab's
BGP address plan: the nodes are AS ``NODE_ASN`` (64512, eBGP to the routers' 64500 unless a
lab asks for iBGP), every node peers with router1 over IPv4 and IPv6 and with router2 over
IPv4; service IPs come from ``topology.bgp_vip`` and sit on every node's ``kube-ipvs0``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from l2agent.lab.bgp_cluster import frr_conf
from l2agent.lab.fib import nexthops
from l2agent.lab.frr import LabFrr
from l2agent.lab.netns import Lab
from l2agent.lab.routers import ROUTER_ASN, LabBird, LabGobgp, RouterPeer
from l2agent.lab.speakers import LabSpeakers
from l2agent.lab.topology import REMOTE, IPAddress, node_address, node_index, router_address

NODE_ASN = 64512


class BgpLab:
    """Build on ``__enter__``, tear everything down on ``__exit__`` (namespaces, daemons, dirs).

    ``nodes``: node count. ``vips``: service IPs on every node. ``gobgp``: a second router
    (router2) running gobgpd. ``ibgp``: the nodes are in the routers' AS (local preference
    is only sent over iBGP).
    """

    def __init__(
        self,
        nodes: int = 3,
        vips: Sequence[IPAddress] = (),
        *,
        gobgp: bool = False,
        ibgp: bool = False,
        workdir: Path | None = None,
    ) -> None:
        self.lab = Lab(nodes, vips=vips, routers=2 if gobgp else 1)
        self.with_gobgp = gobgp
        self.node_asn = ROUTER_ASN if ibgp else NODE_ASN
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="l2lab-bgp-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)  # the frr user must reach the FRR directories in it
        self.frr: LabFrr | None = None
        self.bird: LabBird | None = None
        self.gobgp: LabGobgp | None = None
        self.echo: LabSpeakers | None = None

    # -- life cycle -------------------------------------------------------------------------

    def __enter__(self) -> BgpLab:
        self.lab.build()
        try:
            self.frr = LabFrr(self.lab, self.workdir / "frr")
            self.echo = LabSpeakers(self.lab, Path(os.devnull), workdir=self.workdir)
            for node in self.lab.node_names:
                self.echo.start_echo(node)
        except BaseException:
            self.lab.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self.echo is not None:
            self.echo.close()
        self.lab.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- routers ----------------------------------------------------------------------------

    def router_peers(
        self,
        *,
        router: int = 1,
        passwords: dict[str, str] | None = None,
        bfd: bool = False,
        families: Sequence[int] = (4, 6),
    ) -> list[RouterPeer]:
        """The nodes as router ``router`` peers with them (``passwords``: node -> password)."""
        passwords = passwords or {}
        return [
            RouterPeer(
                name=f"{node}_v{version}",
                address=node_address(node_index(node), version),
                asn=self.node_asn,
                password=passwords.get(node),
                bfd=bfd,
            )
            for node in self.lab.node_names
            for version in families
        ]

    def start_bird(self, graceful_restart: str = "aware", **peers: object) -> LabBird:
        self.bird = LabBird(
            self.lab,
            self.router_peers(**peers),  # type: ignore[arg-type]
            graceful_restart=graceful_restart,
            workdir=self.workdir / "bird",
        )
        (self.workdir / "bird").mkdir(exist_ok=True)
        self.bird.start()
        return self.bird

    def start_gobgp(self, **peers: object) -> LabGobgp:
        (self.workdir / "gobgp").mkdir(exist_ok=True)
        self.gobgp = LabGobgp(
            self.lab,
            self.router_peers(router=2, families=(4,), **peers),  # type: ignore[arg-type]
            workdir=self.workdir / "gobgp",
        )
        self.gobgp.start()
        return self.gobgp

    def peer_addresses(self) -> list[str]:
        """What every node peers with: router1 over IPv4 and IPv6, router2 over IPv4."""
        out = [str(router_address(1, 4)), str(router_address(1, 6))]
        if self.with_gobgp:
            out.append(str(router_address(2, 4)))
        return out

    # -- the nodes' FRR ---------------------------------------------------------------------

    def start_frr(self) -> None:
        """Start FRR (no configuration yet) on every node."""
        assert self.frr is not None
        for node in self.lab.node_names:
            self.frr.start(node)

    def apply(
        self,
        objects: Sequence[Mapping[str, Any]],
        nodes: Sequence[str] | None = None,
        *,
        withdrawn: bool = False,
    ) -> None:
        """Render each node's frr.conf from the cluster's MetalLB ``objects`` (the speaker's
        planner and renderer) and apply it through the speaker's reloader, nodes at once."""
        assert self.frr is not None
        chosen = self.lab.node_names if nodes is None else nodes
        self.frr.apply_all({n: frr_conf(objects, n, withdrawn=withdrawn) for n in chosen})

    # -- observation ------------------------------------------------------------------------

    def nexthops(self, prefix: str) -> frozenset[str]:
        """The gateways router1's kernel routes ``prefix`` through."""
        return nexthops(self.lab, "router1", prefix)

    def node_nexthops(self, nodes: Sequence[str], version: int) -> frozenset[str]:
        """The nexthop addresses ``nodes`` would show as in router1's FIB."""
        return frozenset(str(node_address(node_index(n), version)) for n in nodes)

    def probe(
        self, target: str, duration: float, *, flows: int = 1, interval: float = 0.002
    ) -> subprocess.Popen[Any]:
        """A prober in the remote client's namespace (behind router1)."""
        assert self.echo is not None
        return self.echo.probe(target, duration, interval, role=REMOTE, flows=flows)
