"""FRR (zebra, bfdd, bgpd) in the lab's node namespaces, started as a sidecar starts it.

No systemd, no ``/etc/frr``: each node gets a directory of its own (``D``) that is at once
FRR's config dir, run dir and vty socket dir, owned by the ``frr`` user (FRR's pid lock
files need that). The daemons run as MetalLB's FRR container runs them::

    zebra -d -u frr -g frr -P 0 --vty_socket D -i D/zebra.pid -f /dev/null
          --log file:D/zebra.log -z D/zserv.api -s 90000000
    bfdd  ... the same ... --bfdctl D/bfdd.sock
    bgpd  ... the same ...

zebra is required (bgpd reaches bfdd through it); ``-P 0`` opens no TCP vty. The daemons fork
away (``-d``), so they are stopped by the PID in their pid file, and the lab's teardown stops
them too (``Lab.on_close``; anything left in a namespace is killed by namespace). ``apply``
loads a configuration through the speaker's own reloader (``l2agent.bgp.reload``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from l2agent.bgp.reload import FrrReloader
from l2agent.bgp.reload_outcome import ReloadOutcome
from l2agent.lab.netns import Lab, LabError, wait_until

log = logging.getLogger(__name__)

FRR_BIN = Path("/usr/lib/frr")
FRR_RELOAD = FRR_BIN / "frr-reload.py"
DAEMONS = ("zebra", "bfdd", "bgpd")
"""Started in this order (bgpd and bfdd connect to zebra's zserv socket), stopped reversed."""

VTYSH_CONF = "service integrated-vtysh-config\n"


def frr_missing() -> str | None:
    """Why FRR cannot run here (for skip reasons), or None."""
    missing = [str(FRR_BIN / d) for d in DAEMONS if not (FRR_BIN / d).exists()]
    if shutil.which("vtysh") is None:
        missing.append("vtysh")
    if not FRR_RELOAD.exists():
        missing.append(f"{FRR_RELOAD} (frr-pythontools)")
    try:
        pwd.getpwnam("frr")
    except KeyError:
        missing.append("the frr user")
    return f"FRR missing: {', '.join(missing)}" if missing else None


def _process_gone(pid: int) -> bool:
    """True when ``pid`` has exited (a zombie nobody reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


class LabFrr:
    """FRR per node of ``lab``; ``workdir`` holds the per-node directories (removed at close)."""

    def __init__(self, lab: Lab, workdir: Path | None = None, wrapper: Sequence[str] = ()) -> None:
        """``wrapper``: a command the daemons run under (e.g. ``setpriv --bounding-set ...``
        to give them only the capabilities a container would)."""
        self.lab = lab
        self.wrapper = tuple(wrapper)
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="l2lab-frr-"))
        self._dirs: dict[str, Path] = {}
        self._user = pwd.getpwnam("frr")
        self._closed = False
        # Traversable by the frr user (mkdtemp makes 0700 directories; so must every parent).
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        lab.on_close(self.close)

    def dir(self, node: str) -> Path:
        """The node's FRR directory: config dir, run dir and vty socket dir at once."""
        return self._dirs[node]

    def running(self, node: str) -> bool:
        path = self._dirs.get(node)
        if path is None:
            return False
        return all(not _process_gone(pid) for pid in self._pids(path).values())

    def start(self, node: str, config: str | None = None) -> Path:
        """Start zebra, bfdd and bgpd in ``node``'s namespace (fresh state); load ``config``."""
        if self.running(node):
            raise LabError(f"FRR already runs on {node}")
        path = self.workdir / node
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(mode=0o755)
        (path / "vtysh.conf").write_text(VTYSH_CONF)
        for item in (path, path / "vtysh.conf"):
            os.chown(item, self._user.pw_uid, self._user.pw_gid)
        self._dirs[node] = path
        for daemon in DAEMONS:
            self.lab.exec(node, [*self.wrapper, *self.daemon_argv(path, daemon)])
        ready = wait_until(
            lambda: all((path / f"{d}.vty").exists() for d in DAEMONS) and self._answers(node),
            10.0,
            interval=0.05,
        )
        if not ready:
            raise LabError(f"FRR on {node} did not come up; logs in {path}")
        if config is not None:
            self.apply(node, config)
        return path

    @staticmethod
    def daemon_argv(path: Path, daemon: str) -> list[str]:
        """The command line of one FRR daemon using directory ``path``."""
        argv = [
            str(FRR_BIN / daemon), "-d", "-u", "frr", "-g", "frr", "-P", "0",
            "--vty_socket", str(path), "-i", str(path / f"{daemon}.pid"),
            "-f", "/dev/null", "--log", f"file:{path / f'{daemon}.log'}",
            "-z", str(path / "zserv.api"),
        ]  # fmt: skip
        if daemon == "zebra":
            argv += ["-s", "90000000"]  # netlink receive buffer, as FRR's own packaging sets
        if daemon == "bfdd":
            argv += ["--bfdctl", str(path / "bfdd.sock")]
        return argv

    def _answers(self, node: str) -> bool:
        try:
            self.vtysh(node, "show version", timeout=5)
        except (LabError, subprocess.TimeoutExpired):
            return False
        return True

    def _pids(self, path: Path) -> dict[str, int]:
        pids = {}
        for daemon in DAEMONS:
            try:
                pids[daemon] = int((path / f"{daemon}.pid").read_text().strip())
            except (FileNotFoundError, ValueError):
                continue
        return pids

    def pid(self, node: str, daemon: str) -> int | None:
        return self._pids(self._dirs[node]).get(daemon)

    def stop(self, node: str, sig: signal.Signals = signal.SIGTERM, timeout: float = 5.0) -> None:
        """Stop ``node``'s daemons by PID (bgpd first: on SIGTERM it sends its peers a Cease);
        SIGKILL whatever is still there after ``timeout``."""
        path = self._dirs.get(node)
        if path is None:
            return
        for daemon in reversed(DAEMONS):
            pid = self._pids(path).get(daemon)
            if pid is None or _process_gone(pid):
                continue
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                continue
            if not wait_until(lambda pid=pid: _process_gone(pid), timeout, interval=0.02):
                log.warning("%s on %s ignored %s; killing it", daemon, node, sig.name)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                wait_until(lambda pid=pid: _process_gone(pid), 2.0, interval=0.02)

    def kill(self, node: str) -> None:
        """SIGKILL every daemon of ``node`` (a crash: no Cease, no withdraw)."""
        self.stop(node, signal.SIGKILL)

    # -- configuration and state ----------------------------------------------------------

    def vtysh(self, node: str, *commands: str, timeout: float = 10.0) -> str:
        """Run vtysh commands against ``node``'s daemons; return the output."""
        path = self._dirs[node]
        argv = ["vtysh", "--vty_socket", str(path), "--config_dir", str(path)]
        for command in commands:
            argv += ["-c", command]
        return self.lab.exec(node, argv, timeout=timeout)

    def show_json(self, node: str, command: str) -> Any:
        """A ``show ... json`` command's answer, decoded."""
        return json.loads(self.vtysh(node, command) or "{}")

    def apply(self, node: str, config: str) -> ReloadOutcome:
        """Make ``node``'s FRR run ``config`` through the speaker's own reloader
        (``FrrReloader``: offline check, ``frr-reload.py --test`` and ``--reload``)."""
        return self.apply_all({node: config})[node]

    def apply_all(self, configs: dict[str, str]) -> dict[str, ReloadOutcome]:
        """``apply`` on several nodes at once; raise ``LabError`` if any is not applied."""

        async def one(node: str, text: str) -> ReloadOutcome:
            path = self._dirs[node]
            reloader = FrrReloader(path, path, debounce=0.0, retry_base=3600)
            try:
                return await reloader.apply(text)
            finally:
                await reloader.close()

        async def every() -> list[ReloadOutcome]:
            return list(await asyncio.gather(*(one(n, t) for n, t in configs.items())))

        outcomes = dict(zip(configs, asyncio.run(every()), strict=True))
        failed = {n: o for n, o in outcomes.items() if not o.result.ok}
        if failed:
            raise LabError(f"FRR did not take the config: {failed}")
        return outcomes

    def neighbor_states(self, node: str) -> dict[str, str]:
        """Peer address -> BGP state (``Established``, ``Active``, ``Connect``, ...)."""
        doc = self.show_json(node, "show bgp neighbors json")
        return {peer: str(info.get("bgpState", "")) for peer, info in doc.items()}

    def wait_established(self, node: str, peers: list[str], timeout: float = 30.0) -> bool:
        def up() -> bool:
            states = self.neighbor_states(node)
            return all(states.get(p) == "Established" for p in peers)

        return wait_until(up, timeout, interval=0.2)

    def log_text(self, node: str) -> str:
        """Every daemon log of ``node`` (for failure messages)."""
        path = self._dirs.get(node)
        if path is None:
            return ""
        out = []
        for daemon in DAEMONS:
            log_path = path / f"{daemon}.log"
            if log_path.exists():
                out.append(f"--- {daemon}\n{log_path.read_text(errors='replace')[-4000:]}")
        return "\n".join(out)

    def close(self) -> None:
        """Stop every node's FRR and remove the directories."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + 20
        for node in list(self._dirs):
            self.stop(node, timeout=max(0.5, min(3.0, deadline - time.monotonic())))
        self._dirs.clear()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
