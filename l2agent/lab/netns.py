"""The network-namespace lab: N nodes and one client on a bridge that lives in its own namespace.

Shape (all names carry this lab's unique prefix, so nothing collides with the host or with
another lab running at the same time)::

    <prefix>-client  eth0 ──┐
    <prefix>-node1   eth0 ──┤  <prefix>-switch: bridge br0 (multicast snooping off)
    <prefix>-node2   eth0 ──┤     ports c, n1, n2, ... (switch-side veth ends)
    ...                     │
    <prefix>-router1 eth0 ──┤     (BGP labs, ``routers=N``: ports r1, r2, ...)
             eth1 ──── <prefix>-remote eth0   (the client behind router1)
    <prefix>-router2 eth0 ──┘

Each node holds every VIP on ``kube-ipvs0``, a device of its own that stays DOWN (a ``dummy``
device, or an empty bridge where the kernel has no dummy driver), with ``arp_ignore=1`` and
``arp_announce=2``, as kube-proxy's IPVS mode leaves a node: the kernel delivers packets to
the VIPs locally but never answers ARP or NS for them on ``eth0``. Only the agent does.

Routers forward, hash multipath routes on L4 ports (``fib_multipath_hash_policy=1``) and
are the nodes' default gateway, so replies from a service IP to the remote client go back
through router1; which node gets a flow is decided by router1's kernel FIB alone.

Only documentation ranges are used (see ``topology.py``). Teardown runs the ``on_close``
callbacks (daemons that fork away from ``spawn``: FRR), stops every process it spawned, by
PID, then every process still left in its namespaces, then deletes every namespace this
lab made (which also destroys every veth and bridge in them), also on an exception, Ctrl-C
(``KeyboardInterrupt`` unwinds the ``with``) and interpreter exit (``atexit``).
``sweep_stale()`` removes namespaces (and what still runs in them) left by a lab whose
owner process is gone (a ``kill -9``), recognised by this lab's own name format only.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

from l2agent.lab.topology import (
    ATTACKER,
    CLIENT,
    DEFAULT_VIPS,
    REMOTE,
    SWITCH,
    IPAddress,
    attacker_address,
    attacker_mac,
    client_address,
    client_mac,
    node_address,
    node_mac,
    node_name,
    remote_address,
    router_address,
    router_mac,
    router_name,
    uplink_address,
)

log = logging.getLogger(__name__)

LAN_IF = "eth0"
"""The LAN interface name inside node and client namespaces (eligible: not ``veth*``)."""

VIP_DEV = "kube-ipvs0"
"""The down device that carries the VIPs on each node, as kube-proxy IPVS mode names it."""

BRIDGE = "br0"

_PR_SET_PDEATHSIG = 1

_PREFIX_RE = re.compile(r"^l2lab-(?P<pid>\d+)-(?P<token>[0-9a-f]{4})$")
"""The name format of a lab prefix: owner PID plus a random token. The sweeper trusts only this."""


class LabError(RuntimeError):
    """A lab command failed (our environment's fault, not a peer's)."""


def _run(argv: Sequence[str], check: bool = True, timeout: float = 30.0) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)!r} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def new_prefix() -> str:
    """A fresh prefix ``l2lab-<pid>-<hex4>``: the PID lets ``sweep_stale`` see a dead owner."""
    return f"l2lab-{os.getpid()}-{secrets.token_hex(2)}"


def list_namespaces() -> list[str]:
    """Names of the network namespaces ``ip netns`` knows (ids stripped)."""
    out = _run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> list[str]:
    """Delete namespaces of labs whose owner PID is dead; returns the names deleted.

    Only names of the exact form ``l2lab-<pid>-<hex4>-<role>`` are considered, so namespaces
    of other tools or of live labs are never touched.
    """
    deleted = []
    for ns in list_namespaces():
        prefix, _, _role = ns.rpartition("-")
        match = _PREFIX_RE.match(prefix)
        if match is None or _pid_alive(int(match["pid"])):
            continue
        _kill_namespace_processes(ns)
        _run(["ip", "netns", "delete", ns], check=False)
        deleted.append(ns)
    if deleted:
        log.info("swept stale lab namespaces: %s", ", ".join(deleted))
    return deleted


def dummy_supported() -> bool:
    """True when the kernel can make a ``dummy`` device (the CI kernels cannot)."""
    probe = f"{new_prefix()}-probe"
    _run(["ip", "netns", "add", probe])
    try:
        out = subprocess.run(
            ["ip", "-n", probe, "link", "add", "d0", "type", "dummy"], capture_output=True
        )
        return out.returncode == 0
    finally:
        _run(["ip", "netns", "delete", probe], check=False)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What a test needs to know about one node of the lab."""

    name: str
    netns: str
    mac: bytes
    ipv4: IPAddress
    ipv6: IPAddress
    switch_port: str


class Lab:
    """Build the lab on ``__enter__`` (or ``build()``), tear it down on ``__exit__``/``close()``.

    ``nodes``: number of node namespaces (named ``node1``..``nodeN``).
    ``vips``: service IPs put on every node's ``kube-ipvs0`` (IPv4 and IPv6).
    ``prefix``: namespace name prefix; default ``l2lab-<pid>-<random>``.
    ``routers``: BGP routers on the LAN (``router1``..); with at least one, a ``remote``
    client behind router1 too.
    ``attacker``: add an ``"attacker"`` host on the node network (hostile-input tests).
    Roles accepted by ``exec``/``spawn``/``netns``: ``"node1"``.., ``"client"``, ``"switch"``,
    ``"router1"``.., ``"remote"`` in a BGP lab, and ``"attacker"`` when asked for.
    """

    def __init__(
        self,
        nodes: int = 3,
        vips: Sequence[IPAddress] = DEFAULT_VIPS,
        prefix: str | None = None,
        routers: int = 0,
        attacker: bool = False,
    ) -> None:
        if not 1 <= nodes <= 80:
            raise ValueError("nodes must be between 1 and 80")
        if not 0 <= routers <= 9:
            raise ValueError("routers must be between 0 and 9")
        self.prefix = prefix or new_prefix()
        self.node_names = tuple(node_name(i) for i in range(1, nodes + 1))
        self.router_names = tuple(router_name(i) for i in range(1, routers + 1))
        self.vips = tuple(vips)
        self.attacker = attacker
        self._made: list[str] = []
        self._procs: list[subprocess.Popen[Any]] = []
        self._on_close: list[Callable[[], None]] = []
        self._closed = False
        self._old_sigterm: Any = None
        self.vip_device_kind = ""
        self.nodes: dict[str, NodeInfo] = {}

    # -- naming -----------------------------------------------------------------------------

    def netns(self, role: str) -> str:
        """The namespace name of ``role`` (``node1``, ``client``, ``switch``)."""
        remote = (REMOTE,) if self.router_names else ()
        extra = (ATTACKER,) if self.attacker else ()
        if role not in (*self.node_names, CLIENT, SWITCH, *self.router_names, *remote, *extra):
            raise KeyError(f"no such lab role: {role!r}")
        return f"{self.prefix}-{role}"

    # -- life cycle -------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        self.build()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def build(self) -> None:
        """Create every namespace, link and address; on any failure, undo what was made."""
        sweep_stale()  # namespaces of labs whose owner was killed (-9) before cleaning up
        atexit.register(self.close)
        self._install_sigterm()
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        sw = self.netns(SWITCH)
        self._add_ns(sw)
        self.ip(SWITCH, "link", "add", BRIDGE, "type", "bridge", "mcast_snooping", "0")
        self.ip(SWITCH, "link", "set", BRIDGE, "up")
        self._add_host(CLIENT, "c", client_mac(), client_address(4), client_address(6))
        if self.attacker:
            self._add_host(
                ATTACKER, "atk", attacker_mac(), attacker_address(4), attacker_address(6)
            )
        use_dummy = dummy_supported()
        self.vip_device_kind = "dummy" if use_dummy else "bridge"
        for index, name in enumerate(self.node_names, start=1):
            port = f"n{index}"
            mac = node_mac(index)
            self._add_host(name, port, mac, node_address(index, 4), node_address(index, 6))
            self._add_vip_device(name)
            self.nodes[name] = NodeInfo(
                name=name,
                netns=self.netns(name),
                mac=mac,
                ipv4=node_address(index, 4),
                ipv6=node_address(index, 6),
                switch_port=port,
            )
        if self.router_names:
            self._add_routers()
        log.info(
            "lab %s up: %d nodes, VIPs on a %s device",
            self.prefix,
            len(self.nodes),
            self.vip_device_kind,
        )

    def _add_ns(self, ns: str) -> None:
        _run(["ip", "netns", "add", ns])
        self._made.append(ns)
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def _add_host(self, role: str, port: str, mac: bytes, v4: IPAddress, v6: IPAddress) -> None:
        ns = self.netns(role)
        self._add_ns(ns)
        sysctl = [
            # No DAD on the lab LAN: addresses (and the link-local NDP needs) are usable at once.
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
        ]
        self.exec(role, ["sysctl", "-q", "-w", *sysctl])
        self.ip(SWITCH, "link", "add", port, "type", "veth", "peer", "name", LAN_IF, "netns", ns)
        self.ip(SWITCH, "link", "set", port, "master", BRIDGE, "up")
        self.ip(role, "link", "set", LAN_IF, "address", _mac_text(mac))
        self.ip(role, "addr", "add", f"{v4}/24", "dev", LAN_IF)
        self.ip(role, "addr", "add", f"{v6}/64", "dev", LAN_IF, "nodad")
        self.ip(role, "link", "set", LAN_IF, "up")

    def _add_routers(self) -> None:
        """Routers on the LAN, the remote client behind router1, nodes routed through it."""
        for index, name in enumerate(self.router_names, start=1):
            v4, v6 = router_address(index, 4), router_address(index, 6)
            self._add_host(name, f"r{index}", router_mac(index), v4, v6)
            self.exec(
                name,
                [
                    "sysctl", "-q", "-w",
                    "net.ipv4.ip_forward=1",
                    "net.ipv6.conf.all.forwarding=1",
                    # ECMP hashes on L4 ports too, so many flows from one client spread.
                    "net.ipv4.fib_multipath_hash_policy=1",
                    "net.ipv6.fib_multipath_hash_policy=1",
                ],
            )  # fmt: skip
        router1 = self.router_names[0]
        remote = self.netns(REMOTE)
        self._add_ns(remote)
        self.exec(REMOTE, ["sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0"])
        self.ip(router1, "link", "add", "eth1", "type", "veth", "peer", "name", LAN_IF,
                "netns", remote)  # fmt: skip
        for role, dev, v4, v6 in (
            (router1, "eth1", uplink_address(4), uplink_address(6)),
            (REMOTE, LAN_IF, remote_address(4), remote_address(6)),
        ):
            self.ip(role, "addr", "add", f"{v4}/24", "dev", dev)
            self.ip(role, "addr", "add", f"{v6}/64", "dev", dev, "nodad")
            self.ip(role, "link", "set", dev, "up")
        self.ip(REMOTE, "route", "add", "default", "via", str(uplink_address(4)))
        self.ip(REMOTE, "-6", "route", "add", "default", "via", str(uplink_address(6)))
        for node in self.node_names:
            self.ip(node, "route", "add", "default", "via", str(router_address(1, 4)))
            self.ip(node, "-6", "route", "add", "default", "via", str(router_address(1, 6)))

    def _add_vip_device(self, role: str) -> None:
        kind = self.vip_device_kind
        self.ip(role, "link", "add", VIP_DEV, "type", kind)
        self.exec(
            role,
            [
                "sysctl",
                "-q",
                "-w",
                # The kernel must not answer ARP for the VIPs (only the agent does) ...
                "net.ipv4.conf.all.arp_ignore=1",
                f"net.ipv4.conf.{LAN_IF}.arp_ignore=1",
                # ... nor use a VIP as the source of its own ARP requests.
                "net.ipv4.conf.all.arp_announce=2",
                f"net.ipv4.conf.{LAN_IF}.arp_announce=2",
            ],
        )
        for vip in self.vips:
            self.add_vip(role, vip)

    def add_vip(self, role: str, vip: IPAddress) -> None:
        """Put ``vip`` on ``role``'s down ``kube-ipvs0`` so packets to it are delivered locally.

        IPv6: some kernels install no local route for an address on a down device; there the
        VIP goes on ``lo`` instead (the kernel answers NS only for addresses of the receiving
        interface, so ``lo`` is as silent on the LAN as ``kube-ipvs0``).
        """
        if vip.version == 4:
            self.ip(role, "addr", "add", f"{vip}/32", "dev", VIP_DEV)
            return
        self.ip(role, "addr", "add", f"{vip}/128", "dev", VIP_DEV, "nodad")
        local = self.ip(role, "-6", "route", "show", "table", "local", f"{vip}/128")
        if not local.strip():
            self.ip(role, "addr", "del", f"{vip}/128", "dev", VIP_DEV)
            self.ip(role, "addr", "add", f"{vip}/128", "dev", "lo", "nodad")

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` first at teardown (last registered first); its errors are logged."""
        self._on_close.append(callback)

    def close(self) -> None:
        """Run ``on_close`` callbacks, stop spawned processes by PID, then any process left in
        this lab's namespaces, then delete every namespace this lab made."""
        if self._closed:
            return
        self._closed = True
        for callback in reversed(self._on_close):
            try:
                callback()
            except Exception:
                log.exception("lab %s: teardown callback failed", self.prefix)
        self._on_close.clear()
        for proc in self._procs:
            _stop(proc)
        self._procs.clear()
        for ns in reversed(self._made):
            _kill_namespace_processes(ns)
            _run(["ip", "netns", "delete", ns], check=False)
        self._made.clear()
        self._restore_sigterm()
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)
        log.info("lab %s torn down", self.prefix)

    def _install_sigterm(self) -> None:
        """Turn SIGTERM into SystemExit (so ``with`` unwinds) if nobody else handles it."""
        with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                self._old_sigterm = signal.signal(signal.SIGTERM, _sigterm_to_exit)

    def _restore_sigterm(self) -> None:
        if self._old_sigterm is not None:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None

    # -- running things ---------------------------------------------------------------------

    def _argv(self, role: str, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns(role), *argv]

    def exec(
        self, role: str, argv: Sequence[str], check: bool = True, timeout: float = 30.0
    ) -> str:
        """Run ``argv`` in ``role``'s namespace and return its stdout (raise if it fails)."""
        return _run(self._argv(role, argv), check=check, timeout=timeout)

    def ip(self, role: str, *args: str) -> str:
        """``ip -n <ns> ARGS`` (cheaper than ``exec``: no namespace-switching child)."""
        return _run(["ip", "-n", self.netns(role), *args])

    def spawn(self, role: str, argv: Sequence[str], **popen: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` in ``role``'s namespace; stopped by PID at teardown.

        ``ip netns exec`` execs the command in place, so the Popen PID is the command's own.
        The child gets SIGTERM if the thread that spawned it dies (PR_SET_PDEATHSIG), so even
        a ``kill -9`` of the lab's owner leaves no process behind.
        """
        popen.setdefault("preexec_fn", _die_with_parent)
        proc: subprocess.Popen[Any] = subprocess.Popen(self._argv(role, argv), **popen)
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[Any]) -> None:
        """Stop a process this lab spawned (SIGTERM, then SIGKILL after 3 s)."""
        _stop(proc)
        if proc in self._procs:
            self._procs.remove(proc)

    # -- faults -----------------------------------------------------------------------------

    def cut_link(self, node: str) -> None:
        """Take the node's switch-side port down: the node's ``eth0`` loses carrier
        (NO-CARRIER, operstate DOWN) and nothing passes either way, like a pulled cable."""
        self.ip(SWITCH, "link", "set", self.nodes[node].switch_port, "down")

    def restore_link(self, node: str) -> None:
        """Undo ``cut_link``: the port comes back up and the node sees carrier again."""
        self.ip(SWITCH, "link", "set", self.nodes[node].switch_port, "up")

    # -- observation ------------------------------------------------------------------------

    def node_mac(self, node: str) -> bytes:
        """The MAC of ``node``'s ``eth0`` as the kernel reports it."""
        info = json.loads(self.ip(node, "-j", "link", "show", "dev", LAN_IF))
        return bytes.fromhex(info[0]["address"].replace(":", ""))

    def neighbours(self, role: str = CLIENT) -> dict[str, tuple[bytes | None, str]]:
        """``role``'s kernel neighbour table on eth0: ip text -> (MAC or None, state)."""
        table: dict[str, tuple[bytes | None, str]] = {}
        for entry in json.loads(self.ip(role, "-j", "neigh", "show", "dev", LAN_IF) or "[]"):
            lladdr = entry.get("lladdr")
            mac = bytes.fromhex(lladdr.replace(":", "")) if lladdr else None
            state = ",".join(entry.get("state", []))
            table[entry["dst"]] = (mac, state)
        return table

    def neighbour_mac(self, ip: IPAddress, role: str = CLIENT) -> bytes | None:
        """The MAC ``role``'s kernel currently holds for ``ip`` (None when no usable entry)."""
        mac, state = self.neighbours(role).get(str(ip), (None, ""))
        return None if "FAILED" in state or "INCOMPLETE" in state else mac

    def flush_neighbours(self, role: str = CLIENT) -> None:
        self.ip(role, "neigh", "flush", "dev", LAN_IF)


def _kill_namespace_processes(ns: str) -> None:
    """SIGTERM, then SIGKILL, whatever still runs in one of our namespaces (a daemon that
    forked away from ``spawn``); ``ip netns pids`` finds them by namespace, not by name."""
    pids = [int(p) for p in _run(["ip", "netns", "pids", ns], check=False).split() if p.isdigit()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        pids = [p for p in pids if wait_until(lambda p=p: not _pid_alive(p), 2.0) is False]
        if not pids:
            return


def _mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=3)


def _die_with_parent() -> None:
    """In the child before exec: ask the kernel for SIGTERM when our parent dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _sigterm_to_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def tools_missing(*names: str) -> list[str]:
    """Which of these executables are not on PATH (for skip reasons)."""
    return [n for n in names if shutil.which(n) is None]


def wait_until(predicate: Any, timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate()`` until it is truthy or ``timeout`` seconds pass (lab helper)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
